# `bash docs/measurements/2026-12-03-s30/call1.sh` from the repository root on one H200, carrying .data-fm; ~7 min.
# Issue 16's warm-up: the twenty-ninth session's call 5 found 16.0 s of a warm warm-up's 28 s in cuDNN's
# autotuning of the convolutions' backward (2.9 s more in the forward), and cuDNN's heuristics 9 % slower a step.
# Here the depthwise convolutions run as bench/triton_dwconv.py's kernels (1.01x cuDNN in the twenty-first
# session; compiled once, then loaded from Triton's cache), the dense ones (stem, downsampling) stay cuDNN's:
# cold fill, warm, warm sampled, warm with cuDNN's heuristics for the dense ones; the step and loss curve
# against call 5's warm record (the same patterns and seed, cuDNN's depthwise convolutions).
set -u
export PYTHONPATH=$PWD:$PWD/bench PYTHONUNBUFFERED=1 PYTHONPYCACHEPREFIX=/tmp/pyc
unset PYTHONDONTWRITEBYTECODE
D=fashion-mnist:$PWD/.data-fm
T0=$(date +%s)
one() {
  name=$1; shift
  timeout 220 python bench/compile_blocks.py --data $D --pack 8 --packs 1 --dwconv triton --out $OUT/$name.json \
      "$@" > $OUT/$name.log 2>&1
  echo "== $name rc $? at $(( $(date +%s) - T0 )) s"
  grep -E "warm-up|pack 0:|Error" $OUT/$name.log | cut -c1-300 | head -3
}
one cold
one warm
one warm_sampled --profile-warm-up
one warm_dense_heuristics --cudnn-benchmark off
python bench/compile_blocks.py --compare docs/measurements/2026-12-03-s29/call5/warm.json $OUT/warm.json \
    --out $OUT/compare.json 2>&1 | tail -2 | head -1
grep -A25 "innermost" $OUT/warm_sampled.log | cut -c1-220 | head -25
grep -B2 -A12 "by thread\|outermost\|phase" $OUT/warm_sampled.log | cut -c1-220 | head -40
