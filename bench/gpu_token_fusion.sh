#!/usr/bin/env bash
# Per-token quantization fused into the decode GEMM: tests, sweep (fused vs separate), decode bench, e2e.
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
timeout 120 python3 -m pytest -q -m "gpu or not slow" -p no:cacheprovider tests/test_triton_kernels.py tests/test_gpu.py 2>&1 | tee "$OUT/gpu_tests.txt" | grep -E "^E   .*Error|passed|failed|^FAILED" | head
timeout 230 python3 bench/sweep_decode.py "$OUT/tuned_rowwise.json" rowwise 2>&1 | grep -v "Error$" | tee "$OUT/sweep_decode_rowwise.txt"
python3 bench/merge_tuned.py "$OUT/tuned_decode.json" qlinear/kernels/triton/tuned_decode.json "$OUT/tuned_rowwise.json"
export QLINEAR_TRITON_CONFIGS=$OUT/tuned_decode.json
timeout 120 python3 -m qlinear.cli bench --preset issue --schemes fp8_per_block,fp8_per_channel,int8_per_channel \
  --m 1,2,4,8,16 --csv "$OUT/bench_decode.csv" > "$OUT/bench_decode.txt" 2>&1
timeout 120 python3 -m qlinear.cli bench --e2e --schemes fp8_per_channel,int8_per_channel 2>&1 | grep -v "^ *$" | tee "$OUT/e2e.txt"
