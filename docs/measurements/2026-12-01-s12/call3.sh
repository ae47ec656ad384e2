# Device call 3 (nvidia-h200), from the repo root: (1) recall's 24 x 4 reference completed: seed 3 of the 16
# patterns the tenth session did not train (as calls 1-2). (2) issue 15: the supernet's two scoring methods on
# the GPU, each timed on the same supernet, patterns and images (prefix was measured on a CPU only).
set -u
ROOT=$PWD
mkdir -p /tmp/site && tar xJf $ROOT/.devbundle/site.tar.xz -C /tmp/site
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
D=docs/measurements
timeout 420 python bench/proxy_fidelity.py --variant small --budget 8softmax --ref-seeds 4 --proxy-seeds 0 \
    --ref steps=2400,batch_size=128,warmup_steps=100,lr=0.001 --set eval_every=300 --per-gpu 1 --data recall \
    --only ref/s3 --skip $D/2026-12-01-s10/lr1e-3.json $D/2026-12-01-s10/lr1e-3-s23.json \
    $D/2026-12-01-s12/ref16-s01.json $D/2026-12-01-s12/ref-s12.json --out $OUT/ref-s3.json > $OUT/ref-s3.log 2>&1
echo "ref rc $?"; tail -c 600 $OUT/ref-s3.log
timeout 135 python bench/supernet_fidelity.py --data recall:val=2000 --variant small --budget 8softmax \
    --steps 300 --pack 64 --speed-patterns 640 --scoring both --out $OUT/supernet-scoring.json > $OUT/sn.log 2>&1
echo "sn rc $?"; tail -c 2500 $OUT/sn.log
