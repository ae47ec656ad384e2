# Device call 1 of the twenty-ninth session (issue 16), one H200: `bash docs/measurements/2026-12-03-s29/call1.sh`
# from the repository root, carrying .data-fm and .devbundle; about 8-9 minutes. (The twenty-eighth session's
# call3.sh, never run, with room for a cold run's 146 s warm-up and a bytecode cache.)
# Two real runs, one after the other, 56 trials each (7 packs): the defaults as committed (the fused MALA's dots
# as three TF32 products), then with one TF32 product (`triton_mala.PRECISION = "tf32"`, set in this call's copy
# of the tree: 1.034x a model-step in s28 call 2, loss curves within run-to-run noise). Trials an hour count from
# the first trial's start to the last one's end (warm-ups excluded). Python writes its bytecode under /tmp/pyc in
# the first run, as pip leaves it in a user's install (the device image's torch has none), so the second run's
# worker warm-up reads a warm inductor cache and bytecode; only the other precision's MALA kernels compile.
set -u
mkdir -p /tmp/site && tar xJf .devbundle/site.tar.xz -C /tmp/site
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 PYTHONPYCACHEPREFIX=/tmp/pyc
unset PYTHONDONTWRITEBYTECODE
T0=$(date +%s)
D=fashion-mnist:$PWD/.data-fm
for prec in tf32x3 tf32; do
  limit=300
  [ $prec = tf32 ] && limit=240 && sed -i 's/^PRECISION = "tf32x3"/PRECISION = "tf32"/' sola_search/proxies/triton_mala.py
  grep -n '^PRECISION' sola_search/proxies/triton_mala.py
  timeout $limit python bench/search_run.py --out $OUT/run_$prec.json -- --budget 8softmax --data $D \
      --runs-dir /tmp/r --name $prec --trials 56 > $OUT/run_$prec.log 2>&1
  echo "== run $prec rc $? at $(( $(date +%s) - T0 )) s"
  grep -E "trials_per_hour|span_s|worker_warm|trials_finished|trials_failed|top1_best|train_s_median" \
      $OUT/run_$prec.log | cut -c1-300
  cp /tmp/r/$prec/events.jsonl $OUT/run_$prec.events.jsonl 2>/dev/null
done
