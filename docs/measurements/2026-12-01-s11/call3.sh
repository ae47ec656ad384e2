# Device call 3 (nvidia-h200), from the repo root. Call 2: recall:pairs=2-31 on the 8x8 grid saturates at 4,800
# steps (every placement >= 99.9 %); the 16x16 grid with 2-47 pairs is learnt by none (13-18 %, 22-49 % at P=2).
# Between the two, the 16x16 grid (one stage-1 token per 4-px cell) with fewer pairs, seed 0, same 8 patterns:
#   (C) recall:grid=16,pairs=2-8      (D) recall:grid=16,pairs=2-16,curriculum=1200
set -u
ROOT=$PWD
mkdir -p /tmp/site && tar xJf $ROOT/.devbundle/site.tar.xz -C /tmp/site
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 TORCHINDUCTOR_CACHE_DIR=/tmp/inductor
git log --oneline -1
NAMES="all-linear stage-1-only stage-2-only stage-3-only stage-4-only last-8 interleave-8 mambavision"
for V in "C recall:grid=16,pairs=2-8 265" "D recall:grid=16,pairs=2-16,curriculum=1200 250"; do
  set -- $V
  timeout $3 python bench/proxy_fidelity.py --variant small --budget 8softmax --ref-seeds 1 --proxy-seeds 0 \
    --ref steps=4800,batch_size=128,warmup_steps=100,lr=0.001 --set eval_every=600 --per-gpu 1 --data $2 \
    --names $NAMES --out $OUT/screen-$1.json > /tmp/$1.log 2>&1; echo "$1 rc $?"
  tail -c 1200 /tmp/$1.log
done
ls -la $OUT
