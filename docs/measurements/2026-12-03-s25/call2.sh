# Device call 2 of the twenty-fifth session (issue 16), one H200: `bash docs/measurements/2026-12-03-s25/call2.sh`
# from the repository root, carrying .data-fm. Inductor's cache starts empty.
# 1. Softmax attention at the proxy's shapes by backend (and as plain matmuls compiled).
# 2. What the package's training loop adds to its graph's replays, a step.
# 3. The stem's second graph gone (normalize writes channels-last strides): graphs compiled, warm-up, evaluation.
# 4. The same pack with softmax attention as plain matmuls where step 1 found them faster (compile_blocks --plain-attention).
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
T0=$(date +%s)
D=fashion-mnist:$PWD/.data-fm
timeout 120 python bench/sdpa_backends.py --preset default --out $OUT/sdpa_backends.json > $OUT/sdpa_backends.log 2>&1
echo "== sdpa_backends rc $? at $(( $(date +%s) - T0 )) s"; sed -n '/^stage/,$p' $OUT/sdpa_backends.log | cut -c1-160
timeout 240 python bench/pack_joins.py --data $D --pack 8 --ways loop graph --steps 100 --out $OUT/pack_joins.json > $OUT/pack_joins.log 2>&1
echo "== pack_joins rc $? at $(( $(date +%s) - T0 )) s"; sed -n '/^way/,$p' $OUT/pack_joins.log
TORCH_LOGS=recompiles timeout 110 python bench/compile_blocks.py --data $D --pack 8 --packs 1 --check-eval \
    --out $OUT/recompiles.json > $OUT/recompiles.log 2>&1
echo "== compile_blocks rc $? at $(( $(date +%s) - T0 )) s"
grep -E "warm-up|graphs|evaluation check" $OUT/recompiles.log | cut -c1-400
grep -c "Recompiling" $OUT/recompiles.log; grep -A3 "Recompiling function forward in .*backbone.py:148" $OUT/recompiles.log | grep "guard\|- " | cut -c60-220 | tail -6
N=$(python - $OUT/sdpa_backends.json <<'PY'
import json, sys
rows = json.load(open(sys.argv[1]))["rows"]
ms = {(r["shape"], r["way"]): r["ms"] for r in rows}
best = 0
for shape in dict.fromkeys(r["shape"] for r in rows):
    a, b = ms.get((shape, "plain matmuls, compiled")), ms.get((shape, "torch's choice, compiled"))
    if a and b and a < 0.9 * b:
        best = max(best, int(shape.split("x")[2]))
print(best)
PY
)
echo "== plain attention up to $N tokens"
if [ "${N:-0}" -gt 0 ]; then
  timeout 120 python bench/compile_blocks.py --data $D --pack 8 --packs 1 --plain-attention $N \
      --out $OUT/plain.json > $OUT/plain.log 2>&1
  echo "== plain rc $? at $(( $(date +%s) - T0 )) s"; grep -E "warm-up|pack 0:" $OUT/plain.log | cut -c1-400
fi
