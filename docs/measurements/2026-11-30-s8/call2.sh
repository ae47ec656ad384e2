# Device call 2 (issue 16): real `sola-search run`s at the default preset, compiled blocks (cold inductor cache) on
# GPU 0 beside the same run without them on GPU 1; then, on GPU 1, compiled blocks again with the machine's cache warm.
set -u
ROOT=$(cd ../../.. && pwd)
mkdir -p /tmp/site && tar xJf $ROOT/.devbundle/site.tar.xz -C /tmp/site
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
D=fashion-mnist:$ROOT/.data/fashion-mnist
R=/tmp/r; mkdir -p $R; rm -rf /tmp/torchinductor_root
A="--budget 8softmax --data $D"
( CUDA_VISIBLE_DEVICES=0 timeout 290 python bench/search_run.py --out $R/run_blocks_cold.json -- $A --trials 24 --compile blocks --runs-dir $R/runs --name blocks_cold ) > $OUT/gpu0.log 2>&1 &
( CUDA_VISIBLE_DEVICES=1 timeout 200 python bench/search_run.py --out $R/run_off.json -- $A --trials 32 --compile off --runs-dir $R/runs --name off
  for i in $(seq 120); do grep -q worker_ready $R/runs/blocks_cold/events.jsonl 2>/dev/null && break; sleep 1; done
  echo "cache warm after $i s of waiting: $(du -sh /tmp/torchinductor_root)"
  CUDA_VISIBLE_DEVICES=1 timeout 130 python bench/search_run.py --out $R/run_blocks_warm.json -- $A --trials 24 --compile blocks --runs-dir $R/runs --name blocks_warm
) > $OUT/gpu1.log 2>&1 &
wait
rm -rf $R/runs; tar czf $OUT/call2.tgz -C $R .
