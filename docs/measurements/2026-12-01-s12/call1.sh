# Device call 1 (nvidia-h200), from the repo root. Issue 13 (and 14, 15 after it): the 24-pattern x 4-seed
# recall reference at the tenth session's settings (lr 1e-3, warm-up 100, batch 128, 2,400 steps, pairs 2-24).
# The tenth session measured 8 of the 24 stratified patterns with seeds 0-3 (a pack's patterns share a seed's
# start, so a pattern's runs do not depend on its pack); here the other 16, seeds 0 and 1, one process alone.
set -u
ROOT=$PWD
mkdir -p /tmp/site && tar xJf $ROOT/.devbundle/site.tar.xz -C /tmp/site
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
git log --oneline -1; nvidia-smi --query-gpu=name,utilization.gpu,memory.used --format=csv
timeout 545 python bench/proxy_fidelity.py --variant small --budget 8softmax --ref-seeds 2 --proxy-seeds 0 \
    --ref steps=2400,batch_size=128,warmup_steps=100,lr=0.001 --set eval_every=300 --per-gpu 1 --data recall \
    --names last-of-stage stages-1-2 sample-10 sample-11 sample-12 sample-13 sample-14 sample-15 sample-16 \
      sample-17 sample-18 sample-19 sample-20 sample-21 sample-22 sample-23 \
    --out $OUT/ref16-s01.json > $OUT/ref16-s01.log 2>&1; echo "ref rc $?"
tail -c 3000 $OUT/ref16-s01.log
