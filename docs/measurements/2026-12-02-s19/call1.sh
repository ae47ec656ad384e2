# Device call 1 of the nineteenth session (issue 16), one H200: `bash docs/measurements/2026-12-02-s19/call1.sh`
# from the repository root, carrying .devbundle and .data-fm (Fashion-MNIST's two training files). Packs with compiled blocks (never measured above 8):
# 8 (cold inductor cache: the machine's first worker), 16 and 12 (cache warm), each a worker's warm-up (its phases
# and dynamo's compile times) and then 2 packs of distinct feasible patterns on Fashion-MNIST at the `default`
# preset; then packs of 8 with inductor's coordinate-descent tuning of its Triton kernels (a cold cache for it).
set -u
mkdir -p /tmp/site && tar xJf .devbundle/site.tar.xz -C /tmp/site
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
T0=$(date +%s)
git log --oneline -1; nvidia-smi --query-gpu=name,memory.used --format=csv,noheader
D=fashion-mnist:$PWD/.data-fm
rm -rf /tmp/torchinductor_root
step() {  # name, limit, options
    local name=$1 limit=$2; shift 2
    timeout $limit python bench/compile_blocks.py --data $D "$@" --out $OUT/$name.json > $OUT/$name.log 2>&1
    echo "== $name rc $? at $(( $(date +%s) - T0 )) s"; grep -E "warm-up|pack [0-9]|Error|error" $OUT/$name.log | cut -c1-400 | tail -5
}
step pack8-cold 190 --pack 8 --packs 2
step pack16 150 --pack 16 --packs 2
step pack12 110 --pack 12 --packs 2
TORCHINDUCTOR_COORDINATE_DESCENT_TUNING=1 step pack8-coord $(( 585 - ($(date +%s) - T0) )) --pack 8 --packs 2
