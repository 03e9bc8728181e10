#!/usr/bin/env bash
# The Gluon wgmma GEMM with per-token x per-channel scales (gluon_int8, gluon_fp8_rowwise): GPU tests
# of every Gluon wgmma kernel, then the prefill bench beside the Triton, cuBLAS and bf16 lines.
#   OUT=DIR bash bench/gpu_issue3_rowwise.sh
source "$(dirname "$0")/gpu_env.sh"
python3 -m pytest -q -m gpu tests/test_gpu.py -k "gluon_rowwise or gluon_block or gluon_mxfp8" 2>&1 | tail -15 | tee "$OUT/tests.txt"
timeout 400 python3 -m qlinear.cli bench --preset issue --schemes int8_per_channel,fp8_per_channel --m ${BENCH_M:-4096} \
    --csv "$OUT/bench.csv" 2>&1 | tee "$OUT/bench.txt"
