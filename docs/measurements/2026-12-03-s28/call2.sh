# Device call 2 of the twenty-eighth session (issue 16), one H200: `bash docs/measurements/2026-12-03-s28/call2.sh`
# from the repository root, carrying .data-fm; about 7 minutes.
# The same training with and without the fused MALA, same patterns and seed, one pack of 8 each:
# `compile_blocks --mala torch` (the peer: the package's formula compiled within the blocks); `--mala triton`
# (the package's default: dots as three TF32 products); `--mala triton --mala-precision tf32` (one TF32 product);
# `--mala triton` again (its difference from the first is this training's run-to-run noise). The torch run against
# the twenty-seventh session's call 1 `mala_torch.json` is the peer's own noise.
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
T0=$(date +%s)
for run in torch:tf32x3 triton:tf32x3 triton:tf32 triton:tf32x3:2; do
  IFS=: read way prec again <<< "$run"; name=${way}_${prec}${again}
  timeout 200 python bench/compile_blocks.py --data fashion-mnist:$PWD/.data-fm --pack 8 --packs 1 --mala $way \
      --mala-precision $prec --out $OUT/mala_$name.json > $OUT/mala_$name.log 2>&1
  echo "== compile_blocks --mala $way --mala-precision $prec ($name) rc $? at $(( $(date +%s) - T0 )) s"
  grep -E "warm-up|pack [0-9]:|packs in|Error" $OUT/mala_$name.log | cut -c1-300 | tail -4
done
S27=docs/measurements/2026-12-03-s27/call1
for pair in "torch_tf32x3 triton_tf32x3" "torch_tf32x3 triton_tf32" "triton_tf32x3 triton_tf32x32" \
            "torch_tf32x3 triton_tf32x32" "triton_tf32x3 triton_tf32"; do
  set -- $pair
  python bench/compile_blocks.py --compare $OUT/mala_$1.json $OUT/mala_$2.json --out $OUT/compare.json 2>&1 | tail -2 | head -1
done
python bench/compile_blocks.py --compare $S27/mala_torch.json $OUT/mala_torch_tf32x3.json --out $OUT/compare.json 2>&1 | tail -2 | head -1
rm -f $OUT/compare.json
