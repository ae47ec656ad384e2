# Device calls of the fourteenth session (issues 13, 14, 15), one H200: `bash docs/measurements/2026-12-01-s14/call.sh`
# from the repository root, carrying .devbundle and .data (Debian's Fashion-MNIST idx files).
# 1. (first call only, SUPERNET=1) a supernet on Fashion-MNIST at the default geometry, scoring the protocol's 24
#    patterns (bench/supernet_fidelity.py; tau against the calibration's top rung is computed on the CPU after).
# 2. `sola-search calibrate` on Fashion-MNIST, 24 patterns x 8 seeds, ladder 150,300,600, starting from the ninth
#    session's records (150 and 300 steps, seeds 0-1: same proxy digests, reused) and from this directory's
#    records of earlier calls; killed by the call's limit, it resumes in the next call.
set -u
ROOT=$PWD; M=$ROOT/docs/measurements/2026-12-01-s14
mkdir -p /tmp/site && tar xJf .devbundle/site.tar.xz -C /tmp/site
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 TORCHINDUCTOR_CACHE_DIR=$ROOT/.inductor
D=fashion-mnist:$ROOT/.data/fashion-mnist
LIMIT=${LIMIT:-570}; T0=$(date +%s)
left() { echo $(( LIMIT - ($(date +%s) - T0) )); }
nvidia-smi --query-gpu=name,memory.used --format=csv
cp $M/fmnist8.records.jsonl $OUT/fmnist8.records.jsonl
if [ "${SUPERNET:-0}" = 1 ]; then
  timeout 240 python bench/supernet_fidelity.py --data $D --variant small --budget 8softmax --pack 64 \
      --speed-patterns 640 --out $OUT/supernet-fmnist.json 2>&1 | tail -40
  echo "supernet rc $? at $(( $(date +%s) - T0 )) s"
fi
timeout $(( $(left) - 10 )) python -m sola_search.cli calibrate --data $D --variant small --budget 8softmax \
    --seeds 8 --patterns 24 --ladder 150,300,600 --workers 1 --out $OUT/fmnist8.json 2>&1 | grep -v "^\s*$" | tail -60
echo "calibrate rc $? at $(( $(date +%s) - T0 )) s"
wc -l $OUT/fmnist8.records.jsonl
