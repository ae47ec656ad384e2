# Device call 3 of the twenty-sixth session (issue 16), one H200: `bash docs/measurements/2026-12-03-s26/call3.sh`
# from the repository root, carrying .data-fm. Inductor's cache starts empty (the pack's preparation compiles). Ran with the benches of 0c35dc7.
# A pack's evaluation (its graph over the validation split) beside 100 training replays on another stream,
# against the two one after the other: how much of the 0.44 s a pack's evaluation costs could be hidden.
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
timeout 170 python bench/pack_joins.py --data fashion-mnist:$PWD/.data-fm --pack 8 --ways eval --steps 100 \
    --repeat 3 --out $OUT/eval_beside.json > $OUT/eval_beside.log 2>&1
echo "== pack_joins rc $?"; grep -E "prepared|round|^way|^evaluation|^training|^one" $OUT/eval_beside.log | cut -c1-150
