#!/usr/bin/env bash
# The Gluon W4A16 decode kernel with the slice's weight prefetched to shared memory (cp.async)
# against the register-prefetch kernel: exact-code tests, then the split grid of both, same run.
#   OUT=DIR bash bench/gpu_issue4_prefetch.sh
source "$(dirname "$0")/gpu_env.sh"
python3 -m pytest -q -m gpu tests/test_gpu.py -k "e2m1_mma_every_code" 2>&1 | tail -4 | tee "$OUT/tests.txt"
timeout 470 python3 bench/e2m1_mma_sweep.py --m ${SWEEP_M:-1,4,16} --schemes nvfp4_a16 2>&1 | tee "$OUT/sweep.txt"
