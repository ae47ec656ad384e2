# `bash docs/measurements/2026-12-03-s33/call2.sh` from the repository root on one H200, carrying .data-fm and
# .devbundle (the call's tree without docs/measurements: the carry limit); ~8 minutes. Issue 16: a worker's
# warm-up now primes its pack (`train._prime`: built, one eager step, one evaluation batch; nothing captured,
# trained or evaluated: each pack captures and evaluates its own anyway), where it ran the pack through a two-step
# training with its capture and a full evaluation. Real runs of 8 trials (one pack) with compiled blocks, after a
# cold run that fills the caches: the package alternating with a copy whose warm-up trains as before
# (/tmp/variant, `prime=True` removed from `warm_up`), three each. worker_ready, and from each run's records when
# its first pack ended (its trials' `trial_done` events).
mkdir -p /tmp/site && tar xJf .devbundle/site.tar.xz -C /tmp/site
export PYTHONUNBUFFERED=1 PYTHONPYCACHEPREFIX=/tmp/pyc
unset PYTHONDONTWRITEBYTECODE
D=fashion-mnist:$PWD/.data-fm
ROOT=$PWD
mkdir -p /tmp/variant && cp -r sola_search bench /tmp/variant/
sed -i 's/seed_list(config.seed, seeds) \* pack,$/seed_list(config.seed, seeds) * pack)[0]/; /^                         prime=True)\[0\]$/d' \
    /tmp/variant/sola_search/proxies/train.py
grep -n -A1 "return train_proxies(\[mixed\]" /tmp/variant/sola_search/proxies/train.py
T0=$(date +%s)
run() {  # name limit tree
  name=$1; limit=$2; tree=$3
  if [ $(( $(date +%s) - T0 + limit )) -gt 540 ]; then echo "== $name skipped (time)"; return; fi
  (while sleep 2; do cp /tmp/r/$name/events.jsonl $OUT/run_$name.events.jsonl 2>/dev/null; done) & copier=$!
  (cd $tree && PYTHONPATH=/tmp/site:$tree timeout $limit python bench/search_run.py \
      --out $OUT/run_$name.json -- --budget 8softmax --data $D --runs-dir /tmp/r --name $name --trials 8 \
      > $OUT/run_$name.log 2>&1)
  echo "== run $name rc $? at $(( $(date +%s) - T0 )) s"
  kill $copier; cp /tmp/r/$name/events.jsonl $OUT/run_$name.events.jsonl 2>/dev/null
  python - $OUT/run_$name.events.jsonl <<'PY'
import json, sys
from datetime import datetime
ev = [json.loads(l) for l in open(sys.argv[1])]
t = lambda e: datetime.fromisoformat(e["time"]).timestamp()
start = t(ev[0])
ready = [e for e in ev if e["event"] == "worker_ready"]
done = [t(e) - start for e in ev if e["event"] in ("trial_done", "trial_finished", "trial_complete")]
for e in ready:
    print({k: e.get(k) for k in ("wall_s", "process_s", "data_s", "kernels_s", "graphs")})
print("first trial ended", round(min(done), 2) if done else None, "s after the run's first event;",
      "worker ready at", round(t(ready[0]) - start, 2) if ready else None)
PY
}
run cold 160 $ROOT
for i in a b c; do run prime_$i 60 $ROOT; run train_$i 60 /tmp/variant; done
rm -f $OUT/*.study.db
(cd $OUT && tar czf /tmp/all.tgz * && rm -f * && mv /tmp/all.tgz .)  # the device returns at most 8 files
