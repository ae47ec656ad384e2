# Built for the next device call (issue 16), not run: `bash docs/measurements/2026-12-03-s27/call1.sh` from the
# repository root on one H200, carrying .data-fm; about 8-9 minutes (the steps are ordered by worth: a step cut
# by the call's 600 s is the last one).
# 1. Where a worker's imports go (the warm-up's build phase, 8.8-10 s): whether torch's modules have bytecode
#    caches on this image (the nineteenth session's profile compiled 1,445 modules from source), and an import of
#    torch._inductor with and without a writable bytecode cache (the CPU machine: 3.4-3.7 s with .pyc files,
#    8.4-9.9 s compiling from source). (From the twenty-sixth session's call4.sh, never run, which this and call2.sh replace.)
# 2. The fused MALA (bench/triton_mala.py: one Triton kernel forward, one backward, per sample and head) alone, at
#    every shape of a `default` step, against torch.compile(Attention.mala) (what the compiled blocks run),
#    forward + backward as CUDA graphs, at eight tilings too.
# 3. In a pack's step: the compiled blocks with the package's MALA (the peer), then with the kernels, same patterns
#    and seeds; a model-step's ms, and the two runs' loss curves and top-1 compared.
# 4. Step 2 at the fidelity geometry (x0.25, 128 px, batch 128: 1,024 tokens in stage 0), default tiling.
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
T0=$(date +%s)
python - <<'PY'
import os, sys, importlib.util
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
(cd bench && timeout 150 python mala_speed.py --preset default --tiles 32:2 32:4 64:2 64:8 128:4 128:8 256:4 256:8 \
    --out $OUT/mala_speed.json > $OUT/mala_speed.log 2>&1)
echo "== mala_speed default rc $? at $(( $(date +%s) - T0 )) s"; sed -n '/^what/,$p' $OUT/mala_speed.log | cut -c1-220
for way in torch triton; do
  timeout 210 python bench/compile_blocks.py --data fashion-mnist:$PWD/.data-fm --pack 8 --packs 1 --mala $way \
      --out $OUT/mala_$way.json > $OUT/mala_$way.log 2>&1
  echo "== compile_blocks --mala $way rc $? at $(( $(date +%s) - T0 )) s"
  grep -E "warm-up|pack [0-9]:|packs in|Error" $OUT/mala_$way.log | cut -c1-330 | tail -8
done
[ -f $OUT/mala_triton.json ] && python bench/compile_blocks.py --compare $OUT/mala_torch.json $OUT/mala_triton.json \
    --out $OUT/compare-mala.json 2>&1 | tail -2 | head -1
(cd bench && timeout 90 python mala_speed.py --preset default --set batch_size=128 width=0.25 resolution=128 \
    --out $OUT/mala_speed_fidelity.json > $OUT/mala_speed_fidelity.log 2>&1)
echo "== mala_speed fidelity rc $? at $(( $(date +%s) - T0 )) s"; sed -n '/^what/,$p' $OUT/mala_speed_fidelity.log | cut -c1-160
