# `bash docs/measurements/2026-12-03-s30/call2.sh` from the repository root on one H200, carrying .data-fm; ~7 min.
# Call 1: the depthwise convolutions as Triton kernels take the warm warm-up to 13.4 s (cuDNN's autotuning gone),
# but a pack's model-step to 6.25-6.28 ms against cuDNN's 6.00-6.02 (call 5 of the twenty-ninth session).
# 1. The kernels at ten tilings, each shape's fastest against cuDNN alone (the twenty-seventh session's sweep).
# 2. A pack with the default tiling (cold: fills inductor's cache, which the tiling does not change), then with
#    each shape at its fastest tiling (twice: the first compiles the new tilings' kernels): the model-step.
set -u
export PYTHONPATH=$PWD:$PWD/bench PYTHONUNBUFFERED=1 PYTHONPYCACHEPREFIX=/tmp/pyc
unset PYTHONDONTWRITEBYTECODE
D=fashion-mnist:$PWD/.data-fm
T0=$(date +%s)
timeout 200 python bench/dwconv_speed.py --preset default --tiles 1024:4:64 2048:4:64 8192:4:64 16384:8:64 \
    2048:2:64 4096:8:64 4096:4:16 4096:4:256 2048:4:256 8192:8:256 --out $OUT/dwconv_tiles.json > $OUT/dwconv_tiles.log 2>&1
echo "== dwconv_speed rc $? at $(( $(date +%s) - T0 )) s"; sed -n '/^what/,$p' $OUT/dwconv_tiles.log | cut -c1-200
one() {
  name=$1; shift
  timeout 200 python bench/compile_blocks.py --data $D --pack 8 --packs 1 --dwconv triton --out $OUT/$name.json \
      "$@" > $OUT/$name.log 2>&1
  echo "== $name rc $? at $(( $(date +%s) - T0 )) s"
  grep -E "warm-up|pack 0:|Error|tilings" $OUT/$name.log | cut -c1-300 | head -4
}
one cold_default
[ -f $OUT/dwconv_tiles.json ] && one tuned --dwconv-tiles $OUT/dwconv_tiles.json
[ -f $OUT/dwconv_tiles.json ] && one tuned_again --dwconv-tiles $OUT/dwconv_tiles.json
[ -f $OUT/tuned.json ] && python bench/compile_blocks.py --compare $OUT/cold_default.json $OUT/tuned.json \
    --out $OUT/compare.json 2>&1 | tail -2 | head -1
python -c "import json; print(json.load(open('$OUT/tuned.json')).get('dwconv_tiles'))" 2>&1 | cut -c1-600
