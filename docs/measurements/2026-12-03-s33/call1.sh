# `bash docs/measurements/2026-12-03-s33/call1.sh` from the repository root on one H200, carrying .data-fm and
# .devbundle (the call's tree without docs/measurements: the carry limit); ~8 minutes. Issue 16: the embedded Ray
# no longer starts idle workers as the driver connects (s32: Ray's default starts one a core, each importing torch,
# dynamo and inductor beside the run's warm-up and then holding them); the run's worker starts on demand. Real runs
# of 8 trials with compiled blocks, after a cold run that fills the caches: the package (no idle workers)
# alternating with a copy that keeps Ray's prestarted ones (/tmp/variant, the one setting removed), three each;
# 12 s into each run the idle workers' count and resident memory (`ps`). (Built in s32 as call4.sh with
# `--compile off` runs; rebuilt before it ran: the warm-up's compiled graphs are what the idle workers compete with.)
mkdir -p /tmp/site && tar xJf .devbundle/site.tar.xz -C /tmp/site
export PYTHONUNBUFFERED=1 PYTHONPYCACHEPREFIX=/tmp/pyc
unset PYTHONDONTWRITEBYTECODE
D=fashion-mnist:$PWD/.data-fm
ROOT=$PWD
mkdir -p /tmp/variant && cp -r sola_search bench /tmp/variant/
sed -i 's/, "prestart_worker_first_driver": False}/}/' /tmp/variant/sola_search/search/cluster.py
grep -n '"worker_niceness": 0' /tmp/variant/sola_search/search/cluster.py
T0=$(date +%s)
run() {  # name limit tree
  name=$1; limit=$2; tree=$3
  if [ $(( $(date +%s) - T0 + limit )) -gt 540 ]; then echo "== $name skipped (time)"; return; fi
  (while sleep 2; do cp /tmp/r/$name/events.jsonl $OUT/run_$name.events.jsonl 2>/dev/null; done) & copier=$!
  (sleep 12; ps -eo pid,rss,args | grep -E 'ray::(IDLE|ProxyWorker)' | grep -v grep > $OUT/run_$name.ps.txt) &
  (cd $tree && PYTHONPATH=/tmp/site:$tree timeout $limit python bench/search_run.py \
      --out $OUT/run_$name.json -- --budget 8softmax --data $D --runs-dir /tmp/r --name $name --trials 8 \
      > $OUT/run_$name.log 2>&1)
  echo "== run $name rc $? at $(( $(date +%s) - T0 )) s"
  kill $copier; cp /tmp/r/$name/events.jsonl $OUT/run_$name.events.jsonl 2>/dev/null
  grep -h worker_ready $OUT/run_$name.events.jsonl | cut -c1-400
  awk '{n++; kb+=$2} END {printf "idle+actor processes %d, RSS %.2f GiB\n", n, kb/1048576}' $OUT/run_$name.ps.txt
}
run cold 160 $ROOT
for i in a b c; do run none_$i 60 $ROOT; run prestart_$i 60 /tmp/variant; done
rm -f $OUT/*.study.db
(cd $OUT && tar czf /tmp/all.tgz * && rm -f * && mv /tmp/all.tgz .)  # the device returns at most 8 files
