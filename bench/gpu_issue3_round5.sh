#!/usr/bin/env bash
source "$(dirname "$0")/gpu_env.sh"
timeout 100 python3 -m pytest -q -m "gpu or not slow" tests/test_gpu.py tests/test_triton_kernels.py 2>&1 | tee "$OUT/gpu_tests.txt" | grep -E "^E   .*Error|passed|failed" | head -20
timeout 200 python3 bench/sweep_decode.py "$OUT/tuned_block.json" block 2>&1 | grep -v "Error$" | tee "$OUT/sweep_decode_block.txt"
python3 bench/merge_tuned.py "$OUT/tuned_decode.json" qlinear/kernels/triton/tuned_decode.json "$OUT/tuned_block.json"
export QLINEAR_TRITON_CONFIGS=$OUT/tuned_decode.json
timeout 230 python3 -m qlinear.cli bench --e2e --schemes fp8_per_block,fp8_per_channel,int8_per_channel 2>&1 | grep -v "^ *$" | tee "$OUT/e2e.txt"
