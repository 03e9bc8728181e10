"""Launch one weight-only decode kernel a few times, for a profiler (GPU).

    ncu -k regex:e2m1 --launch-skip 2 --launch-count 1 ... \\
        python3 bench/profile_decode.py --scheme nvfp4_a16 --kernel gluon_w4a16 --shape 28672x4096 --m 1

Random bf16 weight quantized to the scheme, random x; the layer's kernel forced by name.
"""
from __future__ import annotations

import argparse

import torch

from qlinear.formats import quantize
from qlinear.kernels import Dispatch, all_kernels
from qlinear.layers import QuantizedLinear
from qlinear.schemes import SCHEMES


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scheme", default="nvfp4_a16")
    ap.add_argument("--kernel", default="gluon_w4a16")
    ap.add_argument("--shape", default="28672x4096")
    ap.add_argument("--m", type=int, default=1)
    ap.add_argument("--launches", type=int, default=4)
    args = ap.parse_args()
    n, k = (int(v) for v in args.shape.split("x"))
    scheme = SCHEMES[args.scheme]
    kernel = next(kern for kern in all_kernels() if kern.name == args.kernel)
    qw = quantize(torch.randn(n, k, device="cuda", dtype=torch.bfloat16), scheme.weight)
    layer = QuantizedLinear(qw, None, scheme, Dispatch.single(kernel), "profiled")
    x = torch.randn(args.m, k, device="cuda", dtype=torch.bfloat16)
    for _ in range(args.launches):
        layer(x)
    torch.cuda.synchronize()


if __name__ == "__main__":
    main()
