# Device call 1 (issue 16, compiled blocks): run from the payload folder (a copy of branch perf16).
set -u
ROOT=$(cd ../../.. && pwd)
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 TORCHINDUCTOR_CACHE_DIR=/tmp/ind
D=fashion-mnist:$ROOT/.data/fashion-mnist
R=/tmp/r; mkdir -p $R
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
python -c "import torch; print(torch.__version__, torch.version.cuda)"
cd bench
( CUDA_VISIBLE_DEVICES=0 timeout 200 python compile_blocks.py --data $D --compile blocks --packs 1 --out $R/blocks_cold.json
  CUDA_VISIBLE_DEVICES=0 timeout 80 python compile_blocks.py --data $D --compile blocks --packs 1 --out $R/blocks_warm.json
) > $OUT/gpu0.log 2>&1 &
( CUDA_VISIBLE_DEVICES=1 timeout 110 python compile_blocks.py --data $D --compile off --packs 1 --out $R/off.json
  CUDA_VISIBLE_DEVICES=1 timeout 100 python proxy_profile.py --data $D --preset default --compile blocks-only --out $R/prof_blocks_only.json
  CUDA_VISIBLE_DEVICES=1 timeout 60 python proxy_profile.py --data $D --preset default --compile blocks-only --ln triton --out $R/prof_blocks_only_triton.json
  CUDA_VISIBLE_DEVICES=1 timeout 60 python proxy_profile.py --data $D --preset default --compile blocks --out $R/prof_blocks.json
) > $OUT/gpu1.log 2>&1 &
wait
python compile_blocks.py --compare $R/off.json $R/blocks_cold.json --out $R/curves.json 2>&1 | tee $OUT/curves.log
du -sh /tmp/ind; tar czf $OUT/call1.tgz -C $R .
