# Device call 1 of the twenty-eighth session (issue 16), one H200: `bash docs/measurements/2026-12-03-s28/call1.sh`
# from the repository root, carrying .data-fm and .devbundle; about 8 minutes.
# 1. The package's fused MALA (sola_search/proxies/triton_mala.py: dots now three TF32 products, 2 warps for heads of
#    <= 64 tokens) alone at every shape of a `default` step against torch.compile(Attention.mala): speed and error.
# 2. A real run at the defaults (the fused MALA on), 80 trials, inductor's cache empty, as the twenty-fourth
#    session's call 3 measured 1,748 trials an hour without it.
set -u
mkdir -p /tmp/site && tar xJf .devbundle/site.tar.xz -C /tmp/site
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
T0=$(date +%s)
(cd bench && timeout 120 python mala_speed.py --preset default --tiles 64:2 64:4 --out $OUT/mala_speed.json \
    > $OUT/mala_speed.log 2>&1)
echo "== mala_speed default rc $? at $(( $(date +%s) - T0 )) s"; sed -n '/^what/,$p' $OUT/mala_speed.log | cut -c1-220
D=fashion-mnist:$PWD/.data-fm
R=/tmp/r; mkdir -p $R
timeout 420 python bench/search_run.py --out $OUT/run.json -- --budget 8softmax --data $D \
    --runs-dir $R --name fused --trials 80 > $OUT/run.log 2>&1
echo "== run rc $? at $(( $(date +%s) - T0 )) s"
grep -E "trials_per_hour|span_s|workers_ready|worker_warm|trials_finished|trials_failed|top1_best|phases_median|Error" $OUT/run.log | cut -c1-300
cp $R/fused/events.jsonl $OUT/run.events.jsonl 2>/dev/null
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
