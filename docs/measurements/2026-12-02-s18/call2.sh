# Device call 2 of the eighteenth session (issue 15), one H200: `bash docs/measurements/2026-12-02-s18/call2.sh`
# from the repository root, carrying .devbundle. The supernet's scoring rate, measured again: the earlier figure
# (9,414 a minute) scored 24 patterns again and again, and `Supernet.score` computes a repeated pattern once, so
# a call of 64 counted ~2.7x the patterns it computed. Here every call scores distinct patterns drawn uniformly
# from the feasible set, with the two walks of the prefix tree (depth first, as before; level by level, new),
# on the first 2,000 validation images and on all 20,000 (what a `run` scores), in packs of 64 (a run's) and 256.
# One supernet of 300 steps (into /tmp/sn, reused by every step).
# It ran with `--walk` and a level-by-level walk (`Supernet.walk = "breadth"`) that were never committed: the
# breadth walk's first timed step did not finish in 160 s (each level's batch is a new shape, and cuDNN autotunes
# every one), so the first two steps hit their 200 s limits and the call its 600 s. `call3.sh` measures the rest.
set -u
mkdir -p /tmp/site && tar xJf .devbundle/site.tar.xz -C /tmp/site
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
T0=$(date +%s)
git log --oneline -1; nvidia-smi --query-gpu=name,memory.used --format=csv,noheader
B="python bench/supernet_fidelity.py --data recall --variant small --budget 8softmax --steps 300 --dir /tmp/sn"
step() {  # name, options
    local name=$1; shift
    timeout 200 $B "$@" --out $OUT/$name.json > $OUT/$name.log 2>&1
    echo "== $name rc $? at $(( $(date +%s) - T0 )) s"; grep -E "trained in|scoring|walk|Error|error" $OUT/$name.log | tail -6
}
step img2000-p64 --images 2000 --pack 64 --speed-patterns 1280 --walk depth breadth
step img2000-p256 --images 2000 --pack 256 --speed-patterns 2560 --walk breadth depth
step all-p64 --pack 64 --speed-patterns 256 --walk depth breadth
step all-p256 --pack 256 --speed-patterns 512 --walk breadth depth
