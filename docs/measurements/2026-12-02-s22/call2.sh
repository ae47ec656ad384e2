# Device call 2 of the twenty-second session, one H200: `bash docs/measurements/2026-12-02-s22/call2.sh` from the
# repository root, carrying .data-fm. Call 1's packs prepared ahead printed nothing for 5 minutes: the same with 3
# packs, no packs one after another first, every thread's stack printed every 120 s while the ahead packs run.
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
T0=$(date +%s)
nvidia-smi --query-gpu=name,memory.used --format=csv,noheader
D=fashion-mnist:$PWD/.data-fm
timeout 400 python bench/compile_blocks.py --data $D --pack 8 --packs 3 --ahead-only --out $OUT/ahead2.json > $OUT/ahead2.log 2>&1
echo "== rc $? at $(( $(date +%s) - T0 )) s"
grep -E "warm-up|pack [0-9]|packs in|ahead:|Error|error" $OUT/ahead2.log | cut -c1-300 | tail -14
grep -n -A 40 "^Thread 0x" $OUT/ahead2.log | grep -v "site-packages/torch/nn/modules/module.py" | head -150
