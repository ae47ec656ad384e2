# Device call 3 of the twenty-first session (issue 15), one H200: `bash docs/measurements/2026-12-02-s21/call3.sh`
# from the repository root, carrying .devbundle. The twentieth session's compiled prefix walk (`Supernet.compile`,
# 806 against 422 patterns a minute on 20,000 images in the bench) had not yet run inside a run's Ray worker on a
# GPU: a supernet run on `recall` with `--compile blocks`, then the same run eager as its peer.
set -u
mkdir -p /tmp/site && tar xJf .devbundle/site.tar.xz -C /tmp/site
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
T0=$(date +%s)
git log --oneline -1; nvidia-smi --query-gpu=name,memory.used --format=csv,noheader
R=/tmp/r; mkdir -p $R
run() {  # name, limit, run arguments
    local name=$1 limit=$2; shift 2
    timeout $limit python bench/search_run.py --out $OUT/$name.json -- --budget 8softmax --data recall --runs-dir $R \
        --name $name --estimator supernet --supernet-steps 300 --trials 400 "$@" > $OUT/$name.log 2>&1
    echo "== $name rc $? at $(( $(date +%s) - T0 )) s"; grep -iE "trials/h|trials per hour|warm|supernet|Error" $OUT/$name.log | cut -c1-400 | tail -8
    cp $R/$name/events.jsonl $OUT/$name.events.jsonl 2>/dev/null
}
run compiled 170 --compile blocks
run eager $(( 320 - ($(date +%s) - T0) ))
