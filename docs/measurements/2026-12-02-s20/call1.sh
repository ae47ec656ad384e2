# Device call 1 of the twentieth session (issue 16), one H200: `bash docs/measurements/2026-12-02-s20/call1.sh`
# from the repository root, carrying .data-fm (Fashion-MNIST's training files). The nineteenth session's two
# unmeasured warm-up levers: (1) a worker fills the cache (cold); (2) evaluation at the training's batch shape as
# one CUDA graph per pack (`--eval graph`, against eager evaluation's 6-8 s of first-shape convolutions and a
# pack's 1.1-1.2 s); (3) the same with inductor's compile workers off (`TORCHINDUCTOR_COMPILE_THREADS=1`: the
# 5.5 s the main thread waited on them with a warm cache), under cProfile; (4) eager evaluation again, warm, as
# the peer of (2) in the same call.
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
T0=$(date +%s)
git log --oneline -1; nvidia-smi --query-gpu=name,memory.used --format=csv,noheader
D=fashion-mnist:$PWD/.data-fm
step() {  # name, limit, options
    local name=$1 limit=$2; shift 2
    timeout $limit python bench/compile_blocks.py --data $D "$@" --out $OUT/$name.json > $OUT/$name.log 2>&1
    echo "== $name rc $? at $(( $(date +%s) - T0 )) s"; grep -E "warm-up|pack [0-9]|Error|error" $OUT/$name.log | cut -c1-600 | tail -5
}
step fill 230 --pack 8 --packs 1
step evalgraph 120 --pack 8 --packs 2 --eval graph
export TORCHINDUCTOR_COMPILE_THREADS=1
step threads1 100 --pack 8 --packs 1 --eval graph --profile-warm-up
unset TORCHINDUCTOR_COMPILE_THREADS
step evaleager $(( 575 - ($(date +%s) - T0) )) --pack 8 --packs 2
