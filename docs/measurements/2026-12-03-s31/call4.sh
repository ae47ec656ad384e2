# Built for the next device call (issue 16), not run: `bash docs/measurements/2026-12-03-s31/call4.sh` from the
# repository root on one H200, carrying .data-fm and .devbundle (docs/measurements moved out of the tree for the
# call: the carry limit); ~6 minutes. A real run's worker warms in 18.2 s (s31/call3: kernels 14.2 s) against the
# bench's 11.0 s (kernels 10.4), and from bench-filled caches in 43.9 s (s31/call2). The worker runs 4 CPU threads,
# the bench 16, and inductor's FX graph cache key can hold the thread count. Here: a fresh machine's caches filled
# by a bench on 4 threads; a warm bench on 4 threads, sampled (where a worker's warm-up goes); then a real run
# warming from those caches (18 s: the thread count was the lead; 44 s: something else).
mkdir -p /tmp/site && tar xJf .devbundle/site.tar.xz -C /tmp/site
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 PYTHONPYCACHEPREFIX=/tmp/pyc
unset PYTHONDONTWRITEBYTECODE
D=fashion-mnist:$PWD/.data-fm
T0=$(date +%s)
one() {
  name=$1; shift
  timeout 170 python bench/compile_blocks.py --data $D --pack 8 --packs 1 --out $OUT/$name.json "$@" > $OUT/$name.log 2>&1
  echo "== $name rc $? at $(( $(date +%s) - T0 )) s"
  grep -E "warm-up|pack 0:|Error" $OUT/$name.log | cut -c1-300 | head -3
}
one cold4 --threads 4
one warm4_sampled --threads 4 --profile-warm-up
one warm16 
grep -A30 "innermost" $OUT/warm4_sampled.log | cut -c1-220 | head -30
(while sleep 2; do cp /tmp/r/warm/events.jsonl $OUT/run.events.jsonl 2>/dev/null; done) & copier=$!
timeout 100 python bench/search_run.py --out $OUT/run.json -- --budget 8softmax --data $D --runs-dir /tmp/r \
    --name warm --trials 16 > $OUT/run.log 2>&1
echo "== run rc $? at $(( $(date +%s) - T0 )) s"
kill $copier; cp /tmp/r/warm/events.jsonl $OUT/run.events.jsonl 2>/dev/null
grep -h worker_ready $OUT/run.events.jsonl | cut -c1-300
(cd $OUT && tar czf logs.tgz *.log && rm -f *.log)
