# `bash docs/measurements/2026-12-03-s33/call3.sh` from the repository root on one H200, carrying .data-fm and
# .devbundle (the call's tree without docs/measurements: the carry limit); ~7 minutes. Issue 16, after call2 (the
# warm-up primes its pack): more real runs of the package on a fresh machine's caches, filled by a cold run: a
# 48-trial run (trials an hour beside s30's 1,911-1,932) and three 8-trial runs, for their workers' warm-up.
mkdir -p /tmp/site && tar xJf .devbundle/site.tar.xz -C /tmp/site
export PYTHONUNBUFFERED=1 PYTHONPYCACHEPREFIX=/tmp/pyc
unset PYTHONDONTWRITEBYTECODE
D=fashion-mnist:$PWD/.data-fm
T0=$(date +%s)
run() {  # name trials limit
  name=$1; trials=$2; limit=$3
  if [ $(( $(date +%s) - T0 + limit )) -gt 540 ]; then echo "== $name skipped (time)"; return; fi
  (while sleep 2; do cp /tmp/r/$name/events.jsonl $OUT/run_$name.events.jsonl 2>/dev/null; done) & copier=$!
  PYTHONPATH=/tmp/site:$PWD timeout $limit python bench/search_run.py --out $OUT/run_$name.json -- --budget 8softmax \
      --data $D --runs-dir /tmp/r --name $name --trials $trials > $OUT/run_$name.log 2>&1
  echo "== run $name rc $? at $(( $(date +%s) - T0 )) s"
  kill $copier; cp /tmp/r/$name/events.jsonl $OUT/run_$name.events.jsonl 2>/dev/null
  grep -h worker_ready $OUT/run_$name.events.jsonl | cut -c1-330
  grep -E "trials_per_hour |trials_finished" $OUT/run_$name.log
}
run cold 8 160
run warm48 48 160
for i in a b c; do run prime_$i 8 60; done
rm -f $OUT/*.study.db
(cd $OUT && tar czf /tmp/all.tgz * && rm -f * && mv /tmp/all.tgz .)  # the device returns at most 8 files
