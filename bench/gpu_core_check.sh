#!/usr/bin/env bash
# Issue 2 on the device machine: GPU tests, CPU suite under the GPU's torch, explain on this GPU.
# Usage (repo root): OUT=/some/dir bash bench/gpu_core_check.sh
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
{
  date -u
  nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
  python3 -c "import torch, triton, transformers; print('torch', torch.__version__, 'triton', triton.__version__, 'transformers', transformers.__version__)"
} | tee "$OUT/env.txt"
python3 -m pytest -q -m gpu tests/test_gpu.py 2>&1 | tee "$OUT/gpu_tests.txt" | tail -25
python3 -m pytest -q -m "not slow and not gpu" -p no:cacheprovider tests 2>&1 | tail -3 | tee "$OUT/cpu_suite_on_gpu_machine.txt"
python3 bench/make_random_llama.py /tmp/rand_smollm2 --layers 2
for s in fp8_per_tensor fp8_per_channel fp8_per_block int8_per_channel mxfp8 nvfp4 nvfp4_a16 mxfp4_a16 fp8_a16; do
  python3 -m qlinear.cli explain --scheme "$s" --model /tmp/rand_smollm2 --device cuda 2>&1 | grep -v "^model\.layers\.[1-9]"
  echo
done > "$OUT/explain.txt"
python3 -m qlinear.cli kernels --device cuda > "$OUT/kernels.txt" 2>&1
grep -A3 "^why" "$OUT/explain.txt" | head -60
cat "$OUT/kernels.txt"
