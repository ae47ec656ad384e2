# Device call 2 of the nineteenth session (issue 16), one H200: `bash docs/measurements/2026-12-02-s19/call2.sh`
# from the repository root, carrying .data-fm (Fashion-MNIST's training files) and .inductor.tar.xz (inductor's
# cache from the eleventh session, when backbone, compiled blocks and train.py were as now). Where a worker's
# warm-up goes: call 1 found it 56-69 s with a warm cache (build 11-18 s, capture 35-39 s, eval 9-10 s), dynamo
# and inductor only 6 s of it. (1) a worker fills the cache; (2) a worker's warm-up under cProfile; (3) the same
# with evaluation's cuDNN autotuning off. The cache goes back in $OUT for the next call.
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
T0=$(date +%s)
git log --oneline -1; nvidia-smi --query-gpu=name,memory.used --format=csv,noheader
C=/tmp/torchinductor_root; mkdir -p $C
[ -f .inductor.tar.xz ] && tar xJf .inductor.tar.xz -C $C && echo "cache carried: $(find $C -type f | wc -l) files"
D=fashion-mnist:$PWD/.data-fm
step() {  # name, limit, options
    local name=$1 limit=$2; shift 2
    timeout $limit python bench/compile_blocks.py --data $D "$@" --out $OUT/$name.json > $OUT/$name.log 2>&1
    echo "== $name rc $? at $(( $(date +%s) - T0 )) s"; grep -E "warm-up|pack [0-9]|Error|error" $OUT/$name.log | cut -c1-600 | tail -4
}
step fill 220 --pack 8 --packs 1
step profile 120 --pack 8 --packs 1 --profile-warm-up
step evaloff 110 --pack 8 --packs 2 --eval-autotune off
tar cJf $OUT/inductor.tar.xz -C $C . ; ls -la $OUT/inductor.tar.xz
