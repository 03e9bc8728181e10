#!/usr/bin/env bash
# The Gluon e2m1 decode GEMM (gluon_w4a16): its GPU tests, then the sweep beside bf16 and
# triton_w4a16 on the issue's decode shapes.   OUT=DIR [SWEEP_ARGS=...] bash bench/gpu_issue4_e2m1_mma.sh
source "$(dirname "$0")/gpu_env.sh"
timeout 240 python3 -m pytest -q --maxfail=5 -m gpu tests/test_gpu.py -k "gluon_w4a16 or e2m1_mma or graph or weight_only" \
    2>&1 | tail -25 | tee "$OUT/e2m1_mma_tests.txt"
timeout 320 python3 bench/e2m1_mma_sweep.py ${SWEEP_ARGS:-} 2>&1 | tee "$OUT/e2m1_mma_sweep.txt"
