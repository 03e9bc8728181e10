#!/usr/bin/env bash
# Decode kernels against a pure read of the same weight: graph-replay times, then Nsight Compute
# counters of one launch each (boost clocks kept, caches flushed before each profiled launch).
#   OUT=DIR [SHAPES="4096x14336 ..."] bash bench/gpu_decode_ncu.sh
source "$(dirname "$0")/gpu_env.sh"
SHAPES=${SHAPES:-4096x14336}
for s in $SHAPES; do
  timeout 150 python3 bench/decode_ncu_probe.py --shape "$s" --time 2>&1 | tee -a "$OUT/times.txt"
done
for s in $SHAPES; do
  echo "# ncu, $s, M=1" | tee -a "$OUT/ncu.txt"
  timeout 240 ncu --clock-control none --cache-control all \
    --kernel-name regex:'_read_kernel|_gemv_kernel|_e2m1_mma_kernel|_scaled_gemm_kernel|_quant_rows_kernel' \
    --section SpeedOfLight --section MemoryWorkloadAnalysis --section WarpStateStats --section SchedulerStats \
    --section Occupancy --section LaunchStats \
    --metrics dram__bytes_read.sum,smsp__inst_executed.sum,sm__cycles_active.avg,lts__t_sector_hit_rate.pct \
    python3 bench/decode_ncu_probe.py --shape "$s" --launches 1 >> "$OUT/ncu.txt" 2>&1
done
grep -E "^  [_a-z]|Duration|DRAM Throughput|Memory Throughput|Issue Slots Busy|Achieved Occupancy|Stall|dram__bytes|inst_executed.sum|Registers Per|Shared Memory Config|Block Size|Grid Size|Waves" "$OUT/ncu.txt" | head -300
