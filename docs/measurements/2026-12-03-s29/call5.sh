# Built for the next device call (issue 16), not run: `bash docs/measurements/2026-12-03-s29/call5.sh` from the
# repository root on one H200, carrying .data-fm; about 7 minutes.
# Which ATen ops hold the ~18 s a warm warm-up spends in C below inductor's generated code (call 4 of the
# twenty-ninth session; `--profile-warm-up` now names the op of that frame), and whether cuDNN's autotuning is
# it: the same warm warm-up and pack with `--cudnn-benchmark off` (cuDNN's heuristics choose each convolution's
# algorithm), its step and loss curve against the package's way in the same call. Also the first warm warm-up
# after a cold one with Triton's cache now where inductor's is (`compiled._prepare`): call 4 recompiled the fused
# MALA's kernels there (8.3 s).
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 PYTHONPYCACHEPREFIX=/tmp/pyc
unset PYTHONDONTWRITEBYTECODE
D=fashion-mnist:$PWD/.data-fm
T0=$(date +%s)
one() {
  name=$1; shift
  timeout 200 python bench/compile_blocks.py --data $D --pack 8 --packs 1 --out $OUT/$name.json "$@" \
      > $OUT/$name.log 2>&1
  echo "== $name rc $? at $(( $(date +%s) - T0 )) s"
  grep -E "warm-up|pack 0:|Error" $OUT/$name.log | cut -c1-300 | head -3
}
one cold
one warm_sampled --profile-warm-up
one warm
one warm_cudnn_heuristics --cudnn-benchmark off
python bench/compile_blocks.py --compare $OUT/warm.json $OUT/warm_cudnn_heuristics.json --out $OUT/compare.json \
    2>&1 | tail -2 | head -1
grep -A40 "innermost" $OUT/warm_sampled.log | cut -c1-220 | head -30
python -c "import json; r = json.load(open(\"$OUT/warm.json\")); print(\"fused MALA ran:\", r[\"fused_mala\"])"
