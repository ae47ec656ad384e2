# Device call 4 (nvidia-h200), from the repo root: issue 15, prefix scoring's rate against the pack size (more
# patterns per call share more prefixes), on one supernet (--dir reuses it), 1,280 patterns each.
set -u
ROOT=$PWD
mkdir -p /tmp/site && tar xJf $ROOT/.devbundle/site.tar.xz -C /tmp/site
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
for P in 64 256; do
  timeout 70 python bench/supernet_fidelity.py --data recall:val=2000 --variant small --budget 8softmax --steps 300 \
      --pack $P --speed-patterns 1280 --scoring prefix --dir /tmp/sn --out $OUT/prefix-pack$P.json 2>&1 | grep -E "trained|scoring|reused"
done
