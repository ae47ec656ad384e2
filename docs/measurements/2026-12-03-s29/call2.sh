# Device call 2 of the twenty-ninth session (issue 16), one H200: `bash docs/measurements/2026-12-03-s29/call2.sh`
# from the repository root, carrying .data-fm; about 7 minutes.
# A worker's warm-up as a user's install would see it. The device image sets PYTHONDONTWRITEBYTECODE=1 and its torch
# ships without `__pycache__`, so every process there compiles torch's modules from source (s28: the imports took
# 10-12.7 s there, 3 s with a bytecode cache); `pip install` writes those caches, so a user's workers never pay it.
# (1) cold: empty inductor cache, bytecode written under /tmp/pyc as it imports (what pip would have left);
# (2) warm, without bytecode (the figure earlier sessions quoted); (3) warm, with it; (4) as (3) under cProfile
# (`--profile-warm-up`): where the rest of a warm warm-up goes. Then whether this torch has dynamo's caching
# precompile (traced graphs and guards loaded instead of traced again), a lever for what remains.
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
D=fashion-mnist:$PWD/.data-fm
T0=$(date +%s)
one() {
  name=$1; shift
  timeout 240 python bench/compile_blocks.py --data $D --pack 8 --packs 1 --out $OUT/$name.json "$@" \
      > $OUT/$name.log 2>&1
  echo "== $name rc $? at $(( $(date +%s) - T0 )) s"
  grep -E "warm-up|pack 0:|Error" $OUT/$name.log | cut -c1-300 | head -3
}
with_pyc() { (unset PYTHONDONTWRITEBYTECODE; export PYTHONPYCACHEPREFIX=/tmp/pyc; one "$@"); }
echo "PYTHONDONTWRITEBYTECODE=${PYTHONDONTWRITEBYTECODE:-unset}"
with_pyc cold
one warm_nopyc
with_pyc warm_pyc
with_pyc warm_pyc_profile --profile-warm-up
python - <<'PY'
import time
t = time.perf_counter()
import torch, torch._dynamo.config as c
print("torch", torch.__version__, "caching_precompile" in dir(c), "import", round(time.perf_counter() - t, 2), "s")
PY
du -sh /tmp/pyc 2>/dev/null
