# Device call 1 of the seventeenth session (issue 13), one H200: `bash docs/measurements/2026-12-01-s17/call.sh`
# from the repository root, carrying .devbundle. The screen of the sixteenth session's note: `recall:keys=shape`
# (keys are 4x4 bit shapes in random colours, whole only in a token that covers a cell: stage 2 at 64 px) at the
# `default` geometry, the 8 screen patterns x 2 seeds, one process on the GPU (a pack per seed). Records of
# earlier calls (screen-*.json here) are skipped, so a call cut by its limit resumes in the next.
set -u
ROOT=$PWD; M=$ROOT/docs/measurements/2026-12-01-s17
mkdir -p /tmp/site && tar xJf .devbundle/site.tar.xz -C /tmp/site
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 TORCHINDUCTOR_CACHE_DIR=/tmp/inductor
mkdir -p /tmp/inductor
LIMIT=${LIMIT:-590}; T0=$(date +%s)
git log --oneline -1; nvidia-smi --query-gpu=name,memory.used --format=csv,noheader
SKIP=$(ls $M/screen-*.json 2>/dev/null | tr '\n' ' ')
timeout $(( LIMIT - 25 )) python bench/proxy_fidelity.py --data recall:keys=shape --variant small \
    --budget 8softmax --ref-seeds 2 --proxy-seeds 0 \
    --ref steps=2400,batch_size=128,warmup_steps=100,lr=0.001 --set eval_every=300 \
    --names all-linear stage-1-only stage-2-only stage-3-only stage-4-only last-8 interleave-8 mambavision \
    --per-gpu 1 ${SKIP:+--skip $SKIP} --out $OUT/screen-${PART:-1}.json > $OUT/screen.log 2>&1
echo "screen rc $? at $(( $(date +%s) - T0 )) s"
grep -v "^\s*$" $OUT/screen.log | tail -c 7000
