# Device call 3 of the eighteenth session (issue 15), one H200: `bash docs/measurements/2026-12-02-s18/call3.sh`
# from the repository root, carrying .devbundle. Call 2 measured the depth-first prefix walk on distinct patterns
# (its level-by-level twin never finished a call: every level's batch is a new shape for cuDNN's autotuner) and
# ran out of time. Here, on one supernet of 300 steps (/tmp/sn): all 20,000 validation images (what a `run`
# scores) with the walk's memory bound at a quarter of the GPU's free memory (one chunk) against the old 1 GiB
# (chunks of ~3,400 images), and packs of 256 against call 2's 64 on the first 2,000 images.
set -u
mkdir -p /tmp/site && tar xJf .devbundle/site.tar.xz -C /tmp/site
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
T0=$(date +%s)
git log --oneline -1; nvidia-smi --query-gpu=name,memory.used --format=csv,noheader
B="python bench/supernet_fidelity.py --data recall --variant small --budget 8softmax --steps 300 --dir /tmp/sn"
step() {  # name, seconds, options
    local name=$1 limit=$2; shift 2
    timeout $limit $B "$@" --out $OUT/$name.json > $OUT/$name.log 2>&1
    echo "== $name rc $? at $(( $(date +%s) - T0 )) s"; grep -E "trained in|scoring|memory|Error|error" $OUT/$name.log | tail -6
}
step all-p64 200 --pack 64 --speed-patterns 256 --memory auto 1
step img2000-p256 150 --images 2000 --pack 256 --speed-patterns 2560 --memory auto
