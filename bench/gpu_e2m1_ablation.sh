#!/usr/bin/env bash
# The e2m1 decode GEMM with parts taken out (bench/e2m1_ablation_probe.py): graph-replay times on
# the issue's shapes, then Nsight Compute stall reasons of one launch each at 4096x14336.
#   OUT=DIR bash bench/gpu_e2m1_ablation.sh
source "$(dirname "$0")/gpu_env.sh"
timeout 300 python3 bench/e2m1_ablation_probe.py ${PROBE_ARGS:-} 2>&1 | tee "$OUT/ablation.txt"
stalls=""
for r in long_scoreboard short_scoreboard barrier wait math_pipe_throttle mio_throttle lg_throttle not_selected \
         selected no_instruction dispatch_stall drain membar branch_resolving tex_throttle imc_miss sleeping; do
  stalls="$stalls,smsp__average_warps_issue_stalled_${r}_per_issue_active.ratio"
done
timeout 200 ncu --clock-control none --cache-control all --kernel-name regex:'_read_kernel|_e2m1_mma_kernel' \
  --metrics "gpu__time_duration.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed,smsp__inst_executed.sum,smsp__issue_active.avg.pct_of_peak_sustained_active,sm__warps_active.avg.per_cycle_active,l1tex__throughput.avg.pct_of_peak_sustained_active,sm__cycles_active.avg${stalls}" \
  python3 bench/e2m1_ablation_probe.py --once --shapes 4096x14336 > "$OUT/ncu_ablation.txt" 2>&1
grep -E "^  [_a-z]|launched|duration|dram__|inst_executed|issue_active|warps_active|l1tex|cycles_active|stalled" "$OUT/ncu_ablation.txt" \
  | sed -e 's/smsp__average_warps_issue_stalled_//' -e 's/_per_issue_active.ratio//' | awk '$NF != "0" || /^  /' | head -250
