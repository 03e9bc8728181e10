#!/usr/bin/env bash
source "$(dirname "$0")/gpu_env.sh"
timeout 120 python3 -m pytest -q -m "gpu or not slow" tests/test_gpu.py tests/test_triton_kernels.py 2>&1 | tee "$OUT/gpu_tests.txt" | grep -E "^E   .*Error|passed|failed" | head -20
timeout 300 python3 -m qlinear.cli bench --preset issue --schemes fp8_per_block,fp8_per_channel,int8_per_channel \
  --m 1,2,4,8,16,64,256,4096 --act-quant --csv "$OUT/bench_issue.csv" --plot "$OUT/bench_issue.png" 2>&1 | tee "$OUT/bench_issue.txt" | grep -v "^ *$" | tail -150
