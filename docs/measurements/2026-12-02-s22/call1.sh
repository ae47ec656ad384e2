# Device call 1 of the twenty-second session, one H200: `bash docs/measurements/2026-12-02-s22/call1.sh` from the
# repository root, carrying .data-fm (Fashion-MNIST's training files).
# Issue 16's lever: a pack prepared (built, captured, its evaluation graph captured) by the pack training before it,
# between its steps (`train._Ahead`). A worker's warm-up (cache empty), then 4 packs of 8 one after another, then the
# same 4 packs from two threads (each waits for the device and is prepared meanwhile): span per pack, images/s over
# the span, top-1 of the same patterns both ways.
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
T0=$(date +%s)
git log --oneline -1; nvidia-smi --query-gpu=name,memory.used --format=csv,noheader
D=fashion-mnist:$PWD/.data-fm
step() {  # name, limit, options
    local name=$1 limit=$2; shift 2
    timeout $limit python bench/compile_blocks.py --data $D "$@" --out $OUT/$name.json > $OUT/$name.log 2>&1
    echo "== $name rc $? at $(( $(date +%s) - T0 )) s"; grep -E "warm-up|pack [0-9]|packs in|ahead:|Error|error" $OUT/$name.log | cut -c1-400 | tail -14
}
step ahead 560 --pack 8 --packs 4 --ahead
