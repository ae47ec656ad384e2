# Built, not run (the thirty-second session's device time ran out before it): `bash
# docs/measurements/2026-12-03-s32/call4.sh` from the repository root on one H200, carrying .data-fm and .devbundle
# (the call's tree without docs/measurements); ~3 minutes. Issue 16:
# the embedded Ray no longer starts idle workers when the driver connects (one a core, each holding torch, dynamo
# and inductor once preloaded: ~0.7 GiB apiece, and 16 importing at once beside the run's warm-up); its one
# worker then starts on demand. How long a worker's process takes from the actor's submission to its __init__,
# the package (no idle workers) alternating with a copy that keeps Ray's prestarted ones (/tmp/variant, the one
# setting removed), runs of `--compile off` so that a fresh machine's empty compile caches do not matter.
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
  (while sleep 1; do cp /tmp/r/$name/events.jsonl $OUT/$name.events.jsonl 2>/dev/null; done) & copier=$!
  (cd $tree && PYTHONPATH=/tmp/site:$tree timeout $limit python -m sola_search.cli run --quiet --budget 8softmax \
      --data $D --runs-dir /tmp/r --name $name --trials 8 --compile off > /dev/null 2>&1)
  kill $copier; cp /tmp/r/$name/events.jsonl $OUT/$name.events.jsonl 2>/dev/null
  echo "== $name at $(( $(date +%s) - T0 )) s"
  grep -h worker_ready $OUT/$name.events.jsonl | cut -c1-300
}
run none_a 35 $ROOT
run prestart_a 35 /tmp/variant
run none_b 35 $ROOT
run prestart_b 35 /tmp/variant
