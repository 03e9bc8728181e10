#!/usr/bin/env bash
# e2e with compiled decoder layers: per-channel FP8 prefill on cuBLAS rowwise (the H200 default) against
# gluon_fp8_rowwise (cuBLAS disabled), two interleaved runs.
source "$(dirname "$0")/gpu_env.sh" >/dev/null
for i in 1 2; do
echo "## cublas_fp8 prefill (default), run $i"
timeout 200 python3 -m qlinear.cli bench --e2e --compile --schemes fp8_per_channel 2>&1 | grep -v "^W1201\|^ *$" | grep "fp8\|bf16"
echo "## QLINEAR_DISABLED_KERNELS=cublas_fp8 (prefill on gluon_fp8_rowwise), run $i"
QLINEAR_DISABLED_KERNELS=cublas_fp8 timeout 200 python3 -m qlinear.cli bench --e2e --compile --schemes fp8_per_channel 2>&1 | grep -v "^W1201\|^ *$" | grep "fp8\|bf16"
done
