# `bash docs/measurements/2026-12-03-s32/call2.sh` from the repository root on one H200, carrying .data-fm and
# .devbundle, with the previous commit's sola_search and bench copied to .base (git worktree of f7751a1; the
# call's tree without docs/measurements: the carry limit); ~8 minutes. call1.sh again without its key logs (an
# empty TORCH_LOGS stops torch 2.11's import: its warm runs never started): a real run's worker warm-up with the
# embedded Ray's workers started unniced by its system config (no per-actor runtime_env) with torch, dynamo and
# inductor imported as they start. A cold run fills the caches as a Ray worker uses them, then three warm runs of
# 8 trials: new code, the previous commit's, new again. Last, caches of their own (TORCHINDUCTOR_CACHE_DIR) filled
# by a bench process, then a real run on them: does its worker load the graphs (worker_ready's `graphs`)?
mkdir -p /tmp/site && tar xJf .devbundle/site.tar.xz -C /tmp/site
export PYTHONUNBUFFERED=1 PYTHONPYCACHEPREFIX=/tmp/pyc
unset PYTHONDONTWRITEBYTECODE
D=fashion-mnist:$PWD/.data-fm
ROOT=$PWD
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
run warm_new 8 70 $ROOT
run warm_old 8 70 $ROOT/.base
run warm_new2 8 70 $ROOT
export TORCHINDUCTOR_CACHE_DIR=/tmp/bench_caches
PYTHONPATH=/tmp/site:$ROOT timeout 140 python bench/compile_blocks.py --data $D --pack 8 --packs 1 \
    --out $OUT/bench_cold.json > $OUT/bench_cold.log 2>&1
echo "== bench_cold rc $? at $(( $(date +%s) - T0 )) s"
grep -E "warm-up" $OUT/bench_cold.log | cut -c1-300
run on_bench 8 75 $ROOT
rm -f $OUT/*.study.db
(cd $OUT && tar czf /tmp/all.tgz * && rm -f * && mv /tmp/all.tgz .)  # the device returns at most 8 files
