# `bash docs/measurements/2026-12-03-s32/call3.sh` from the repository root on one H200, carrying .data-fm and
# .devbundle (the call's tree without docs/measurements: the carry limit); ~6 minutes. Issue 16: call2 measured a
# real run's worker ready 14.5-16.8 s after its submission, its `warm` 9.9-12.1 s of it: the 3.6-4.7 s before
# `warm` began is Ray's, and the workers it starts import torch, dynamo and inductor first. Here the same warm run
# (8 trials) alternates the package with a copy whose workers import torch alone (in /tmp/variant, the one line
# changed), twice each, after a cold run that fills the caches; worker_ready now says how long the process had
# lived when the actor began (`process_s`) and when that was (`init_at`).
mkdir -p /tmp/site && tar xJf .devbundle/site.tar.xz -C /tmp/site
export PYTHONUNBUFFERED=1 PYTHONPYCACHEPREFIX=/tmp/pyc
unset PYTHONDONTWRITEBYTECODE
D=fashion-mnist:$PWD/.data-fm
ROOT=$PWD
mkdir -p /tmp/variant && cp -r sola_search bench /tmp/variant/
sed -i 's/        preload += \["torch._dynamo", "torch._inductor.compile_fx"\]/        pass/' /tmp/variant/sola_search/search/cluster.py
grep -n -A1 "if torch.cuda.device_count():" /tmp/variant/sola_search/search/cluster.py
T0=$(date +%s)
run() {  # name trials limit tree
  name=$1; trials=$2; limit=$3; tree=$4
  (while sleep 2; do cp /tmp/r/$name/events.jsonl $OUT/run_$name.events.jsonl 2>/dev/null; done) & copier=$!
  (cd $tree && PYTHONPATH=/tmp/site:$tree timeout $limit python bench/search_run.py \
      --out $OUT/run_$name.json -- --budget 8softmax --data $D --runs-dir /tmp/r --name $name --trials $trials \
      > $OUT/run_$name.log 2>&1)
  echo "== run $name rc $? at $(( $(date +%s) - T0 )) s"
  kill $copier; cp /tmp/r/$name/events.jsonl $OUT/run_$name.events.jsonl 2>/dev/null
  grep -h worker_ready $OUT/run_$name.events.jsonl | cut -c1-400
}
run cold 8 150 $ROOT
run all_a 8 60 $ROOT
run torch_a 8 60 /tmp/variant
run all_b 8 60 $ROOT
run torch_b 8 60 /tmp/variant
rm -f $OUT/*.study.db
(cd $OUT && tar czf /tmp/all.tgz * && rm -f * && mv /tmp/all.tgz .)  # the device returns at most 8 files
