"""Block FP8 prefill on Hopper: the Gluon wgmma GEMM against cuBLASLt blockwise, Triton and bf16.

    PYTHONPATH=. python3 bench/wgmma_block_check.py [M] [stages,...] [group_m,...]

Checks the wgmma GEMM against a float64 dequantize-then-matmul reference on ragged shapes, then
times at M (default 4096) on the issue's shapes, in one run, ``triton.testing.do_bench`` medians
with operands rotated beyond L2: the GEMM alone and with the fused 1x128 quantization of x, cuBLASLt
blockwise ``_scaled_mm`` alone (its quantization excluded, as the issue asks), the Triton block GEMM
and bf16 ``torch.mm``.
"""
from __future__ import annotations

import itertools
import sys

import torch
import triton

from qlinear.bench import median_us
from qlinear.formats import QuantizedTensor, dequantize, quantize
from qlinear.kernels.triton.act_quant import quantize_per_group
from qlinear.kernels.triton.configs import pick_config
from qlinear.kernels.triton.scaled_gemm import scaled_gemm
from qlinear.kernels.triton.wgmma_gemm import block_fp8_gemm
from qlinear.schemes import SCHEMES

SHAPES = [(4096, 4096), (14336, 4096), (4096, 14336), (28672, 4096), (7168, 16384)]
L2_BYTES = 60 * 2**20


def block_weight(n, k) -> QuantizedTensor:
    """A random ``[N, K]`` weight in qlinear's 128x128-block e4m3 format (``qlinear.formats``)."""
    return quantize(torch.randn(n, k, device="cuda") * 0.02, SCHEMES["fp8_per_block"].weight)


def check():
    for m, n, k in [(1, 576, 576), (83, 192, 576), (257, 1536, 576), (200, 576, 1536), (130, 136, 400), (4096, 4096, 4096)]:
        x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
        qw = block_weight(n, k)
        bias = torch.randn(n, device="cuda", dtype=torch.bfloat16)
        q, s = quantize_per_group(x, 128, m_major=True, tma_aligned=True)
        # the exact operands: the kernel's own quantized activations and the dequantized weight
        a = q.double() * s.double().repeat_interleave(128, dim=1)[:, :k]
        ref = a @ dequantize(qw, torch.float64).T + bias.double()
        out = block_fp8_gemm(q, s, qw.data, qw.scale, bias).double()
        err = ((out - ref).abs().mean() / ref.abs().mean()).item()
        floor = ((ref.to(torch.bfloat16).double() - ref).abs().mean() / ref.abs().mean()).item()
        verdict = "ok" if err < floor + 1e-3 else "FAIL"
        print(f"check M={m} N={n} K={k}: mean|out-ref|/mean|ref| = {err:.2e} (bf16 rounding of ref {floor:.2e}) {verdict}")


def bench(m, stages_list, group_list):
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

        def timed(fn):
            return median_us(fn, warmup_ms=50, rep_ms=300)

        flops = 2 * m * n * k
        t_bf16 = timed(lambda: torch.mm(xs[nxt()], bf16[it["i"]].T))
        wt = [w.t() for w, _ in weights]
        st = [s.t() for _, s in weights]
        t_cublas = timed(lambda: torch._scaled_mm(quantized[nxt()][0], wt[it["i"]], scale_a=quantized[it["i"]][1],
                                                  scale_b=st[it["i"]], out_dtype=torch.bfloat16))
        cfg, swap = pick_config(m, n, k, kind="block")
        qrow = [quantize_per_group(x, 128) for x in xs]
        t_triton = timed(lambda: scaled_gemm(qrow[nxt()][0], weights[it["i"]][0], qrow[it["i"]][1], weights[it["i"]][1],
                                             a_mode="group", b_mode="block", config=cfg, out_dtype=torch.bfloat16,
                                             swap_ab=swap))
        line = (f"{n}x{k}: bf16 {t_bf16:8.1f} us | cuBLAS blockwise alone {t_cublas:8.1f} us "
                f"({flops / t_cublas / 1e6:6.0f} TFLOPS) | triton block {t_triton:8.1f} us")
        print(line)
        for stages, group_m in itertools.product(stages_list, group_list):
            opts = dict(stages=stages, group_m=group_m)

            def gemm():
                i = nxt()
                return block_fp8_gemm(quantized[i][0], quantized[i][1], weights[i][0], weights[i][1], **opts)

            def with_quant():
                i = nxt()
                q, s = quantize_per_group(xs[i], 128, m_major=True, tma_aligned=True)
                return block_fp8_gemm(q, s, weights[i][0], weights[i][1], **opts)

            t_g, t_q = timed(gemm), timed(with_quant)
            print(f"    wgmma {opts}: GEMM {t_g:8.1f} us ({flops / t_g / 1e6:6.0f} TFLOPS, "
                  f"{t_cublas / t_g:.2f}x cuBLAS) | with act quant {t_q:8.1f} us: {t_cublas / t_q:.2f}x cuBLAS "
                  f"alone, {t_bf16 / t_q:.2f}x bf16")


if __name__ == "__main__":
    m = int(sys.argv[1]) if len(sys.argv) > 1 else 4096
    stages = [int(v) for v in sys.argv[2].split(",")] if len(sys.argv) > 2 else [4]
    groups = [int(v) for v in sys.argv[3].split(",")] if len(sys.argv) > 3 else [8]
    check()
    bench(m, stages, groups)
