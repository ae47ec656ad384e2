# Replaced, not run: the twenty-seventh session's docs/measurements/2026-12-03-s27/call1.sh and call2.sh carry its
# steps 1 and 3 (step 2, SDPA's stage 0, was dropped: no SDPA kernel gained in a pack).
# Built for the next device call (issue 16), not run: `bash docs/measurements/2026-12-03-s26/call4.sh` from the
# repository root on one H200, carrying .data-fm; about 5 minutes, nothing compiled by inductor.
# 1. The Triton depthwise kernels (bench/triton_dwconv.py, 1.01x cuDNN at one tiling in the twenty-first session)
#    at ten tilings, each shape's fastest against cuDNN: what per-shape tuning could give (their 20 % of the step).
# 2. Softmax attention by backend once more: stage 0 (256 tokens), captured with thread-local errors.
# 3. Where a worker's imports go (the warm-up's build phase, 8.8-10 s): whether torch's modules have bytecode
#    caches on this image (the nineteenth session's profile compiled 1,445 modules from source), and an import of
#    torch._inductor with and without a writable bytecode cache (on the CPU machine, whose venv has torch's .pyc
#    files: 3.4-3.7 s with them, 8.4-9.9 s compiling from source).
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
T0=$(date +%s)
timeout 300 python bench/dwconv_speed.py --preset default --tiles 1024:4:64 2048:4:64 8192:4:64 16384:8:64 \
    2048:2:64 4096:8:64 4096:4:16 4096:4:256 2048:4:256 8192:8:256 --out $OUT/dwconv_tiles.json > $OUT/dwconv_tiles.log 2>&1
echo "== dwconv_speed rc $? at $(( $(date +%s) - T0 )) s"; sed -n '/^what/,$p' $OUT/dwconv_tiles.log | cut -c1-160
timeout 60 python bench/sdpa_backends.py --preset default --out $OUT/sdpa_backends.json > $OUT/sdpa_backends.log 2>&1
echo "== sdpa_backends rc $?"; sed -n '/^stage/,$p' $OUT/sdpa_backends.log | head -9 | cut -c1-110
python - <<'PY'
import os, sys, sysconfig, importlib.util
torch_dir = os.path.dirname(importlib.util.find_spec("torch").origin)
print("python", sys.version.split()[0], "dont_write_bytecode", sys.dont_write_bytecode, "pycache_prefix", sys.pycache_prefix)
print("torch dir", torch_dir, "writable", os.access(torch_dir, os.W_OK), "__pycache__ there",
      os.path.isdir(os.path.join(torch_dir, "__pycache__")), "env PYTHONDONTWRITEBYTECODE",
      os.environ.get("PYTHONDONTWRITEBYTECODE"))
PY
IMP='import time; t = time.perf_counter(); import torch, torch._dynamo, torch._inductor.compile_fx; print(f"{time.perf_counter() - t:.2f} s")'
for i in 1 2; do echo "import torch._inductor, default caches, run $i: $(python -c "$IMP")"; done
for i in 1 2; do echo "import torch._inductor, bytecode written to /tmp/pyc, run $i: $(env -u PYTHONDONTWRITEBYTECODE \
    PYTHONPYCACHEPREFIX=/tmp/pyc python -c "$IMP")"; done
