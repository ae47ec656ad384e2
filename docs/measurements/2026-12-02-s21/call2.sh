# Device call 2 of the twenty-first session (issue 16), one H200: `bash docs/measurements/2026-12-02-s21/call2.sh`
# from the repository root, carrying .data-fm and .devbundle. The lever: the blocks' depthwise convolutions as
# Triton kernels (sola_search/proxies/dwconv.py; call 1's max-autotune log timed cuDNN's 5x5 depthwise forward at
# 0.13 ms on a 4 MB tensor). (1) every depthwise convolution of the default step, kernels against cuDNN: checks and
# forward + backward times; (2) packs of 8 with the kernels (cache empty); (3) a real run with them (the package's
# default now), cache warm; (4) the peer: packs of 8 with cuDNN's depthwise kernels (cache empty for that code).
set -u
mkdir -p /tmp/site && tar xJf .devbundle/site.tar.xz -C /tmp/site
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
T0=$(date +%s)
git log --oneline -1; git status --short | head -5; nvidia-smi --query-gpu=name,memory.used --format=csv,noheader
D=fashion-mnist:$PWD/.data-fm
R=/tmp/r; mkdir -p $R
timeout 90 python bench/dwconv_speed.py --out $OUT/dwconv_speed.json > $OUT/dwconv_speed.log 2>&1
echo "== dwconv_speed rc $? at $(( $(date +%s) - T0 )) s"; tail -22 $OUT/dwconv_speed.log | cut -c1-300
step() {  # name, limit, options
    local name=$1 limit=$2; shift 2
    timeout $limit python bench/compile_blocks.py --data $D "$@" --out $OUT/$name.json > $OUT/$name.log 2>&1
    echo "== $name rc $? at $(( $(date +%s) - T0 )) s"; grep -E "warm-up|pack [0-9]|Error|error" $OUT/$name.log | cut -c1-500 | tail -6
}
step packs_triton 230 --pack 8 --packs 2 --dwconv triton
timeout 150 python bench/search_run.py --out $OUT/run24.json -- --budget 8softmax --data $D --runs-dir $R \
    --name run24 --trials 24 > $OUT/run24.log 2>&1
echo "== run24 rc $? at $(( $(date +%s) - T0 )) s"; grep -iE "trials/h|trials per hour|warm|Error" $OUT/run24.log | cut -c1-400 | tail -6
cp $R/run24/events.jsonl $OUT/run24.events.jsonl 2>/dev/null
step packs_cudnn $(( 585 - ($(date +%s) - T0) )) --pack 8 --packs 2 --dwconv cudnn
