# Device call 3: the rest of the recall calibration (its 2,400-step rung came back from call 2) on GPU 0 beside
# Ran as `bash calib/call3.sh` from the repository root at commit 2ce45e2 (branch calib14, merged since); calib/ held call 2's returned records.
# a Fashion-MNIST calibration of 150 and 300 steps on GPU 1, one worker each. Run from the repo root.
set -u
ROOT=$PWD
mkdir -p /tmp/site && tar xJf $ROOT/.devbundle/site.tar.xz -C /tmp/site
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 TORCHINDUCTOR_CACHE_DIR=$ROOT/.inductor
D=fashion-mnist:$ROOT/.data/fashion-mnist
CAL="python -m sola_search.cli calibrate --variant small --budget 8softmax --seeds 2 --patterns 24 --workers 1"
cp calib/recall.records.jsonl $OUT/
( CUDA_VISIBLE_DEVICES=0 timeout 540 $CAL --data recall --ladder 300,600,1200,2400 --batch-size 128 --out $OUT/recall.json; echo "recall rc $?" ) > $OUT/recall.log 2>&1 &
( CUDA_VISIBLE_DEVICES=1 timeout 540 $CAL --data $D --ladder 150,300 --out $OUT/fmnist.json; echo "fmnist rc $?" ) > $OUT/fmnist.log 2>&1 &
wait
tail -c 5000 $OUT/recall.log; tail -c 5000 $OUT/fmnist.log
