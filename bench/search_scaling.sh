#!/usr/bin/env bash
# Issue 6 on nvidia-h200-x4: trials per hour of the GPU search on 1, 2 and 4 H200s, in packs of 8
# (3 packs per worker in each run), with the hand-wired peer on the fourth GPU beside the first two.
# Each run is `bench/search_run.py` (JSON + table per run); this prints their headline rows.
#   bash bench/search_scaling.sh OUT_DIR [DATA]     # DATA default: fashion-mnist
# On the device: carry .devbundle and .data, unpack the bundle first (docs/performance.md).
set -u
OUT=${1:?usage: bench/search_scaling.sh OUT_DIR [DATA]}; D=${2:-fashion-mnist}
mkdir -p "$OUT/logs"; T0=$SECONDS
A="--budget 8softmax --variant small --data $D --runs-dir /tmp/scaling-runs"
rm -rf /tmp/scaling-runs
( CUDA_VISIBLE_DEVICES=0 timeout 260 python3 bench/search_run.py --out "$OUT/g1.json" -- $A --trials 24 --name g1 \
    > "$OUT/logs/g1.log" 2>&1; echo "g1 rc=$? $((SECONDS-T0))s" ) &
( CUDA_VISIBLE_DEVICES=1,2 timeout 260 python3 bench/search_run.py --out "$OUT/g2.json" -- $A --trials 48 --name g2 \
    > "$OUT/logs/g2.log" 2>&1; echo "g2 rc=$? $((SECONDS-T0))s" ) &
( CUDA_VISIBLE_DEVICES=3 timeout 260 python3 bench/search_peer.py --data "$D" --trials 8 --out "$OUT/peer.json" \
    > "$OUT/logs/peer.log" 2>&1; echo "peer rc=$? $((SECONDS-T0))s" ) &
wait
timeout 280 python3 bench/search_run.py --out "$OUT/g4.json" -- $A --trials 96 --name g4 \
    > "$OUT/logs/g4.log" 2>&1; echo "g4 rc=$? $((SECONDS-T0))s"
for r in g1 g2 g4; do
  echo "== $r"; grep -E "trials_per_hour|overhead_fraction|gpu_busy_fraction |span_s|top1_mean" "$OUT/logs/$r.log"
done
echo "== peer"; grep -E "trials_per_hour|top1_mean" "$OUT/logs/peer.log" | head -3
