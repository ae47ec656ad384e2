# Ran at 648ef3a, the worker's `warm_up(..., ahead=False)` in sola_search/search/cluster.py uncommitted; `--warm-up-ahead` left
# bench/compile_blocks.py afterwards with the dead end it measured (docs/performance.md, thirty-first session).
# `bash docs/measurements/2026-12-03-s31/call2.sh` from the repository root on one H200, carrying .data-fm and
# .devbundle (docs/measurements moved out of the tree for the call: the carry limit); ~8 minutes. Issue 16, a
# real run's worker warm-up (27.3 s in s30/call3): (1) a pack's new models copied on the device from the first
# one built (`_ModelPool.pristine`) instead of each drawn on the host; (2) the warm-up no longer preparing a pack
# ahead: the preparing thread's first preparation left to the first pack's training, which now waits on events
# (`QUEUE_STEPS` 2) rather than in the driver. Cold process first (caches), then the bench's three packs prepared
# ahead with the warm-up preparing one ahead (as before) and not, and with one eager step before a thread's first
# capture instead of three (`train.CAPTURE_WARM_STEPS`), then a real run of 48 trials (worker: not).
mkdir -p /tmp/site && tar xJf .devbundle/site.tar.xz -C /tmp/site
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 PYTHONPYCACHEPREFIX=/tmp/pyc
unset PYTHONDONTWRITEBYTECODE
D=fashion-mnist:$PWD/.data-fm
T0=$(date +%s)
one() {
  name=$1; shift
  timeout 170 python bench/compile_blocks.py --data $D --pack 8 --out $OUT/$name.json "$@" > $OUT/$name.log 2>&1
  echo "== $name rc $? at $(( $(date +%s) - T0 )) s"
  grep -E "warm-up|pack [0-9]|packs in|Error" $OUT/$name.log | cut -c1-330
}
one cold --packs 1
one warm_ahead_on --ahead-only --packs 3 --warm-up-ahead on
one warm_ahead_off --ahead-only --packs 3 --warm-up-ahead off
one warm_steps1 --ahead-only --packs 2 --warm-up-ahead off --capture-warm-steps 1
timeout 190 python bench/search_run.py --out $OUT/run.json -- --budget 8softmax \
    --data $D --runs-dir /tmp/r --name warm --trials 48 > $OUT/run.log 2>&1
echo "== run rc $? at $(( $(date +%s) - T0 )) s"
grep -E "trials_per_hour|span_s|worker_warm|trials_finished|trials_failed|top1_best|train_s_median" $OUT/run.log | cut -c1-300
cp /tmp/r/warm/events.jsonl $OUT/run.events.jsonl 2>/dev/null
(cd $OUT && tar czf logs.tgz *.log && rm -f *.log)
