#!/usr/bin/env bash
# Issue 4, decode GEMV for e2m1 weights: GPU tests of the weight-only kernels, the issue shapes at
# M=1, 16, 4096 side by side with bf16, e2e decode of the Llama-3.1-8B shape.
source "$(dirname "$0")/gpu_env.sh"
timeout 170 python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py tests/test_triton_kernels.py \
  -k "weight_only or mx or e2m1 or split_k or binades or w4a4 or graph" 2>&1 | tee "$OUT/gpu_tests.txt" | tail -4
timeout 240 python3 -m qlinear.cli bench --shape 4096x4096 --shape 14336x4096 --shape 4096x14336 --shape 28672x4096 \
  --schemes nvfp4_a16,mxfp4_a16 --m 1,16,4096 --csv "$OUT/bench_gemv.csv" 2>&1 | tee "$OUT/bench_gemv.txt" | grep -v "^ *$" | tail -40
timeout 200 python3 -m qlinear.cli bench --e2e --schemes nvfp4_a16,mxfp4_a16 2>&1 | grep -v "^ *$" | tee "$OUT/e2e_gemv.txt"
