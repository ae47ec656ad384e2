# `bash docs/measurements/2026-12-03-s30/call3.sh` from the repository root on one H200, carrying .data-fm and
# .devbundle; ~6 minutes. Issue 16: real runs at the defaults with the depthwise convolutions now through the
# package's Triton kernels (`triton_dwconv`, the warps' rule): 48 trials on a fresh machine (the worker's cold
# warm-up), then 48 more in a new run (its warm-up warm: inductor's, Triton's and the bytecode caches filled).
mkdir -p /tmp/site && tar xJf .devbundle/site.tar.xz -C /tmp/site
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 PYTHONPYCACHEPREFIX=/tmp/pyc
unset PYTHONDONTWRITEBYTECODE
T0=$(date +%s)
for name in cold warm; do
  timeout $([ $name = cold ] && echo 220 || echo 170) python bench/search_run.py --out $OUT/run_$name.json -- --budget 8softmax \
      --data fashion-mnist:$PWD/.data-fm --runs-dir /tmp/r --name $name --trials 48 > $OUT/run_$name.log 2>&1
  echo "== run $name rc $? at $(( $(date +%s) - T0 )) s"
  grep -E "trials_per_hour|span_s|worker_warm|trials_finished|trials_failed|top1_best|train_s_median" \
      $OUT/run_$name.log | cut -c1-300
  cp /tmp/r/$name/events.jsonl $OUT/run_$name.events.jsonl 2>/dev/null
done
