#!/usr/bin/env bash
# Issue 4, final: GPU tests of the new kernels, side-by-side bench on the issue shapes, e2e decode.
source "$(dirname "$0")/gpu_env.sh"
timeout 150 python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py tests/test_triton_kernels.py \
  -k "weight_only or mx or e2m1 or split_k_reduction or binades or w4a4 or graph" 2>&1 | tee "$OUT/gpu_tests.txt" | tail -4
timeout 200 python3 -m qlinear.cli bench --shape 4096x4096 --shape 14336x4096 --shape 4096x14336 --shape 28672x4096 \
  --schemes nvfp4_a16,mxfp4_a16,mxfp8 --m 1,16,4096 --csv "$OUT/bench_issue4.csv" 2>&1 | tee "$OUT/bench_issue4.txt" | grep -v "^ *$" | tail -75
timeout 200 python3 -m qlinear.cli bench --e2e --schemes nvfp4_a16,mxfp8 2>&1 | grep -v "^ *$" | tee "$OUT/e2e_issue4.txt"
