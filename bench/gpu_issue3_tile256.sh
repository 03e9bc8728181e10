#!/usr/bin/env bash
# 256-row output tiles for the rowwise wgmma GEMM (each consumer warpgroup 128 rows: two wgmmas per
# K step on one B tile) against 128-row tiles, and the Gluon GEMMs launched with PDL after their
# activation quantization: GPU tests, the check at M = 4096 (PDL on, then off for 4096x4096), the
# tile heights at M = 1024 and 2048, the e2e prefill.
#   OUT=DIR bash bench/gpu_issue3_tile256.sh
source "$(dirname "$0")/gpu_env.sh"
python3 -m pytest -q -m gpu tests/test_gpu.py -k "gluon or pdl or tile_heights" 2>&1 | tail -5 | tee "$OUT/tests.txt"
python3 bench/wgmma_rowwise_check.py 4096 4x8x128,3x8x256 2>&1 | tee "$OUT/check4096.txt"
QLINEAR_PDL=0 python3 bench/wgmma_rowwise_check.py 4096 3x8x256 4096x4096,4096x4096 2>&1 | tee "$OUT/check4096_nopdl.txt"
for m in 1024 2048; do
  python3 bench/wgmma_rowwise_check.py $m 4x8x128,3x8x256 4096x4096,28672x4096 2>&1 | tee "$OUT/check$m.txt"
done
timeout 200 python3 -m qlinear.cli bench --e2e --schemes int8_per_channel,fp8_per_channel 2>&1 | tee "$OUT/e2e.txt"
