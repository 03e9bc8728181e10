#!/usr/bin/env bash
# Round 1 on the GPU: all GPU tests (compiled Triton included), cuBLAS blockwise K-block check, config sweep.
source "$(dirname "$0")/gpu_env.sh"
timeout 240 python3 -m pytest -q -m "gpu or not slow" tests/test_gpu.py tests/test_triton_kernels.py 2>&1 | tee "$OUT/gpu_tests.txt" | tail -30
timeout 330 python3 bench/sweep_configs.py "$OUT/sweep.json" 2>&1 | tee "$OUT/sweep.txt" | grep -v "Error$"
