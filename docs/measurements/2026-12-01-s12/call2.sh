# Device call 2 (nvidia-h200), from the repo root: recall's 24 x 4 reference continued (as call 1): what seeds 1
# and 2 still lack, in full packs (--skip trains only the runs the earlier records do not hold).
set -u
ROOT=$PWD
mkdir -p /tmp/site && tar xJf $ROOT/.devbundle/site.tar.xz -C /tmp/site
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
D=docs/measurements
timeout 555 python bench/proxy_fidelity.py --variant small --budget 8softmax --ref-seeds 4 --proxy-seeds 0 \
    --ref steps=2400,batch_size=128,warmup_steps=100,lr=0.001 --set eval_every=300 --per-gpu 1 --data recall \
    --only ref/s1 ref/s2 --skip $D/2026-12-01-s10/lr1e-3.json $D/2026-12-01-s10/lr1e-3-s23.json \
    $D/2026-12-01-s12/ref16-s01.json --out $OUT/ref-s12.json > $OUT/ref-s12.log 2>&1; echo "ref rc $?"
tail -c 1500 $OUT/ref-s12.log
