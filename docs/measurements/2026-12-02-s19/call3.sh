# Device call 3 of the nineteenth session (issue 16), one H200: `bash docs/measurements/2026-12-02-s19/call3.sh`
# from the repository root, carrying .data-fm. Packs above 8 gain nothing (call 1): the GPU is full. What would
# horizontal fusion (a pack's 8 models as one model's kernels, 8x larger) buy? Its bound: one model, compiled
# blocks, CUDA graph, at batch 2,048 (= 8 x 256) and 1,024, against the pack of 8 at 256 (39,600 images/s, calls 1-2).
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
T0=$(date +%s)
git log --oneline -1; nvidia-smi --query-gpu=name,memory.used --format=csv,noheader
D=fashion-mnist:$PWD/.data-fm
step() {  # name, limit, options
    local name=$1 limit=$2; shift 2
    timeout $limit python bench/compile_blocks.py --data $D "$@" --out $OUT/$name.json > $OUT/$name.log 2>&1
    echo "== $name rc $? at $(( $(date +%s) - T0 )) s"; grep -E "warm-up|pack [0-9]|Error|error" $OUT/$name.log | cut -c1-500 | tail -4
}
step b2048 250 --pack 1 --packs 1 --set batch_size=2048
step b1024 $(( 455 - ($(date +%s) - T0) )) --pack 1 --packs 1 --set batch_size=1024
