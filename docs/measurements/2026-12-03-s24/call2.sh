# Device call 2 of the twenty-fourth session (issue 16), one H200: `bash docs/measurements/2026-12-03-s24/call2.sh`
# from the repository root, carrying .data-fm and .devbundle.
# (1) Evaluation through the compiled blocks' training forward (train.EVAL_COMPILED, new): 2 packs of 8, each
#     pack's trained models evaluated again the eager way (eval mode, batches of 1,024) to compare top-1 and loss;
#     the pack's `eval` phase against call 1's 0.93 (prepared ahead) and 1.17 s (in its own turn).
# (2) train.QUEUE_STEPS: 4 packs of 8 one after another, then prepared on the second thread as in a run with
#     --ahead 1, then the same with the training thread waiting on an event for its step N-2 before launching
#     step N (it never blocks inside a graph launch; the preparation can run at its own speed).
set -u
mkdir -p /tmp/site && tar xJf .devbundle/site.tar.xz -C /tmp/site
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
T0=$(date +%s)
nvidia-smi --query-gpu=name,memory.used --format=csv,noheader
D=fashion-mnist:$PWD/.data-fm
timeout 240 python bench/compile_blocks.py --data $D --pack 8 --packs 2 --check-eval --out $OUT/eval.json > $OUT/eval.log 2>&1
echo "== eval rc $? at $(( $(date +%s) - T0 )) s"
grep -E "warm-up|done at|packs in|evaluation check|Error|error" $OUT/eval.log | cut -c1-330 | tail -12
timeout $(( 565 - ($(date +%s) - T0) )) python bench/compile_blocks.py --data $D --pack 8 --packs 4 --ahead --queue-steps 2 \
    --out $OUT/queue.json > $OUT/queue.log 2>&1
echo "== queue rc $? at $(( $(date +%s) - T0 )) s"
grep -E "warm-up|done at|packs in|: \{'|Error|error" $OUT/queue.log | cut -c1-330 | tail -30
