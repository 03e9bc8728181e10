#!/usr/bin/env bash
source "$(dirname "$0")/gpu_env.sh"
timeout 100 python3 -m pytest -q -m "gpu or not slow" tests/test_gpu.py tests/test_triton_kernels.py 2>&1 | tee "$OUT/gpu_tests.txt" | grep -E "^E   .*Error|passed|failed" | head -20
timeout 260 python3 bench/sweep_decode.py "$OUT/tuned_decode.json" 2>&1 | grep -v "Error$" | tee "$OUT/sweep_decode.txt"
