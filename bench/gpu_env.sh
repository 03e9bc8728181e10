# Sourced by the bench/gpu_*.sh scripts (run from the repo root on the GPU machine): the package on
# PYTHONPATH, unbuffered output, the results folder $OUT (default /tmp/out), and the device, driver,
# versions and date of the run recorded in $OUT/env.txt.
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
{ date -u; nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
  python3 -c "import torch, triton, transformers; print('torch', torch.__version__, 'triton', triton.__version__, 'transformers', transformers.__version__)"; } | tee "$OUT/env.txt"
