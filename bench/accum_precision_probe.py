"""Accuracy of every FP8 kernel at the issue's long K: mean |y - ref| / mean |ref| against the float64
dequantize-then-matmul of the exact operands, beside the bf16 rounding of ref (the tests' margin is 1e-3
above that).

    PYTHONPATH=. python3 bench/accum_precision_probe.py
"""
from __future__ import annotations

import torch

from qlinear.formats import dequantize, fake_quantize, quantize
from qlinear.kernels import Dispatch, LayerConfig, fast_candidates
from qlinear.layers import QuantizedLinear
from qlinear.platform import platform_of
from qlinear.schemes import SCHEMES

SCHEME_NAMES = ["fp8_per_tensor", "fp8_per_channel", "fp8_per_block", "mxfp8", "int8_per_channel"]
CASES = [(4096, 4096), (4096, 14336), (1024, 16384)]
MS = [1, 16, 64, 4096]


def main():
    platform = platform_of(torch.device("cuda"))
    for name in SCHEME_NAMES:
        scheme = SCHEMES[name]
        for n, k in CASES:
            g = torch.Generator(device="cuda").manual_seed(n + k)
            w = torch.randn(n, k, device="cuda", generator=g)
            qw = quantize(w, scheme.weight)
            wref = dequantize(qw, torch.float64).t()
            for m in MS:
                x = torch.randn(m, k, device="cuda", generator=g, dtype=torch.bfloat16)
                config = LayerConfig(scheme, n, k, min_m=m, max_m=m)
                parts = []
                for kernel in fast_candidates(config, platform):
                    act = None if kernel.deviation(config) else scheme.activation
                    xr = fake_quantize(x, act) if act else x.float()
                    ref = xr.double() @ wref
                    layer = QuantizedLinear(qw, None, scheme, Dispatch.single(kernel), "probe")
                    y = layer(x)
                    floor = float((ref.to(torch.bfloat16).double() - ref).abs().mean() / ref.abs().mean())
                    rel = float((y.double() - ref).abs().mean() / ref.abs().mean())
                    flag = " FAIL" if rel >= floor + 1e-3 else ""
                    parts.append(f"{kernel.name} {rel:.2e} (+{rel - floor:.1e}){flag}")
                print(f"{name} N={n} K={k} M={m}: " + " | ".join(parts), flush=True)


if __name__ == "__main__":
    main()
