"""A/B: block FP8 GEMM with 128x128 tiles (promotion, two products in flight) against 128x256 tiles
(rescaled accumulator), accuracy against float64 and time in one run.

    PYTHONPATH=. python3 bench/block_rescale_ab.py [M,...]
"""
from __future__ import annotations

import sys

import torch
import triton

from qlinear.bench import graph_median_us, median_us
from qlinear.formats import QuantizedTensor, dequantize, quantize
from qlinear.kernels.triton.act_quant import quantize_per_group
from qlinear.kernels.triton.wgmma_gemm import block_fp8_gemm, weight_descriptors
from qlinear.schemes import SCHEMES

SHAPES = [(4096, 4096), (14336, 4096), (4096, 14336), (28672, 4096), (7168, 16384)]
VARIANTS = {"128x128 promote": dict(block_n=128, stages=4), "128x256 rescale": dict(block_n=256, stages=3),
            "128x256 rescale g16": dict(block_n=256, stages=3, group_m=16)}
L2_BYTES = 60 * 2**20


def block_weight(n, k, spread=0.0) -> QuantizedTensor:
    w = torch.randn(n, k, device="cuda") * 0.02
    if spread:  # 128x128 blocks of very different magnitudes
        f = 10 ** (spread * (2 * torch.rand(-(-n // 128), -(-k // 128), device="cuda") - 1))
        w = w * f.repeat_interleave(128, 0).repeat_interleave(128, 1)[:n, :k]
    return quantize(w, SCHEMES["fp8_per_block"].weight)


def check():
    cases = [(1, 576, 576, 0), (83, 192, 576, 0), (257, 1536, 576, 0), (200, 576, 1536, 0), (130, 136, 400, 0),
             (304, 520, 1008, 0), (4096, 4096, 4096, 0), (1024, 4096, 16384, 0), (1024, 4096, 16384, 3),
             (512, 1024, 4096, 3)]
    for m, n, k, spread in cases:
        torch.manual_seed(m + n + k)
        x = torch.randn(m, k, device="cuda")
        if spread:
            f = 10 ** (spread * (2 * torch.rand(m, -(-k // 128), device="cuda") - 1))
            x = x * f.repeat_interleave(128, 1)[:, :k]
        x = x.to(torch.bfloat16)
        qw = block_weight(n, k, spread)
        bias = torch.randn(n, device="cuda", dtype=torch.bfloat16)
        q, s = quantize_per_group(x, 128, m_major=True, tma_aligned=True)
        a = q.double() * s.double().repeat_interleave(128, dim=1)[:, :k]
        ref = a @ dequantize(qw, torch.float64).T + bias.double()
        floor = ((ref.to(torch.bfloat16).double() - ref).abs().mean() / ref.abs().mean()).item()
        parts = []
        for name, opts in VARIANTS.items():
            if "g16" in name:
                continue
            out = block_fp8_gemm(q, s, qw.data, qw.scale, bias, block_n=opts["block_n"], stages=opts["stages"]).double()
            err = ((out - ref).abs().mean() / ref.abs().mean()).item()
            worst = ((out - ref).abs().max() / ref.abs().mean()).item()
            parts.append(f"{name}: mean {err:.2e} max {worst:.2e} finite {bool(torch.isfinite(out).all())}")
        print(f"check M={m} N={n} K={k} spread 1e+-{spread}: bf16 rounding {floor:.2e} | " + " | ".join(parts))


def bench(m):
    print(f"device: {torch.cuda.get_device_name()}; torch {torch.__version__}; triton {triton.__version__}; M={m}")
    for n, k in SHAPES:
        copies = max(2, L2_BYTES // (n * k) + 1)
        weights = [(qw.data, qw.scale) for qw in (block_weight(n, k) for _ in range(copies))]
        xs = [torch.randn(m, k, device="cuda", dtype=torch.bfloat16) for _ in range(copies)]
        quantized = [quantize_per_group(x, 128, m_major=True, tma_aligned=True) for x in xs]
        bf16 = [w.to(torch.bfloat16) for w, _ in weights]
        it = {"i": 0}

        def nxt():
            it["i"] = (it["i"] + 1) % copies
            return it["i"]

        flops = 2 * m * n * k
        t_bf16 = min(median_us(lambda: torch.mm(xs[nxt()], bf16[it["i"]].T)),
                     graph_median_us(lambda: torch.mm(xs[nxt()], bf16[it["i"]].T)))
        wt = [w.t() for w, _ in weights]
        st = [s.t() for _, s in weights]
        t_cublas = graph_median_us(lambda: torch._scaled_mm(quantized[nxt()][0], wt[it["i"]], scale_a=quantized[it["i"]][1],
                                                            scale_b=st[it["i"]], out_dtype=torch.bfloat16))
        print(f"{n}x{k}: bf16 {t_bf16:8.1f} us | cuBLAS blockwise alone {t_cublas:8.1f} us "
              f"({flops / t_cublas / 1e6:6.0f} TFLOPS)")
        for name, opts in VARIANTS.items():
            descs = [weight_descriptors(w, s, "block", opts["block_n"]) for w, s in weights]

            def gemm():
                i = nxt()
                return block_fp8_gemm(quantized[i][0], quantized[i][1], weights[i][0], weights[i][1],
                                      b_descs=descs[i], **opts)

            def with_quant():
                i = nxt()
                q, s = quantize_per_group(xs[i], 128, m_major=True, tma_aligned=True, pdl_any_m=True)
                return block_fp8_gemm(q, s, weights[i][0], weights[i][1], b_descs=descs[i], after_producer=True,
                                      **opts)

            t_g, t_q = graph_median_us(gemm), graph_median_us(with_quant)
            print(f"    {name:22s}: GEMM {t_g:8.1f} us ({flops / t_g / 1e6:6.0f} TFLOPS, {t_cublas / t_g:.2f}x cuBLAS)"
                  f" | with act quant {t_q:8.1f} us: {t_cublas / t_q:.2f}x cuBLAS alone, {t_bf16 / t_q:.2f}x bf16")


if __name__ == "__main__":
    check()
    for m in (sys.argv[1] if len(sys.argv) > 1 else "4096").split(","):
        bench(int(m))
