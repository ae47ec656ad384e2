# `bash docs/measurements/2026-12-03-s32/call1.sh` from the repository root on one H200, carrying .data-fm and
# .devbundle, with the previous commit's sola_search and bench copied to .base (git worktree of f7751a1; the
# call's tree without docs/measurements: the carry limit); ~7 minutes. Issue 16, a real run's worker warm-up:
# the embedded Ray now starts its workers unniced by its system config (no per-actor runtime_env, which made
# each actor wait for a fresh process) with torch, dynamo and inductor imported as they start. A cold run fills
# the caches as a Ray worker uses them (its workers' autograd-cache key details logged), then three warm runs of
# 8 trials: new code, the previous commit's, new again. Last a bench warm-up (4 threads) from the Ray-filled
# caches with the same key details logged: whether a bench process loads what a Ray worker stored.
mkdir -p /tmp/site && tar xJf .devbundle/site.tar.xz -C /tmp/site
export PYTHONUNBUFFERED=1 PYTHONPYCACHEPREFIX=/tmp/pyc
unset PYTHONDONTWRITEBYTECODE
D=fashion-mnist:$PWD/.data-fm
ROOT=$PWD
KEYS="+torch._functorch._aot_autograd.autograd_cache"
T0=$(date +%s)
run() {  # name trials limit tree [TORCH_LOGS]
  name=$1; trials=$2; limit=$3; tree=$4
  (while sleep 2; do cp /tmp/r/$name/events.jsonl $OUT/run_$name.events.jsonl 2>/dev/null; done) & copier=$!
  (cd $tree && PYTHONPATH=/tmp/site:$tree TORCH_LOGS=$5 timeout $limit python bench/search_run.py \
      --out $OUT/run_$name.json -- --budget 8softmax --data $D --runs-dir /tmp/r --name $name --trials $trials \
      > $OUT/run_$name.log 2>&1)
  echo "== run $name rc $? at $(( $(date +%s) - T0 )) s"
  kill $copier; cp /tmp/r/$name/events.jsonl $OUT/run_$name.events.jsonl 2>/dev/null
  grep -h worker_ready $OUT/run_$name.events.jsonl | cut -c1-400
}
run cold 8 150 $ROOT "$KEYS"
mkdir -p /tmp/keys && cp /tmp/ray/session_latest/logs/worker-*.err /tmp/keys/ 2>/dev/null
run warm_new 8 75 $ROOT
run warm_old 8 75 $ROOT/.base
run warm_new2 8 75 $ROOT
PYTHONPATH=/tmp/site:$ROOT TORCH_LOGS=$KEYS timeout 150 python bench/compile_blocks.py --data $D --pack 8 --packs 1 \
    --threads 4 --out $OUT/bench4.json > /tmp/keys/bench4.log 2>&1
echo "== bench4 rc $? at $(( $(date +%s) - T0 )) s"
grep -E "warm-up" /tmp/keys/bench4.log | cut -c1-400
(cd $OUT && tar czf logs.tgz *.log -C /tmp keys && rm -f *.log)
