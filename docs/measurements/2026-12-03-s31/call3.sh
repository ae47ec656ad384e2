# `bash docs/measurements/2026-12-03-s31/call3.sh` from the repository root on one H200, carrying .data-fm and
# .devbundle (docs/measurements moved out of the tree for the call: the carry limit); under 3 minutes, for the
# session's last device seconds. Issue 16: a real run's worker warm-up at the new defaults (the warm-up prepares no
# pack ahead; one eager step before a thread's first capture; a pack's new models copied on the device), as
# s30/call3 measured the old ones (27.3 s): a run on a fresh machine fills the caches as a Ray worker uses them
# (8 trials), then a new run warms from them (16 trials; its events copied out every 2 s, so that the worker's
# warm-up comes back if the call's clock cuts the run).
mkdir -p /tmp/site && tar xJf .devbundle/site.tar.xz -C /tmp/site
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 PYTHONPYCACHEPREFIX=/tmp/pyc
unset PYTHONDONTWRITEBYTECODE
T0=$(date +%s)
for run in cold:8:115 warm:16:80; do
  IFS=: read name trials limit <<< "$run"
  (while sleep 2; do cp /tmp/r/$name/events.jsonl $OUT/run_$name.events.jsonl 2>/dev/null; done) & copier=$!
  timeout $limit python bench/search_run.py --out $OUT/run_$name.json -- --budget 8softmax \
      --data fashion-mnist:$PWD/.data-fm --runs-dir /tmp/r --name $name --trials $trials > $OUT/run_$name.log 2>&1
  echo "== run $name rc $? at $(( $(date +%s) - T0 )) s"
  kill $copier; cp /tmp/r/$name/events.jsonl $OUT/run_$name.events.jsonl 2>/dev/null
  grep -h worker_ready $OUT/run_$name.events.jsonl | cut -c1-300
  grep -E "trials_per_hour|span_s|trials_finished|top1_best|train_s_median" $OUT/run_$name.log | cut -c1-300
done
