# Built for the next device call (issue 16), not run: `bash docs/measurements/2026-12-03-s27/call2.sh` from the
# repository root on one H200, carrying .data-fm; about 9 minutes.
# 1. The Triton depthwise kernels (bench/triton_dwconv.py, 1.01x cuDNN at one tiling in the twenty-first session)
#    at ten tilings, each shape's fastest against cuDNN: what per-shape tuning could give (their 20 % of the step).
# 2. In a pack's step: the compiled blocks with cuDNN's depthwise convolutions (the peer), then with the kernels,
#    each shape at its fastest tiling from step 1 (`compile_blocks --dwconv triton --dwconv-tiles`); a
#    model-step's ms, and the two runs' loss curves and top-1 compared.
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
T0=$(date +%s)
timeout 150 python bench/dwconv_speed.py --preset default --tiles 1024:4:64 2048:4:64 8192:4:64 16384:8:64 \
    2048:2:64 4096:8:64 4096:4:16 4096:4:256 2048:4:256 8192:8:256 --out $OUT/dwconv_tiles.json > $OUT/dwconv_tiles.log 2>&1
echo "== dwconv_speed rc $? at $(( $(date +%s) - T0 )) s"; sed -n '/^what/,$p' $OUT/dwconv_tiles.log | cut -c1-160
for way in cudnn triton; do
  timeout 220 python bench/compile_blocks.py --data fashion-mnist:$PWD/.data-fm --pack 8 --packs 1 --dwconv $way \
      $([ $way = triton ] && [ -f $OUT/dwconv_tiles.json ] && echo --dwconv-tiles $OUT/dwconv_tiles.json) \
      --out $OUT/dwconv_$way.json > $OUT/dwconv_$way.log 2>&1
  echo "== compile_blocks --dwconv $way rc $? at $(( $(date +%s) - T0 )) s"
  grep -E "warm-up|pack [0-9]:|packs in|Error" $OUT/dwconv_$way.log | cut -c1-330 | tail -8
done
[ -f $OUT/dwconv_triton.json ] && python bench/compile_blocks.py --compare $OUT/dwconv_cudnn.json \
    $OUT/dwconv_triton.json --out $OUT/compare-dwconv.json 2>&1 | tail -2 | head -1
