# Device call 3 of the twentieth session (issue 16), one H200: `bash docs/measurements/2026-12-02-s20/call3.sh`
# from the repository root, carrying .data-fm and .devbundle. Real `sola-search run`s at the default preset with the
# package's evaluation now one CUDA graph per pack (calls 1-2): 48 trials on a machine whose inductor
# cache is empty (a user's first run), then 32 trials with it warm. Against the eighth session's 1,569-1,579
# trials/hour and 42-116 s warm-up (docs/performance.md, "Compiled blocks inside `train_proxy`").
set -u
mkdir -p /tmp/site && tar xJf .devbundle/site.tar.xz -C /tmp/site
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
T0=$(date +%s)
git log --oneline -1; nvidia-smi --query-gpu=name,memory.used --format=csv,noheader
D=fashion-mnist:$PWD/.data-fm
R=/tmp/r; mkdir -p $R
run() {  # name, limit, run arguments
    local name=$1 limit=$2; shift 2
    timeout $limit python bench/search_run.py --out $OUT/$name.json -- --budget 8softmax --data $D --runs-dir $R \
        --name $name "$@" > $OUT/$name.log 2>&1
    echo "== $name rc $? at $(( $(date +%s) - T0 )) s"; grep -iE "trials/h|trials per hour|warm|Error" $OUT/$name.log | cut -c1-400 | tail -6
    cp $R/$name/events.jsonl $OUT/$name.events.jsonl 2>/dev/null
}
run cold48 320 --trials 48
run warm32 $(( 500 - ($(date +%s) - T0) )) --trials 32
