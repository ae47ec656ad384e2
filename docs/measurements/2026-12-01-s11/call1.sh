# Device call 1 (nvidia-h200), from the repo root.
# (1) issue 13: the tenth session's recall reference (8 patterns, lr 1e-3, warm-up 100, batch 128) run twice as
#     long, 4,800 steps, seeds 0 and 1, one process on the GPU (two processes ran slower than one in turn):
#     does every run converge after its seed-timed jump, so that the reference reproduces itself?
# (2) issue 15: the supernet's scoring rate alone on the GPU (nothing else running), 300 training steps.
# (3) inductor's cache back in $OUT (inductor.tar.xz) so later calls can carry it warm.
set -u
ROOT=$PWD
mkdir -p /tmp/site && tar xJf $ROOT/.devbundle/site.tar.xz -C /tmp/site
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 TORCHINDUCTOR_CACHE_DIR=/tmp/inductor
[ -f .inductor.tar.xz ] && mkdir -p /tmp/inductor && tar xJf .inductor.tar.xz -C /tmp/inductor
git log --oneline -1
timeout 470 python bench/proxy_fidelity.py --variant small --budget 8softmax --ref-seeds 2 --proxy-seeds 0 \
    --ref steps=4800,batch_size=128,warmup_steps=100,lr=0.001 --set eval_every=600 --per-gpu 1 --data recall \
    --names all-linear stage-1-only stage-2-only stage-3-only stage-4-only last-8 interleave-8 mambavision \
    --out $OUT/ref4800-s01.json > /tmp/ref.log 2>&1; echo "ref rc $?"
tail -c 4000 /tmp/ref.log
timeout 100 python bench/supernet_fidelity.py --data recall:val=2000 --variant small --budget 8softmax \
    --steps 300 --pack 64 --speed-patterns 1280 --out $OUT/supernet-speed.json > /tmp/sn.log 2>&1; echo "sn rc $?"
tail -c 3000 /tmp/sn.log
du -sh /tmp/inductor; tar cJf $OUT/inductor.tar.xz -C /tmp/inductor . ; ls -la $OUT
