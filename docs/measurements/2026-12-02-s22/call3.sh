# Device call 3 of the twenty-second session (issue 16), one H200: `bash docs/measurements/2026-12-02-s22/call3.sh`
# from the repository root, carrying .data-fm and .devbundle.
# (1) A worker's warm-up (cache empty), 3 packs of 8 one after another, then the same 3 packs each prepared (built,
#     captured, its evaluation captured) by the pack training before it (`train._Ahead`; call 2 found a new thread's
#     first capture needs eager warm-up steps: cuBLAS/cuDNN handles are per thread, now keyed so).
# (2) Real `sola-search run`s at the default preset: `--ahead 1` (the default now: a pack queued behind each busy
#     worker's, prepared while it trains), then `--ahead 0` (one pack at a time, as before) on the warm cache.
set -u
mkdir -p /tmp/site && tar xJf .devbundle/site.tar.xz -C /tmp/site
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
T0=$(date +%s)
nvidia-smi --query-gpu=name,memory.used --format=csv,noheader
D=fashion-mnist:$PWD/.data-fm
timeout 300 python bench/compile_blocks.py --data $D --pack 8 --packs 3 --ahead --out $OUT/ahead3.json > $OUT/ahead3.log 2>&1
echo "== ahead3 rc $? at $(( $(date +%s) - T0 )) s"
grep -E "warm-up|, pack [0-9]|packs in|ahead:|Error|error" $OUT/ahead3.log | cut -c1-420 | tail -12
R=/tmp/r; mkdir -p $R
run() {  # name, limit, run arguments
    local name=$1 limit=$2; shift 2
    timeout $limit python bench/search_run.py --out $OUT/$name.json -- --budget 8softmax --data $D --runs-dir $R \
        --name $name "$@" > $OUT/$name.log 2>&1
    echo "== $name rc $? at $(( $(date +%s) - T0 )) s"; grep -iE "trials/h|trials per hour|warm|Error" $OUT/$name.log | cut -c1-400 | tail -6
    cp $R/$name/events.jsonl $OUT/$name.events.jsonl 2>/dev/null
}
run ahead40 190 --trials 40
run off24 $(( 575 - ($(date +%s) - T0) )) --trials 24 --ahead 0
