# Device call 2 (issues 14 and 13): `sola-search calibrate` on recall (batch 128, ladder 300-2400) and on
# Ran as `bash calib/call2.sh` from the repository root at commit 2ce45e2 (branch calib14, merged since); calib/ held call 2's returned records.
# Fashion-MNIST (default preset, ladder 150-600), 24 patterns x 2 seeds, both GPUs; outputs straight into
# $OUT so a call cut by its limit leaves the records a second call resumes from. Run from the repo root.
set -u
ROOT=$PWD
mkdir -p /tmp/site && tar xJf $ROOT/.devbundle/site.tar.xz -C /tmp/site
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 TORCHINDUCTOR_CACHE_DIR=$ROOT/.inductor
D=fashion-mnist:$ROOT/.data/fashion-mnist
MIX=LSL-SLSLS-LSLSLSLSL-SLS
LIMIT=${LIMIT:-560}; T0=$(date +%s)
left() { echo $(( LIMIT - ($(date +%s) - T0) )); }
CAL="python -m sola_search.cli calibrate --variant small --budget 8softmax --seeds 2 --patterns 24"
[ -f $OUT/recall.records.jsonl ] || cp calib/*.jsonl calib/*.json $OUT/ 2>/dev/null
if [ ! -d .inductor ]; then  # fill the compile cache once per shape, one process per GPU, before the workers start
  ( CUDA_VISIBLE_DEVICES=0 timeout 200 python -m sola_search.cli proxy $MIX --data recall --batch-size 128 --steps 8 > /dev/null ) &
  ( CUDA_VISIBLE_DEVICES=1 timeout 200 python -m sola_search.cli proxy $MIX --data $D --steps 8 > /dev/null ) &
  wait; echo "cache filled after $(( $(date +%s) - T0 )) s"
fi
timeout $(( $(left) - 60 )) $CAL --data recall --ladder 300,600,1200,2400 --batch-size 128 --out $OUT/recall.json
echo "recall rc $? at $(( $(date +%s) - T0 )) s"
[ $(left) -gt 90 ] && timeout $(( $(left) - 15 )) $CAL --data $D --ladder 150,300,600 --out $OUT/fmnist.json
echo "fmnist rc $? at $(( $(date +%s) - T0 )) s"
