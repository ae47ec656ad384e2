# Ran at c99e83b plus a `layout=inline` option of proxies/recall.py (the glyph drawn inside its key cell),
# removed after this call: a dead end (see docs/performance.md, tenth session).
# Device call 1 (nvidia-h200): does recall learn smoothly once the glyph sits inside its key cell
# (layout=inline), and does a capacity regime (grid 10, up to 48 pairs, past the head dimension 32) grade
# the placements? Every (pattern, seed) its own weights and batches (--independent). Run from the repo root.
set -u
ROOT=$PWD
mkdir -p /tmp/site && tar xJf $ROOT/.devbundle/site.tar.xz -C /tmp/site
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 TORCHINDUCTOR_CACHE_DIR=$ROOT/.inductor
nvidia-smi --query-gpu=name,memory.used --format=csv
PF="python bench/proxy_fidelity.py --variant small --budget 8softmax --independent --ref-seeds 2 --proxy-seeds 0
    --ref steps=2400,batch_size=128,warmup_steps=100 --set eval_every=200 --per-gpu 2"
( timeout 560 $PF --data recall:layout=inline --out $OUT/inline.json --names all-linear stage-1-only stage-2-only \
    stage-3-only stage-4-only last-8 interleave-8 mambavision; echo "inline rc $?" ) > $OUT/inline.log 2>&1 &
( timeout 560 $PF --data recall:layout=inline,grid=10,pairs=2-48,curriculum=800 --out $OUT/inline48.json \
    --names all-linear stage-1-only stage-3-only last-8; echo "inline48 rc $?" ) > $OUT/inline48.log 2>&1 &
wait
tail -c 4000 $OUT/inline.log; tail -c 3000 $OUT/inline48.log
