# Built for a later device call (issue 16), not run: `bash docs/measurements/2026-12-03-s26/call5.sh` from the
# repository root on one H200, carrying .data-fm; a call of its own (inductor's cache starts empty).
# Inductor's coordinate-descent tuning of its kernels: its cold compilation did not finish in 330 s (call 2). The
# peer is call 1's `--sdpa auto` record (same patterns and seed): 6.449 / 6.463 ms a model-step.
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
T0=$(date +%s)
PEER=docs/measurements/2026-12-03-s26/call1/sdpa-auto.json
timeout 560 python bench/compile_blocks.py --data fashion-mnist:$PWD/.data-fm --pack 8 --packs 2 \
    --inductor coordinate_descent_tuning=True --out $OUT/cd.json > $OUT/cd.log 2>&1
echo "== compile_blocks --inductor coordinate_descent_tuning=True rc $? at $(( $(date +%s) - T0 )) s"
grep -E "warm-up|pack [0-9]:|packs in" $OUT/cd.log | cut -c1-330
[ -f $OUT/cd.json ] && python bench/compile_blocks.py --compare $PEER $OUT/cd.json --out $OUT/compare-cd.json 2>&1 | tail -2 | head -1
