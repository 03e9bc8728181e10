"""Launch the f16-MMA e2m1 decode GEMM (qlinear/kernels/triton/e2m1_fp8_mma.py) a few times, for ncu (GPU).

    ncu -k regex:e2m1_fp8 --launch-skip 2 --launch-count 1 ... python3 bench/profile_e2m1_f16.py --scheme nvfp4_a16
"""
from __future__ import annotations

import argparse

import torch

from qlinear.formats import quantize
from qlinear.kernels import Dispatch, GluonW4A16Kernel
from qlinear.kernels.triton.e2m1_fp8_mma import e2m1_fp8_mma, pick_e2m1_fp8_config
from qlinear.layers import QuantizedLinear
from qlinear.schemes import SCHEMES

ap = argparse.ArgumentParser()
ap.add_argument("--scheme", default="nvfp4_a16")
ap.add_argument("--shape", default="28672x4096")
args = ap.parse_args()
n, k = (int(v) for v in args.shape.split("x"))
scheme = SCHEMES[args.scheme]
layer = QuantizedLinear(quantize(torch.randn(n, k, device="cuda", dtype=torch.bfloat16), scheme.weight), None,
                        scheme, Dispatch.single(GluonW4A16Kernel), "profiled")
x = torch.randn(1, k, device="cuda", dtype=torch.bfloat16)
lay = layer.kernel.layout
for _ in range(4):
    e2m1_fp8_mma(x, layer.weight, layer.weight_scale, lay.post_scale, mx=scheme.weight.scale_dtype == "e8m0",
                 scale_bias=lay.scale_bias, config=pick_e2m1_fp8_config(n, k, 1))
torch.cuda.synchronize()
