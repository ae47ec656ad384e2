#!/usr/bin/env bash
# Several proxy_fidelity settings side by side in one device call: one queue of settings per GPU.
#   COMMON="--data recall --patterns 8 --ref-seeds 2 --proxy-seeds 0" \
#     bash bench/fidelity_screen.sh OUT_DIR 0:w50:steps=900,width=0.5 1:w25:steps=900,width=0.25 ...
# Each SETTING is GPU:NAME:REFERENCE-OVERRIDES; settings of one GPU run one after another. Every
# setting writes OUT_DIR/screen_NAME.json (kept as runs finish) and .log.
set -uo pipefail
out=${1:?OUT_DIR}; shift
mkdir -p "$out"
read -r -a common <<< "${COMMON:-}"
declare -A queue
for s in "$@"; do
  gpu=${s%%:*}; rest=${s#*:}; queue[$gpu]+="$rest "
done
for gpu in "${!queue[@]}"; do
  (for item in ${queue[$gpu]}; do
     name=${item%%:*}; ref=${item#*:}
     python3 bench/proxy_fidelity.py "${common[@]}" --gpus "$gpu" --ref "$ref" \
       --out "$out/screen_$name.json" > "$out/screen_$name.log" 2>&1
   done) &
done
wait
