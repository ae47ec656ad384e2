# Device call 2 of the twenty-sixth session (issue 16), one H200: `bash docs/measurements/2026-12-03-s26/call2.sh`
# from the repository root, carrying .data-fm. Inductor's cache starts empty. Ran with the benches of 0c35dc7.
# Two of inductor's own settings as levers on the fused kernels (42 % of the step, fifteenth session), each in its
# own process with the patterns and seed of call 1's peer (`--sdpa auto`: 6.449 / 6.463 ms a model-step), its
# top-1 and loss curves compared with the peer's record.
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
T0=$(date +%s)
D=fashion-mnist:$PWD/.data-fm
PEER=docs/measurements/2026-12-03-s26/call1/sdpa-auto.json
for lever in coordinate_descent_tuning=True aggressive_fusion=True; do
  name=${lever%%=*}
  limit=$([ $name = coordinate_descent_tuning ] && echo 330 || echo 190)
  timeout $limit python bench/compile_blocks.py --data $D --pack 8 --packs 2 --inductor $lever \
      --out $OUT/$name.json > $OUT/$name.log 2>&1
  echo "== compile_blocks --inductor $lever rc $? at $(( $(date +%s) - T0 )) s"
  grep -E "warm-up|pack [0-9]:|packs in" $OUT/$name.log | cut -c1-330
  [ -f $OUT/$name.json ] && python bench/compile_blocks.py --compare $PEER $OUT/$name.json --out $OUT/compare-$name.json 2>&1 | tail -2 | head -1
done
