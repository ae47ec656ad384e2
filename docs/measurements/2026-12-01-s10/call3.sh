# Device call 3 (nvidia-h200), from the repo root: seeds 2 and 3 of call 2's recall reference at lr 1e-3 (8 patterns,
# 2,400 steps x 128), so that with call 2's seeds 0 and 1 the reference has 4 seeds:
#   python bench/proxy_fidelity.py <same options> --ref-seeds 4 --merge lr1e-3.json lr1e-3-s23.json
set -u
ROOT=$PWD
mkdir -p /tmp/site && tar xJf $ROOT/.devbundle/site.tar.xz -C /tmp/site
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 TORCHINDUCTOR_CACHE_DIR=$ROOT/.inductor
timeout 500 python bench/proxy_fidelity.py --variant small --budget 8softmax --ref-seeds 4 --proxy-seeds 0 \
    --ref steps=2400,batch_size=128,warmup_steps=100,lr=0.001 --set eval_every=300 --per-gpu 2 --data recall \
    --names all-linear stage-1-only stage-2-only stage-3-only stage-4-only last-8 interleave-8 mambavision \
    --only ref/s2 ref/s3 --out $OUT/lr1e-3-s23.json 2>&1 | tail -c 3000
