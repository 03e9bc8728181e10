#!/usr/bin/env bash
# Activation quantization fused by the compiler: the compile tests, the kernel time of one compiled
# 4-layer prefill with the fusion on and off (the profile the results name as the next step), and
# the 32-layer e2e A/B (bench/fused_quant_ab.py). TESTS=0 skips the tests, AB=0 the A/B.
source "$(dirname "$0")/gpu_env.sh"
if [ "${TESTS:-1}" = 1 ]; then
  timeout 240 python3 -m pytest -q -p no:cacheprovider -m "gpu or not slow" tests/test_compile.py 2>&1 | tail -3 | tee "$OUT/compile_tests.txt"
fi
for fused in 1 0; do
  echo "## QLINEAR_FUSE_ACT_QUANT=$fused PYTHONPATH=. python3 bench/profile_e2e_prefill.py --schemes fp8_per_channel --top 18"
  QLINEAR_FUSE_ACT_QUANT=$fused timeout 150 python3 bench/profile_e2e_prefill.py --schemes fp8_per_channel --top 18 2>&1 | grep -v Warning
done | tee "$OUT/fused_quant_profile.txt"
if [ "${AB:-1}" = 1 ]; then
  echo "# PYTHONPATH=. python3 bench/fused_quant_ab.py" | tee "$OUT/fused_quant_ab.txt"
  timeout 300 python3 bench/fused_quant_ab.py 2>&1 | grep -v Warning | tee -a "$OUT/fused_quant_ab.txt"
fi
