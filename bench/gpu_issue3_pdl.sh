#!/usr/bin/env bash
# Decode W8A8 with in-launch split-K, PDL and TMA weight loads: GPU tests and decode-config sweep
# (STEP=1), then the decode bench with the new table (STEP=2).
#   OUT=DIR STEP=1|2 bash bench/gpu_issue3_pdl.sh
source "$(dirname "$0")/gpu_env.sh"
if [ "${STEP:-1}" = 1 ]; then
  timeout 150 python3 -m pytest -q -m gpu tests/test_gpu.py -k "pdl or graph or tma" 2>&1 | tail -4 | tee "$OUT/gpu_tests.txt"
  timeout 400 python3 bench/sweep_decode.py "$OUT/tuned_new.json" rowwise,block 1,16 2>&1 | grep -v "Error$" | tee "$OUT/sweep.txt"
else
  python3 bench/merge_tuned.py "$OUT/tuned_decode.json" qlinear/kernels/triton/tuned_decode.json "$TUNED_NEW"
  export QLINEAR_TRITON_CONFIGS=$OUT/tuned_decode.json
  timeout 120 python3 bench/pdl_check.py 1,16 2>&1 | tee "$OUT/pdl_check.txt"
  timeout 330 python3 -m qlinear.cli bench --preset issue --schemes fp8_per_block,fp8_per_channel,int8_per_channel \
    --m 1,2,4,8,16 --csv "$OUT/bench_decode.csv" 2>&1 | tee "$OUT/bench_decode.txt"
fi
