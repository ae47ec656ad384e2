# Device call 1 of the twenty-third session (issue 16), one H200: `bash docs/measurements/2026-12-02-s23/call1.sh`
# from the repository root, carrying .data-fm and .devbundle.
# (1) The twenty-second session's last design on a GPU for the first time: every train_proxies body on one device
#     thread, a worker's warm-up preparing its pack once on stream group 1. 5 packs of 8 one after another, then the
#     same 5 packs each prepared while the one before trains: do the first ahead packs still pay 6-8 s (call 3 of
#     s22), and what is the steady state (packs 2-4)?
# (2) A real `sola-search run` of 64 trials with `--ahead 1` (warm cache from (1)).
set -u
mkdir -p /tmp/site && tar xJf .devbundle/site.tar.xz -C /tmp/site
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
T0=$(date +%s)
nvidia-smi --query-gpu=name,memory.used --format=csv,noheader
D=fashion-mnist:$PWD/.data-fm
timeout 330 python bench/compile_blocks.py --data $D --pack 8 --packs 5 --ahead --out $OUT/ahead5.json > $OUT/ahead5.log 2>&1
echo "== ahead5 rc $? at $(( $(date +%s) - T0 )) s"
grep -E "warm-up|, pack [0-9]|packs in|ahead:|Error|error" $OUT/ahead5.log | cut -c1-420 | tail -14
R=/tmp/r; mkdir -p $R
run() {  # name, limit, run arguments
    local name=$1 limit=$2; shift 2
    timeout $limit python bench/search_run.py --out $OUT/$name.json -- --budget 8softmax --data $D --runs-dir $R \
        --name $name "$@" > $OUT/$name.log 2>&1
    echo "== $name rc $? at $(( $(date +%s) - T0 )) s"; grep -iE "trials/h|trials per hour|warm|Error" $OUT/$name.log | cut -c1-400 | tail -6
    cp $R/$name/events.jsonl $OUT/$name.events.jsonl 2>/dev/null
}
run ahead64 $(( 585 - ($(date +%s) - T0) )) --trials 64 --ahead 1
