#!/usr/bin/env bash
# The whole GPU test suite, then the e2e bench, with this commit's decode table and H200 defaults.
#   OUT=DIR bash bench/gpu_issue3_final2.sh
source "$(dirname "$0")/gpu_env.sh"
timeout 300 python3 -m pytest -q -m "gpu or not slow" tests 2>&1 | tail -6 | tee "$OUT/gpu_tests.txt"
timeout 90 python3 -m qlinear.cli bench --shape 4096x4096 --shape 28672x4096 --schemes fp8_per_channel,int8_per_channel --m 4096 2>&1 | tee "$OUT/prefill_check.txt"
timeout 280 python3 -m qlinear.cli bench --e2e --schemes fp8_per_block,fp8_per_channel,int8_per_channel 2>&1 | grep -v "^ *$" | tee "$OUT/e2e.txt"
