#!/usr/bin/env bash
# Issue 3 measurements on the GPU: end-to-end Llama-3.1-8B shape, then every kernel side by side.
source "$(dirname "$0")/gpu_env.sh"
timeout 240 python3 -m qlinear.cli bench --e2e --schemes fp8_per_block,fp8_per_channel,int8_per_channel 2>&1 | grep -v "^ *$" | tee "$OUT/e2e.txt"
timeout 300 python3 -m qlinear.cli bench --preset issue --schemes fp8_per_block,fp8_per_channel,int8_per_channel \
  --m 1,2,4,8,16,64,256,4096 --act-quant --csv "$OUT/bench_issue.csv" --plot "$OUT/bench_issue.png" > "$OUT/bench_issue.txt" 2>&1
grep -E "device|act quant" "$OUT/bench_issue.txt"; grep -E "^ *[0-9]+x[0-9]+ +(1|16|4096) " "$OUT/bench_issue.txt" | grep -v torch_int_mm
