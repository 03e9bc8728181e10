#!/usr/bin/env bash
# Block FP8 prefill with the Gluon wgmma GEMM: the whole GPU suite, the side-by-side against
# cuBLASLt blockwise / Triton / bf16 (issue shapes, M=4096), and qlinear bench on the issue shapes
# and on Qwen2.5 down_proj shapes whose K/128 is not a multiple of 4 (cuBLASLt blockwise refuses them).
#   OUT=DIR bash bench/gpu_issue3_wgmma.sh
source "$(dirname "$0")/gpu_env.sh"
bash "$(dirname "$0")/gpu_tests.sh" > /dev/null
mv "$OUT/gpu_tests.txt" "$OUT/wgmma_gpu_tests.txt"; tail -1 "$OUT/wgmma_gpu_tests.txt"
timeout 150 python3 bench/wgmma_block_check.py 4096 4 8 2>&1 | tee "$OUT/wgmma_check.txt"
timeout 240 python3 -m qlinear.cli bench --shape 4096x4096 --shape 14336x4096 --shape 4096x14336 \
  --shape 28672x4096 --shape 7168x16384 --shape 2048x11008 --shape 1536x8960 --shape 896x4864 \
  --schemes fp8_per_block --m 128,512,4096 --csv "$OUT/wgmma_bench.csv" > "$OUT/wgmma_bench.txt" 2>&1
grep -E "gluon|cublas_fp8_block|triton_fp8_block" "$OUT/wgmma_bench.txt" | head -60
