#!/usr/bin/env bash
# torch.compile with qlinear layers: the GPU tests of the compiled path, then the e2e harness with
# every decoder layer compiled (bf16 baseline too), next to the eager harness in the same run.
# SCHEMES (default fp8_per_channel) picks the schemes; TESTS=0 skips the tests.
source "$(dirname "$0")/gpu_env.sh"
SCHEMES=${SCHEMES:-fp8_per_channel}
if [ "${TESTS:-1}" = 1 ]; then
  timeout 200 python3 -m pytest -q -p no:cacheprovider -m gpu tests/test_compile.py 2>&1 | tee "$OUT/compile_tests.txt" | tail -3
fi
echo "# python3 -m qlinear.cli bench --e2e --compile --schemes $SCHEMES" | tee "$OUT/e2e_compile.txt"
( time timeout 400 python3 -m qlinear.cli bench --e2e --compile --schemes "$SCHEMES" ) 2>&1 | grep -v "^ *$" | tee -a "$OUT/e2e_compile.txt"
if [ "${EAGER:-1}" = 1 ]; then
  echo "# python3 -m qlinear.cli bench --e2e --schemes $SCHEMES" | tee "$OUT/e2e_eager.txt"
  timeout 200 python3 -m qlinear.cli bench --e2e --schemes "$SCHEMES" 2>&1 | grep -v "^ *$" | tee -a "$OUT/e2e_eager.txt"
fi
