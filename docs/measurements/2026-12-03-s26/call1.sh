# Device call 1 of the twenty-sixth session (issue 16), one H200: `bash docs/measurements/2026-12-03-s26/call1.sh`
# from the repository root, carrying .data-fm. Inductor's cache starts empty. Ran at f87afb8, the trial of
# train.SDPA_BACKENDS and `compile_blocks --sdpa` (reverted in 25afb99 after this call).
# 1. Softmax attention at the proxy's shapes by backend, stage 0 (256 tokens) included this time.
# 2. The same two packs with torch's SDPA choice and with the memory-efficient kernel (train.SDPA_BACKENDS), each
#    in its own process (compiled blocks bake in the kernel they were traced with); their loss curves compared.
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
T0=$(date +%s)
D=fashion-mnist:$PWD/.data-fm
timeout 90 python bench/sdpa_backends.py --preset default --out $OUT/sdpa_backends.json > $OUT/sdpa_backends.log 2>&1
echo "== sdpa_backends rc $? at $(( $(date +%s) - T0 )) s"; sed -n '/^stage/,$p' $OUT/sdpa_backends.log | cut -c1-110
for way in auto efficient,math; do
  timeout 230 python bench/compile_blocks.py --data $D --pack 8 --packs 2 --sdpa $way \
      --out $OUT/sdpa-$way.json > $OUT/sdpa-$way.log 2>&1
  echo "== compile_blocks --sdpa $way rc $? at $(( $(date +%s) - T0 )) s"
  grep -E "warm-up|pack [0-9]:|packs in" $OUT/sdpa-$way.log | cut -c1-330
done
python bench/compile_blocks.py --compare $OUT/sdpa-auto.json $OUT/sdpa-efficient,math.json --out $OUT/compare.json 2>&1 | tail -12
