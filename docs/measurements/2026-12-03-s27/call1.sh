# Built for the next device call (issue 16), not run: `bash docs/measurements/2026-12-03-s27/call1.sh` from the
# repository root on one H200, carrying .data-fm; about 8 minutes.
# The fused MALA (bench/triton_mala.py: one Triton kernel forward, one backward, per sample and head):
# 1. alone, at every shape of a step at the default preset and the fidelity geometry, against
#    torch.compile(Attention.mala) (what the compiled blocks run), forward + backward as CUDA graphs;
# 2. in a pack's step: the compiled blocks with the package's MALA (the peer), then with the kernels, same
#    patterns and seeds; a model-step's ms, and the two runs' loss curves and top-1 compared.
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
T0=$(date +%s)
cd bench
for geo in "" "batch_size=128 width=0.25 resolution=128"; do
  timeout 100 python mala_speed.py --preset default ${geo:+--set $geo} --out $OUT/mala_speed${geo:+_fidelity}.json \
      > $OUT/mala_speed${geo:+_fidelity}.log 2>&1
  echo "== mala_speed ${geo:-default} rc $? at $(( $(date +%s) - T0 )) s"; sed -n '/^what/,$p' $OUT/mala_speed${geo:+_fidelity}.log | cut -c1-160
done
cd ..
for way in torch triton; do
  timeout 230 python bench/compile_blocks.py --data fashion-mnist:$PWD/.data-fm --pack 8 --packs 2 --mala $way \
      --out $OUT/mala_$way.json > $OUT/mala_$way.log 2>&1
  echo "== compile_blocks --mala $way rc $? at $(( $(date +%s) - T0 )) s"
  grep -E "warm-up|pack [0-9]:|packs in|Error|error" $OUT/mala_$way.log | cut -c1-330 | tail -8
done
[ -f $OUT/mala_triton.json ] && python bench/compile_blocks.py --compare $OUT/mala_torch.json $OUT/mala_triton.json \
    --out $OUT/compare-mala.json 2>&1 | tail -2 | head -1
