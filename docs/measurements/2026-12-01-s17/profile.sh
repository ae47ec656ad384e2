# Device call 2 of the seventeenth session (issue 16), one H200: `bash docs/measurements/2026-12-01-s17/profile.sh`
# from the repository root. The compiled step of the `default` proxy by kernel, with cuDNN's depthwise
# convolutions and with the lever `--dwconv unfold` (one weighted sum over an unfolded view, for inductor to fuse),
# each with a cold inductor cache and a limit of PER seconds (the fifteenth session's 170 s cut `shifts`).
set -u
export PYTHONUNBUFFERED=1 TORCHINDUCTOR_CACHE_DIR=/tmp/inductor
mkdir -p /tmp/inductor
T0=$(date +%s); git log --oneline -1 2>/dev/null; PER=${PER:-275}
P="python bench/proxy_profile.py --data recall --preset default --compile blocks --top 25"
for run in "default:" "default_unfold:--dwconv unfold"; do
  name=${run%%:*}; extra=${run#*:}
  timeout $PER $P $extra --out $OUT/profile_$name.json > $OUT/profile_$name.log 2>&1
  echo "== $name rc $? at $(( $(date +%s) - T0 )) s"; grep -v "^\s*$" $OUT/profile_$name.log | head -16
done
