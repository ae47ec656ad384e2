# Device call 4 of the twenty-ninth session (issue 16), one H200: `bash docs/measurements/2026-12-03-s29/call4.sh`
# from the repository root, carrying .data-fm; about 5 minutes.
# Where a warm warm-up's 31 s go. Call 2's cProfile could not say: it sees one thread and Python's own time, and
# its total (16.5 s) was half the warm-up's. Here `--profile-warm-up` samples every working thread's Python stack
# every 5 ms (C calls charged to the line that made them). (1) cold: empty inductor cache, bytecode written under
# /tmp/pyc (what pip leaves); (2) warm, pack of 8, sampled; (3) warm, a pack of 1: how much of the warm-up grows
# with the pack (the nineteenth session: ~3 s a model between packs of 8, 12 and 16).
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 PYTHONPYCACHEPREFIX=/tmp/pyc
unset PYTHONDONTWRITEBYTECODE
D=fashion-mnist:$PWD/.data-fm
T0=$(date +%s)
one() {
  name=$1; shift
  timeout 200 python bench/compile_blocks.py --data $D --packs 1 --out $OUT/$name.json "$@" > $OUT/$name.log 2>&1
  echo "== $name rc $? at $(( $(date +%s) - T0 )) s"
  grep -E "warm-up|pack 0:|Error" $OUT/$name.log | cut -c1-300 | head -3
}
one cold --pack 8
one warm8_sampled --pack 8 --profile-warm-up
one warm1 --pack 1
grep -A12 "seconds at work" $OUT/warm8_sampled.log | cut -c1-200
