#!/usr/bin/env bash
# MXFP8 W8A8 prefill on FP8 tensor cores with the Gluon wgmma GEMM (gluon_mxfp8): its GPU tests and
# qlinear bench against dequant_cublas (weight-only), triton_mxfp8 and bf16 on the issue's shapes.
#   OUT=DIR bash bench/gpu_issue4_wgmma_mxfp8.sh
source "$(dirname "$0")/gpu_env.sh"
timeout 200 python3 -m pytest -q -m gpu tests/test_gpu.py -k "gluon" 2>&1 | tail -3 | tee "$OUT/mxfp8_tests.txt"
timeout 300 python3 -m qlinear.cli bench --shape 4096x4096 --shape 14336x4096 --shape 4096x14336 --shape 28672x4096 \
  --schemes mxfp8 --m 512,4096 --csv "$OUT/mxfp8_bench.csv" > "$OUT/mxfp8_bench.txt" 2>&1
grep -E "mxfp8|bf16" "$OUT/mxfp8_bench.txt" | grep -v "^#" | head -40
