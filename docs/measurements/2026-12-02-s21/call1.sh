# Device call 1 of the twenty-first session, one H200: `bash docs/measurements/2026-12-02-s21/call1.sh` from the
# repository root, carrying .data-fm (Fashion-MNIST's training files).
# (1) The twentieth session's open question: does the package's graphed evaluation (one CUDA graph per pack at the
#     training's batch shape) give the eager evaluation's top-1? Same process, same trained models (`--check-eval`);
#     with an empty cache, so this also fills inductor's cache for the default compile.
# (2) Issue 16's lever: inductor's max-autotune for the compiled blocks (`TORCHINDUCTOR_MAX_AUTOTUNE=1`: matmuls
#     benchmarked against Triton templates with fused epilogues, pointwise/reduction kernels' block sizes
#     benchmarked), its cold compilation and its packs' images/s beside (1)'s, same patterns and seed.
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
T0=$(date +%s)
git log --oneline -1; nvidia-smi --query-gpu=name,memory.used --format=csv,noheader
D=fashion-mnist:$PWD/.data-fm
step() {  # name, limit, options
    local name=$1 limit=$2; shift 2
    timeout $limit python bench/compile_blocks.py --data $D "$@" --out $OUT/$name.json > $OUT/$name.log 2>&1
    echo "== $name rc $? at $(( $(date +%s) - T0 )) s"; grep -E "warm-up|pack [0-9]|evaluation check|Error|error" $OUT/$name.log | cut -c1-600 | tail -8
}
step checkeval 250 --pack 8 --packs 2 --check-eval
export TORCHINDUCTOR_MAX_AUTOTUNE=1
step maxautotune $(( 585 - ($(date +%s) - T0) )) --pack 8 --packs 2
