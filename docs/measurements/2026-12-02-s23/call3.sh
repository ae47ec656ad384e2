# Device call 3 of the twenty-third session (issue 16), one H200: `bash docs/measurements/2026-12-02-s23/call3.sh`
# from the repository root, carrying .data-fm and .devbundle.
# Call 2 found why a pack prepared between the training's steps gained nothing: the loop cannot run far ahead of
# the device (a step's graph launch waits for room in the device's queue), so the device idled 1.55 of the
# preparation's 1.86 s whatever the steps asked to be queued (32 or 96). Now the next pack is prepared on a second
# thread (`_PREPARER`) while the training thread goes on launching steps, and the cycle collector is off during
# captures (call 2: one capture failed when a collection destroyed an old graph during it).
# (1) 3 packs of 8 one after another, then the same 3 packs each prepared while the one before trains (their
#     results must be equal to the last digit). (2) A real run with --ahead 1 in the time left.
set -u
mkdir -p /tmp/site && tar xJf .devbundle/site.tar.xz -C /tmp/site
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
T0=$(date +%s)
nvidia-smi --query-gpu=name,memory.used --format=csv,noheader
D=fashion-mnist:$PWD/.data-fm
timeout 270 python bench/compile_blocks.py --data $D --pack 8 --packs 3 --ahead --out $OUT/thread.json > $OUT/thread.log 2>&1
echo "== thread rc $? at $(( $(date +%s) - T0 )) s"
grep -E "warm-up|done at|packs in|ahead:|Error|error|Warning" $OUT/thread.log | cut -c1-330 | tail -16
R=/tmp/r; mkdir -p $R
timeout $(( 425 - ($(date +%s) - T0) )) python bench/search_run.py --out $OUT/run.json -- --budget 8softmax --data $D \
    --runs-dir $R --name ahead --trials 48 --ahead 1 > $OUT/run.log 2>&1
echo "== run rc $? at $(( $(date +%s) - T0 )) s"; grep -iE "trials/h|warm|Error" $OUT/run.log | cut -c1-300 | tail -4
cp $R/ahead/events.jsonl $OUT/run.events.jsonl 2>/dev/null
python - <<'PY'
import json, os
for l in open(os.environ["OUT"] + "/run.events.jsonl"):
    e = json.loads(l)
    if e.get("event") == "trial_finished" and e["trial"] % 8 == 0 or e.get("event") == "worker_ready":
        print(e["time"][11:19], e.get("trial"), e.get("phases", e.get("kernels_s")))
PY
