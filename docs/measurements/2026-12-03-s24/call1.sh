# Device call 1 of the twenty-fourth session (issue 16), one H200: `bash docs/measurements/2026-12-03-s24/call1.sh`
# from the repository root, carrying .data-fm and .devbundle.
# Two real runs of 80 trials at the default preset, one after the other in one call (the second finds the
# inductor cache the first filled, which shortens its warm-up only; trials per hour are counted from the first
# trial's start): --ahead 0, then --ahead 1 (the next pack prepared on a second thread while one trains).
set -u
mkdir -p /tmp/site && tar xJf .devbundle/site.tar.xz -C /tmp/site
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
T0=$(date +%s)
nvidia-smi --query-gpu=name,memory.used --format=csv,noheader
D=fashion-mnist:$PWD/.data-fm
R=/tmp/r; mkdir -p $R
for A in 0 1; do
  LEFT=$(( (A == 0 ? 320 : 570) - ($(date +%s) - T0) ))
  timeout $LEFT python bench/search_run.py --out $OUT/ahead$A.json -- --budget 8softmax --data $D \
      --runs-dir $R --name ahead$A --trials 80 --ahead $A > $OUT/ahead$A.log 2>&1
  echo "== ahead $A rc $? at $(( $(date +%s) - T0 )) s"
  grep -E "trials_per_hour|span_s|workers_ready|worker_warm|trials_finished|top1_best|Error" $OUT/ahead$A.log | cut -c1-300
  cp $R/ahead$A/events.jsonl $OUT/ahead$A.events.jsonl 2>/dev/null
  python - "$OUT/ahead$A.events.jsonl" <<'PY'
import json, sys
from datetime import datetime
ts = lambda e: datetime.fromisoformat(e["time"]).timestamp()
ev = [json.loads(l) for l in open(sys.argv[1])]
fin = sorted((ts(e), e["trial"]) for e in ev if e.get("event") == "trial_finished")
ends = sorted({round(t, 1) for t, _ in fin})
packs = []
for t in ends:
    if not packs or t - packs[-1] > 2: packs.append(t)
gaps = [round(b - a, 1) for a, b in zip(packs, packs[1:])]
print("pack ends apart:", gaps)
PY
done
