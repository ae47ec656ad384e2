# Device calls of the fifteenth session (issue 13), one H200: `bash docs/measurements/2026-12-01-s15/call.sh`
# from the repository root, carrying .devbundle (and .inductor.tar.xz once a call has returned it).
# The screen "The task to screen next for issue 13" of docs/performance.md: `recall` on a 16x16 grid of 8-px cells
# at the fidelity geometry (128 px, width 0.25: 64, 16, 4, 1 tokens per head dimension), 2-47 pairs, the 8 screen
# patterns x 2 seeds, one process on the GPU. Records of earlier calls (screen-*.json here) are skipped, so a call
# cut by its limit resumes in the next.
set -u
ROOT=$PWD; M=$ROOT/docs/measurements/2026-12-01-s15
mkdir -p /tmp/site && tar xJf .devbundle/site.tar.xz -C /tmp/site
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 TORCHINDUCTOR_CACHE_DIR=/tmp/inductor
mkdir -p /tmp/inductor; [ -f .inductor.tar.xz ] && tar xJf .inductor.tar.xz -C /tmp/inductor
LIMIT=${LIMIT:-560}; T0=$(date +%s)
git log --oneline -1; nvidia-smi --query-gpu=name,memory.used --format=csv,noheader
SKIP=$(ls $M/screen-*.json 2>/dev/null | tr '\n' ' ')
timeout $(( LIMIT - 40 )) python bench/proxy_fidelity.py --data recall:grid=16,pairs=2-47 --variant small \
    --budget 8softmax --ref-seeds 2 --proxy-seeds 0 \
    --ref steps=2400,batch_size=128,warmup_steps=100,lr=0.001,resolution=128,width=0.25 --set eval_every=300 \
    --names all-linear stage-1-only stage-2-only stage-3-only stage-4-only last-8 interleave-8 mambavision \
    --per-gpu 1 ${SKIP:+--skip $SKIP} --out $OUT/screen-${PART:-1}.json > /tmp/screen.log 2>&1
echo "screen rc $? at $(( $(date +%s) - T0 )) s"
grep -v "^\s*$" /tmp/screen.log | tail -c 6000
tar cJf $OUT/inductor.tar.xz -C /tmp/inductor . ; du -sh /tmp/inductor $OUT/inductor.tar.xz
