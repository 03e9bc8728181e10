#!/usr/bin/env bash
# Issue 4, e4m3 decode GEMV with cvt.rn.f16x2.e4m3x2: GPU tests of the weight-only kernels, a config
# sweep of the e4m3 GEMV, the issue shapes at M=1 for mxfp8_a16 / fp8_a16 / mxfp8 beside bf16.
#   OUT=DIR bash bench/gpu_issue4_e4m3_gemv.sh
source "$(dirname "$0")/gpu_env.sh"
timeout 150 python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py tests/test_triton_kernels.py \
  -k "weight_only or mx or e4m3 or split_k or graph" 2>&1 | tee "$OUT/gpu_tests.txt" | tail -4
timeout 200 python3 bench/sweep_gemv.py "$OUT/sweep_e4m3.json" --quick --schemes mxfp8_a16,fp8_a16 2>&1 | tee "$OUT/sweep_e4m3.txt" | tail -30
timeout 150 python3 -m qlinear.cli bench --shape 4096x4096 --shape 14336x4096 --shape 4096x14336 --shape 28672x4096 \
  --schemes mxfp8_a16,fp8_a16,mxfp8 --m 1 --csv "$OUT/bench_e4m3.csv" 2>&1 | tee "$OUT/bench_e4m3.txt" | grep -v "^ *$" | tail -40
