#!/usr/bin/env bash
# SiLU-and-multiply fused into down_proj's per-token quantization: GPU tests of the change, then
# bench/silu_mul_quant_ab.py (the kernel against Inductor's fusion and eager; the compiled 32-layer
# decoder with the fusion off and on). TESTS=0 skips the tests; ARGS passes options to the bench.
source "$(dirname "$0")/gpu_env.sh"
if [ "${TESTS:-1}" = 1 ]; then
  timeout 300 python3 -m pytest -q -p no:cacheprovider -m "gpu or not slow" tests/test_gated_mlp.py tests/test_compile.py \
    tests/test_triton_kernels.py -k "gated or silu or mlp or compiled_decoder or activation_quantization" 2>&1 | tail -4 | tee "$OUT/silu_mul_quant_tests.txt"
fi
echo "# PYTHONPATH=. python3 bench/silu_mul_quant_ab.py ${ARGS:-}" | tee "$OUT/silu_mul_quant_ab.txt"
timeout ${LIMIT:-420} python3 bench/silu_mul_quant_ab.py ${ARGS:-} 2>&1 | grep -v Warning | tee -a "$OUT/silu_mul_quant_ab.txt"
