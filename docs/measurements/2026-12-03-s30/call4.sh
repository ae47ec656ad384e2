# Built for the next device call (issue 16), not run: `bash docs/measurements/2026-12-03-s30/call4.sh` from the
# repository root on one H200, carrying .data-fm (no .devbundle: no Ray run); about 5 minutes. The device tool
# counts the carried tree in 4 KiB blocks against 64 MiB: .data-fm and .devbundle together no longer fit with it.
# Call 3's real-run worker warmed in 27.3 s against the bench's 11.2-13.4 s: with `--ahead 1` a worker's warm-up
# prepares two packs (the one queued ahead on its own thread and stream group too). Where those seconds go:
# the warm-up as such a worker runs it (`--ahead-only`: warm_up(ahead=True), then packs prepared ahead), sampled
# and not; and a pack of 1 beside a pack of 8 (what is fixed, what grows with the models).
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
one ahead --pack 8 --ahead-only --packs 2
one ahead_sampled --pack 8 --ahead-only --packs 2 --profile-warm-up
one pack1 --pack 1
one pack8 --pack 8
grep -A30 "innermost" $OUT/ahead_sampled.log | cut -c1-220 | head -30
grep -A25 "on the stack" $OUT/ahead_sampled.log | cut -c1-220 | head -25
# the device tool brings back 8 files at most: the logs in one archive
(cd $OUT && tar czf logs.tgz *.log && rm -f *.log)
