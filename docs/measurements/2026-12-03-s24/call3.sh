# Device call 3 of the twenty-fourth session (issue 16), one H200: `bash docs/measurements/2026-12-03-s24/call3.sh`
# from the repository root, carrying .data-fm and .devbundle.
# A real run at the new defaults (no --ahead given: 1 on a GPU; train.QUEUE_STEPS 2; evaluation through the
# compiled blocks' training forward), 88 trials, inductor's cache empty; dynamo's recompiles logged (call 2 counted
# 14 graphs where the twenty-third session's code compiled 13).
set -u
mkdir -p /tmp/site && tar xJf .devbundle/site.tar.xz -C /tmp/site
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
T0=$(date +%s)
nvidia-smi --query-gpu=name,memory.used --format=csv,noheader
D=fashion-mnist:$PWD/.data-fm
R=/tmp/r; mkdir -p $R
TORCH_LOGS=recompiles timeout 420 python bench/search_run.py --out $OUT/run.json -- --budget 8softmax --data $D \
    --runs-dir $R --name defaults --trials 88 > $OUT/run.log 2>&1
echo "== run rc $? at $(( $(date +%s) - T0 )) s"
grep -E "trials_per_hour|span_s|workers_ready|worker_warm|trials_finished|trials_failed|top1_best|phases_median|Error" $OUT/run.log | cut -c1-300
grep -h -A4 "Recompiling" $OUT/run.log /tmp/ray/session_*/logs/worker-*.err 2>/dev/null | cut -c1-300 | head -24
cp $R/defaults/events.jsonl $OUT/run.events.jsonl 2>/dev/null; cp $R/defaults/run.json $OUT/run.run.json 2>/dev/null
python - "$OUT/run.events.jsonl" <<'PY'
import json, sys
from datetime import datetime
ts = lambda e: datetime.fromisoformat(e["time"]).timestamp()
ev = [json.loads(l) for l in open(sys.argv[1])]
fin = sorted(ts(e) for e in ev if e.get("event") == "trial_finished")
packs = []
for t in fin:
    if not packs or t - packs[-1] > 2: packs.append(t)
print("pack ends apart:", [round(b - a, 1) for a, b in zip(packs, packs[1:])])
for e in ev:
    if e.get("event") == "trial_finished" and e["trial"] % 16 == 9:
        print(e["trial"], e.get("queued"), e["phases"])
PY
