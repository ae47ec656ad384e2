# Device calls 2 and 3 of the fifteenth session (issue 16), one H200, from the repository root, carrying
# .inductor.tar.xz (call.sh's cache: the fidelity geometry's blocks at batch 128). The compiled step split by
# kernel name, with and without one lever, at the default geometry and the fidelity one:
#   call 2: bash docs/measurements/2026-12-01-s15/profile.sh                 (--conv matmul: stem, downsampling)
#   call 3: bash docs/measurements/2026-12-01-s15/profile.sh --dwconv shifts (the blocks' depthwise convolutions)
set -u
ROOT=$PWD
export PYTHONUNBUFFERED=1 TORCHINDUCTOR_CACHE_DIR=/tmp/inductor
mkdir -p /tmp/inductor; [ -f .inductor.tar.xz ] && tar xJf .inductor.tar.xz -C /tmp/inductor
T0=$(date +%s); git log --oneline -1 2>/dev/null
P="python bench/proxy_profile.py --data recall --preset default --compile blocks --top 25"
F="--set batch_size=128 width=0.25 resolution=128"
L="${*:---conv matmul}"; S=$(echo "$L" | awk '{print $NF}')
for run in "default:" "default_$S:$L" "fidelity:$F" "fidelity_$S:$F $L"; do
  name=${run%%:*}; extra=${run#*:}
  timeout 170 $P $extra --out $OUT/profile_$name.json > $OUT/profile_$name.log 2>&1
  echo "== $name rc $? at $(( $(date +%s) - T0 )) s"; grep -v "^\s*$" $OUT/profile_$name.log | head -14
done
du -sh /tmp/inductor
