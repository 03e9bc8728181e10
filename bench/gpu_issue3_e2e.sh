#!/usr/bin/env bash
# Decode configs for the Llama-3.1-8B k/v projection (1024x4096), then the e2e FP8/INT8 bench.
#   OUT=DIR bash bench/gpu_issue3_e2e.sh
source "$(dirname "$0")/gpu_env.sh"
timeout 150 python3 bench/sweep_decode.py "$OUT/tuned_kv.json" rowwise,block 1,16 1024x4096 2>&1 | grep -v "Error$" | tee "$OUT/sweep_kv.txt"
python3 bench/merge_tuned.py "$OUT/tuned_decode.json" qlinear/kernels/triton/tuned_decode.json "$OUT/tuned_kv.json"
export QLINEAR_TRITON_CONFIGS=$OUT/tuned_decode.json
timeout 300 python3 -m qlinear.cli bench --e2e --schemes fp8_per_block,fp8_per_channel,int8_per_channel 2>&1 | grep -v "^ *$" | tee "$OUT/e2e.txt"
