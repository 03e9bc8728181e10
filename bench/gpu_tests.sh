#!/usr/bin/env bash
# The whole GPU test suite (GPU-marked and the CPU tests, real-model tests excluded), on the GPU machine.
#   OUT=DIR bash bench/gpu_tests.sh
source "$(dirname "$0")/gpu_env.sh"
timeout 400 python3 -m pytest -q -m "gpu or not slow" tests 2>&1 | tail -6 | tee "$OUT/gpu_tests.txt"
