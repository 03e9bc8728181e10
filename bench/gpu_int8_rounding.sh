#!/usr/bin/env bash
# INT8 rounding by the fp32 adder (numerics.to_int8) against libdevice rint + conversion: GPU tests of
# the activation quantization, then bench/int8_rounding_ab.py alternating the shipped numerics with the
# copies in $OLD (act_quant.py and numerics.py as they were), two rounds. Make them here first, e.g.
#   mkdir -p bench/_old && for f in act_quant numerics; do git show d1347cf:qlinear/kernels/triton/$f.py > bench/_old/$f.py; done
# then on the GPU machine: OLD=bench/_old OUT=... bash bench/gpu_int8_rounding.sh
source "$(dirname "$0")/gpu_env.sh"
timeout 240 python3 -m pytest -q -p no:cacheprovider -m "gpu or not slow" tests/test_triton_kernels.py tests/test_gated_mlp.py \
  -k "int8 or ties or bit_identical or gated or silu or activation" 2>&1 | tail -3 | tee "$OUT/int8_rounding_tests.txt"
K=qlinear/kernels/triton
mkdir -p /tmp/new && cp $K/act_quant.py $K/numerics.py /tmp/new/
echo "# PYTHONPATH=. python3 bench/int8_rounding_ab.py --label {new,old}, alternating" | tee "$OUT/int8_rounding_ab.txt"
for round in 1 2; do
  cp /tmp/new/*.py $K/ && python3 bench/int8_rounding_ab.py --label new 2>&1 | tee -a "$OUT/int8_rounding_ab.txt"
  cp $OLD/*.py $K/ && python3 bench/int8_rounding_ab.py --label old 2>&1 | tee -a "$OUT/int8_rounding_ab.txt"
done
cp /tmp/new/*.py $K/
