# Device call 1 of the twenty-fifth session (issue 16), one H200: `bash docs/measurements/2026-12-03-s25/call1.sh`
# from the repository root, carrying .data-fm and .devbundle. Inductor's cache starts empty.
# 1. A pack's clipping + AdamW alone: per model on its own stream (now) against one AdamW over the pack.
# 2. What a pack-step loses at its joins and to its per-model AdamW, inside the real pack graph.
# 3. Which graph a worker compiles beyond the 13 expected (dynamo's recompiles, whole log).
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
T0=$(date +%s)
nvidia-smi --query-gpu=name,memory.used --format=csv,noheader
D=fashion-mnist:$PWD/.data-fm
timeout 100 python bench/optimizer_pack.py --preset default --pack 8 --out $OUT/optimizer_pack.json > $OUT/optimizer_pack.log 2>&1
echo "== optimizer_pack rc $? at $(( $(date +%s) - T0 )) s"; tail -6 $OUT/optimizer_pack.log
timeout 300 python bench/pack_joins.py --data $D --pack 8 --k 2 4 --out $OUT/pack_joins.json > $OUT/pack_joins.log 2>&1
echo "== pack_joins rc $? at $(( $(date +%s) - T0 )) s"; tail -16 $OUT/pack_joins.log
TORCH_LOGS=recompiles timeout 150 python bench/compile_blocks.py --data $D --pack 8 --packs 1 \
    --out $OUT/recompiles.json > $OUT/recompiles.log 2>&1
echo "== compile_blocks rc $? at $(( $(date +%s) - T0 )) s"
grep -E "warm-up|graphs" $OUT/recompiles.log | cut -c1-400
grep -n -A6 "Recompiling" $OUT/recompiles.log | cut -c1-300 | head -80
