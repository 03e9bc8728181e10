#!/usr/bin/env bash
# Issue 4, e4m3 decode GEMV with its swept config: weight-only GPU tests, M=1 bench of the issue
# shapes (mxfp8_a16, fp8_a16, mxfp8), e2e decode for MXFP8 and fp8_a16.
#   OUT=DIR bash bench/gpu_issue4_e4m3_final.sh
source "$(dirname "$0")/gpu_env.sh"
timeout 120 python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py tests/test_triton_kernels.py \
  -k "weight_only or mx or e4m3 or split_k or graph" 2>&1 | tee "$OUT/gpu_tests.txt" | tail -3
timeout 120 python3 -m qlinear.cli bench --shape 4096x4096 --shape 14336x4096 --shape 4096x14336 --shape 28672x4096 \
  --schemes mxfp8_a16,fp8_a16,mxfp8 --m 1 --csv "$OUT/bench_e4m3.csv" 2>&1 | tee "$OUT/bench_e4m3.txt" | grep -v "^ *$" | tail -30
timeout 200 python3 -m qlinear.cli bench --e2e --schemes mxfp8,fp8_a16 2>&1 | grep -v "^ *$" | tee "$OUT/e2e_e4m3.txt"
