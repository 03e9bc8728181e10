#!/usr/bin/env bash
source "$(dirname "$0")/gpu_env.sh"
python3 bench/probe_cublas_blockwise.py 2>&1 | tee "$OUT/probe_cublas_blockwise.txt"
timeout 200 python3 -m pytest -q -m "gpu or not slow" tests/test_gpu.py tests/test_triton_kernels.py 2>&1 | tee "$OUT/gpu_tests.txt" | grep -E "^E   .*Error|passed|failed" | head -40
timeout 300 python3 bench/sweep_configs.py "$OUT/sweep.json" 2>&1 | tee "$OUT/sweep.txt" | grep -v "Error$"
