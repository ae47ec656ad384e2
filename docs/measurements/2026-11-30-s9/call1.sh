# Device call 1 (issue 14): `run --seeds K` on a GPU. GPU 0: a real `run` at the default preset with one
# seed (the path every run takes; compare trials/hour and top-1 with the eighth session's 1,569/hour and
# 0.851). GPU 1, once GPU 0's worker has filled the inductor cache: `sola-search proxy` (one model, one
# seed), then a `run --seeds 2` (a pack of 8 models = 4 patterns x 2 seeds).
set -u
ROOT=$PWD  # run from the repository root: bash docs/measurements/2026-11-30-s9/call1.sh
mkdir -p /tmp/site && tar xJf $ROOT/.devbundle/site.tar.xz -C /tmp/site
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
D=fashion-mnist:$ROOT/.data/fashion-mnist
R=/tmp/r; mkdir -p $R; rm -rf /tmp/torchinductor_root
A="--budget 8softmax --data $D"
( CUDA_VISIBLE_DEVICES=0 timeout 300 python bench/search_run.py --out $R/run_k1.json -- $A --trials 24 --runs-dir $R/runs --name k1 ) > $R/gpu0.log 2>&1 &
(
  for i in $(seq 200); do grep -q worker_ready $R/runs/k1/events.jsonl 2>/dev/null && break; sleep 1; done
  echo "cache warm after $i s of waiting"
  CUDA_VISIBLE_DEVICES=1 timeout 90 python -m sola_search.cli proxy all-linear --data $D --json > $R/proxy_k1.json
  echo "proxy rc $?"; cat $R/proxy_k1.json | head -c 600; echo
  CUDA_VISIBLE_DEVICES=1 timeout 200 python bench/search_run.py --out $R/run_k2.json -- $A --trials 24 --seeds 2 --runs-dir $R/runs --name k2
  CUDA_VISIBLE_DEVICES=1 python -m sola_search.cli pareto $R/runs/k2 > $R/pareto_k2.txt 2>&1
  CUDA_VISIBLE_DEVICES=1 python -m sola_search.cli pareto $R/runs/k1 > $R/pareto_k1.txt 2>&1
) > $R/gpu1.log 2>&1 &
wait
for n in k1 k2; do cp $R/runs/$n/events.jsonl $R/run_$n.events.jsonl; cp $R/runs/$n/run.json $R/run_$n.run.json; done
rm -rf $R/runs; tar czf $OUT/call1.tgz -C $R .
tail -5 $R/gpu0.log; tail -25 $R/gpu1.log
