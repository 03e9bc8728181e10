#!/usr/bin/env bash
# Final GPU pass: all GPU tests, tune + explain on a SmolLM2-shaped random model, e2e, side-by-side bench.
source "$(dirname "$0")/gpu_env.sh"
timeout 120 python3 -m pytest -q -m "gpu or not slow" -p no:cacheprovider tests 2>&1 | tee "$OUT/gpu_tests.txt" | grep -E "^E   .*Error|passed|failed" | head -20
python3 bench/make_random_llama.py /tmp/rand_smollm2 --layers 2 > /dev/null 2>&1
export QLINEAR_TUNE_CACHE=$OUT/tuned.json
timeout 90 python3 -m qlinear.cli tune --scheme fp8_per_block,fp8_per_channel --model /tmp/rand_smollm2 2>&1 | grep -v "it/s" > "$OUT/tune.txt"
timeout 60 python3 -m qlinear.cli explain --scheme fp8_per_block --model /tmp/rand_smollm2 2>&1 | grep -v "it/s" > "$OUT/explain_tuned.txt"
tail -4 "$OUT/tune.txt"; grep -A8 "^why" "$OUT/explain_tuned.txt"
unset QLINEAR_TUNE_CACHE
timeout 200 python3 -m qlinear.cli bench --e2e --schemes fp8_per_block,fp8_per_channel,int8_per_channel 2>&1 | grep -v "^ *$" | tee "$OUT/e2e.txt"
timeout 200 python3 -m qlinear.cli bench --preset issue --schemes fp8_per_block,fp8_per_channel,int8_per_channel \
  --m 1,2,4,8,16,64,256,4096 --act-quant --csv "$OUT/bench_issue.csv" --plot "$OUT/bench_issue.png" > "$OUT/bench_issue.txt" 2>&1
grep -E "device|act quant" "$OUT/bench_issue.txt"
