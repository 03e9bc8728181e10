#!/usr/bin/env bash
# Inductor's reductions looped vs persistent in the compiled decoder (bench/inductor_reduction_ab.py):
# the kernel time of a 4-layer prefill, then the 32-layer decoder timed. ARGS passes options.
source "$(dirname "$0")/gpu_env.sh"
echo "# PYTHONPATH=. python3 bench/inductor_reduction_ab.py ${ARGS:-}" | tee "$OUT/inductor_reduction_ab.txt"
timeout ${LIMIT:-540} python3 bench/inductor_reduction_ab.py ${ARGS:-} 2>&1 | grep -v Warning | tee -a "$OUT/inductor_reduction_ab.txt"
