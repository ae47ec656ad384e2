# Device call 2 of the twenty-third session (issue 16), one H200: `bash docs/measurements/2026-12-02-s23/call2.sh`
# from the repository root, carrying .data-fm.
# Call 1 found the steady state of `--ahead 1` no faster than one pack after another (a pack's cycle 18.1-19.4 s in a
# real run: its training 17.2-17.9 s against 15.7, while its loop spent 2.1-2.8 s preparing the next pack). Here the
# same 4 packs one after another, then prepared ahead with 32 (the package's), 96 and 160 steps queued on the device
# before the pack training prepares the next (train.AHEAD_STEPS), each pack's phases with the device's idle seconds
# during the preparation (`idle`): is the loss the queue running dry, or the preparation slowing the training?
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
T0=$(date +%s)
nvidia-smi --query-gpu=name,memory.used --format=csv,noheader
D=fashion-mnist:$PWD/.data-fm
timeout 575 python bench/compile_blocks.py --data $D --pack 8 --packs 4 --ahead --ahead-steps 32 96 160 \
    --out $OUT/steps.json > $OUT/steps.log 2>&1
echo "== steps rc $? at $(( $(date +%s) - T0 )) s"
grep -E "warm-up|done at|packs in|ahead:|Error|error" $OUT/steps.log | cut -c1-330 | tail -24
