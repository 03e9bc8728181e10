"""Per-token INT8 activation quantization: the time of its kernels (plain, and with the gated MLP's
SiLU-and-multiply fused), with FP8 beside them, as a fraction of the byte floor. Run once per variant
of ``qlinear.kernels.triton.numerics`` to compare roundings (``bench/gpu_int8_rounding.sh``).

    PYTHONPATH=. python3 bench/int8_rounding_ab.py [--label new]

CUDA-graph replay medians; inputs are rotated beyond L2; the floor is the bytes read and written at
the measured copy bandwidth.
"""
from __future__ import annotations

import argparse

import torch

from qlinear.bench import _copies, _rotating, graph_median_us, measure_ceilings
from qlinear.kernels.triton.act_quant import quantize_per_token, silu_mul_quantize_per_token


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--label", default="")
    label = p.parse_args().label
    bw = measure_ceilings().copy_bytes_per_s
    print(f"[{label}] copy bandwidth {bw / 1e12:.2f} TB/s")
    for m, k in [(4096, 4096), (4096, 14336), (1, 14336)]:
        for dtype in (torch.int8, torch.float8_e4m3fn):
            name = "int8" if dtype == torch.int8 else "fp8 "
            plain = [torch.randn(m, k, device="cuda", dtype=torch.bfloat16) for _ in range(_copies(2 * m * k))]
            us = graph_median_us(_rotating([lambda x=x: quantize_per_token(x, dtype) for x in plain]))
            floor = (3 * m * k) / bw * 1e6
            line = f"[{label}] M={m:5} K={k:5} {name} plain {us:7.1f} us ({floor / us:4.0%})"
            del plain
            pairs = [(torch.randn(m, k, device="cuda", dtype=torch.bfloat16) * 3,
                      torch.randn(m, k, device="cuda", dtype=torch.bfloat16)) for _ in range(_copies(4 * m * k))]
            us = graph_median_us(_rotating([lambda g=g, u=u: silu_mul_quantize_per_token(g, u, dtype) for g, u in pairs]))
            floor = (5 * m * k) / bw * 1e6
            print(f"{line}   silu*mul fused {us:7.1f} us ({floor / us:4.0%})", flush=True)
            del pairs
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
