# Device call 1 of the eighteenth session (issue 13), one H200: `bash docs/measurements/2026-12-02-s18/call1.sh`
# from the repository root, carrying .devbundle. The capacity regime the seventeenth session's note named as the
# cheapest untried screen: head dimension 16 (`width=0.25`: dims 16/32/80/128, heads 1/2/5/8) with up to 31 pairs
# on the 8x8 grid (`recall:pairs=2-31`), 4,800 steps at lr 1e-3 — pairs then outnumber the linear state's
# dimension ~2x (the Zoology regime), which width 0.5 (d = 32 >= 31 pairs) never reached. The 8 screen patterns
# as one pack per seed, one process on the GPU. Records of earlier calls (cap-*.json here) are skipped, so a
# call cut by its limit resumes in the next (PART=2 ...).
set -u
ROOT=$PWD; M=$ROOT/docs/measurements/2026-12-02-s18
mkdir -p /tmp/site && tar xJf .devbundle/site.tar.xz -C /tmp/site
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 TORCHINDUCTOR_CACHE_DIR=/tmp/inductor
mkdir -p /tmp/inductor
LIMIT=${LIMIT:-590}; T0=$(date +%s)
git log --oneline -1; nvidia-smi --query-gpu=name,memory.used --format=csv,noheader
SKIP=$(ls $M/cap-*.json 2>/dev/null | tr '\n' ' ')
timeout $(( LIMIT - 25 )) python bench/proxy_fidelity.py --data recall:pairs=2-31 --variant small \
    --budget 8softmax --ref-seeds 2 --proxy-seeds 0 \
    --ref steps=4800,batch_size=128,warmup_steps=100,lr=0.001,width=0.25 --set eval_every=600 \
    --names all-linear stage-1-only stage-2-only stage-3-only stage-4-only last-8 interleave-8 mambavision \
    --per-gpu 1 ${SKIP:+--skip $SKIP} --out $OUT/cap-${PART:-1}.json > $OUT/cap.log 2>&1
echo "screen rc $? at $(( $(date +%s) - T0 )) s"
grep -v "^\s*$" $OUT/cap.log | tail -c 9000
