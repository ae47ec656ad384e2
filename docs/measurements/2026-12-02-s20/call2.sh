# Device call 2 of the twentieth session (issues 16 and 15), one H200: `bash docs/measurements/2026-12-02-s20/call2.sh`
# from the repository root, carrying .data-fm and .devbundle. (1-2) The package's evaluation is now one CUDA graph
# at the training's batch shape (call 1 measured it as `--eval graph`: warm-up's evaluation 8.8 -> 1.8 s): a worker
# with an empty cache, then one with it warm, two packs. (3) The supernet's prefix walk with its blocks compiled
# (`--scoring-compile off blocks`: the same patterns eager, then compiled) on 2,000 validation images.
set -u
mkdir -p /tmp/site && tar xJf .devbundle/site.tar.xz -C /tmp/site
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
T0=$(date +%s)
git log --oneline -1; nvidia-smi --query-gpu=name,memory.used --format=csv,noheader
D=fashion-mnist:$PWD/.data-fm
step() {  # name, limit, command...
    local name=$1 limit=$2; shift 2
    timeout $limit python "$@" --out $OUT/$name.json > $OUT/$name.log 2>&1
    echo "== $name rc $? at $(( $(date +%s) - T0 )) s"; grep -E "warm-up|pack [0-9]|trained in|scoring|over|Error|error" $OUT/$name.log | cut -c1-600 | tail -5
}
step fill 230 bench/compile_blocks.py --data $D --pack 8 --packs 1
step warm 110 bench/compile_blocks.py --data $D --pack 8 --packs 2
step sn2000 $(( 580 - ($(date +%s) - T0) )) bench/supernet_fidelity.py --data recall --variant small --budget 8softmax \
    --steps 300 --dir /tmp/sn --images 2000 --pack 64 --speed-patterns 1280 --scoring-compile off blocks
