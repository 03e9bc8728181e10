#!/usr/bin/env bash
# The FP8 decode bound (a kernel that only reads the e4m3 weight, as CUDA-graph replays) on the
# issue's shapes, then `qlinear bench --graph` at M=4096 for INT8 and per-channel FP8.
#   OUT=DIR bash bench/gpu_issue3_floor.sh
source "$(dirname "$0")/gpu_env.sh"
python3 bench/read_pattern_probe.py --fp8 --shapes 4096x4096,14336x4096,4096x14336,28672x4096,7168x16384 2>&1 \
    | tee "$OUT/read_floor_fp8.txt"
timeout 300 python3 -m qlinear.cli bench --preset issue --schemes int8_per_channel,fp8_per_channel --m 4096 --graph \
    --csv "$OUT/bench_graph.csv" 2>&1 | tee "$OUT/bench_graph.txt"
