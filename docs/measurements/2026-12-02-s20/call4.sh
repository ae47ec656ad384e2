# Device call 4 of the twentieth session (issue 15), one H200, the session's last 4 device minutes:
# `bash docs/measurements/2026-12-02-s20/call4.sh`, carrying .devbundle. The prefix walk with compiled blocks on
# all 20,000 validation images (what a `run` scores), where the blocks' arithmetic, not the host, bounds the walk
# (call 2 measured 2,000 images: 1.06x). A short supernet (50 steps): only the scoring rate is measured.
set -u
mkdir -p /tmp/site && tar xJf .devbundle/site.tar.xz -C /tmp/site
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
T0=$(date +%s)
timeout 200 python bench/supernet_fidelity.py --data recall --variant small --budget 8softmax --steps 50 --dir /tmp/sn \
    --pack 64 --speed-patterns 64 --scoring-compile off blocks --out $OUT/sn20000.json 2>&1 | tee $OUT/sn20000.log | \
    grep -E "trained in|scoring|over|Error|error"
echo "rc ${PIPESTATUS[0]} at $(( $(date +%s) - T0 )) s"
