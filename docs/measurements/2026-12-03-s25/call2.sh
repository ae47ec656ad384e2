# Device call 2 of the twenty-fifth session (issue 16), one H200: `bash docs/measurements/2026-12-03-s25/call2.sh`
# from the repository root, carrying .data-fm. Inductor's cache starts empty.
# 1. Softmax attention at the proxy's shapes by backend (and as plain matmuls compiled).
# 2. What the package's training loop adds to its graph's replays, a step.
# 3. The stem's second graph gone (normalize writes channels-last strides): graphs compiled, warm-up, evaluation.
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
T0=$(date +%s)
D=fashion-mnist:$PWD/.data-fm
timeout 150 python bench/sdpa_backends.py --preset default --out $OUT/sdpa_backends.json > $OUT/sdpa_backends.log 2>&1
echo "== sdpa_backends rc $? at $(( $(date +%s) - T0 )) s"; sed -n '/^stage/,$p' $OUT/sdpa_backends.log | cut -c1-160
timeout 260 python bench/pack_joins.py --data $D --pack 8 --ways loop graph --out $OUT/pack_joins.json > $OUT/pack_joins.log 2>&1
echo "== pack_joins rc $? at $(( $(date +%s) - T0 )) s"; sed -n '/^way/,$p' $OUT/pack_joins.log
TORCH_LOGS=recompiles timeout 150 python bench/compile_blocks.py --data $D --pack 8 --packs 1 --check-eval \
    --out $OUT/recompiles.json > $OUT/recompiles.log 2>&1
echo "== compile_blocks rc $? at $(( $(date +%s) - T0 )) s"
grep -E "warm-up|graphs|evaluation check" $OUT/recompiles.log | cut -c1-400
grep -c "Recompiling" $OUT/recompiles.log; grep -A3 "Recompiling function forward in .*backbone.py:148" $OUT/recompiles.log | grep "guard\|- " | cut -c60-220 | tail -6
