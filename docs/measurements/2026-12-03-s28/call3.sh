# Built for the next device call (issue 16), not run: `bash docs/measurements/2026-12-03-s28/call3.sh` from the
# repository root on one H200, carrying .data-fm and .devbundle; about 8-9 minutes.
# Two real runs, one after the other, 56 trials each (7 packs): the defaults as committed (the fused MALA's dots
# as three TF32 products, 2 warps only for heads of <= 16 tokens: neither measured in a real run), then the same
# with one TF32 product (`triton_mala.PRECISION = "tf32"`, set in this call's copy of the tree: 1.034x a model-step
# in s28 call 2, loss curves within run-to-run noise). The second run reads the first's inductor cache (only the
# Triton kernels of the other precision compile), so only its warm-up is shorter.
set -u
mkdir -p /tmp/site && tar xJf .devbundle/site.tar.xz -C /tmp/site
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
T0=$(date +%s)
D=fashion-mnist:$PWD/.data-fm
for prec in tf32x3 tf32; do
  [ $prec = tf32 ] && sed -i 's/^PRECISION = "tf32x3"/PRECISION = "tf32"/' sola_search/proxies/triton_mala.py
  grep -n '^PRECISION' sola_search/proxies/triton_mala.py
  timeout 270 python bench/search_run.py --out $OUT/run_$prec.json -- --budget 8softmax --data $D \
      --runs-dir /tmp/r --name $prec --trials 56 > $OUT/run_$prec.log 2>&1
  echo "== run $prec rc $? at $(( $(date +%s) - T0 )) s"
  grep -E "trials_per_hour|span_s|worker_warm|trials_finished|trials_failed|top1_best|train_s_median" \
      $OUT/run_$prec.log | cut -c1-300
  cp /tmp/r/$prec/events.jsonl $OUT/run_$prec.events.jsonl 2>/dev/null
done
