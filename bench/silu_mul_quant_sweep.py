"""Launch configurations of the fused SiLU-and-multiply + per-token quantization kernel
(``_quant_rows_kernel`` with ``GATED``), timed as CUDA-graph replays at Llama-3.1-8B's down_proj
input width: one-pass rows (the whole row in registers) at several warp counts, and two-pass rows
(amax, then a second read of gate and up that mostly hits L2) at several tile widths.

    PYTHONPATH=. python3 bench/silu_mul_quant_sweep.py [--k 14336] [--m 1,16,4096]
"""
from __future__ import annotations

import argparse

import torch
import triton
import triton.testing

from qlinear.bench import measure_ceilings
from qlinear.formats.fp8 import AMAX_FLOOR, E4M3_MAX
from qlinear.kernels.triton.act_quant import _quant_rows_kernel, silu_mul_quantize_per_token


def launch(g, u, q, s, one_pass: bool, block_m: int, block_k: int, warps: int):
    m, k = g.shape
    _quant_rows_kernel[(triton.cdiv(m, block_m),)](
        g, u, q, s, m, k, g.stride(0), u.stride(0), q.stride(0), BLOCK_M=block_m, BLOCK_K=block_k,
        QMAX=E4M3_MAX, FLOOR=AMAX_FLOOR, IS_INT=False, ONE_PASS=one_pass, GATED=True, EXPLICIT=False, PDL=False,
        num_warps=warps)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--k", type=int, default=14336)
    p.add_argument("--m", default="1,16,4096")
    a = p.parse_args()
    bw = measure_ceilings().copy_bytes_per_s
    k = a.k
    configs = [(True, 1, triton.next_power_of_2(k), w) for w in (4, 8, 16, 32)]
    configs += [(False, bm, bk, w) for bm in (1, 2) for bk in (1024, 2048, 4096) for w in (2, 4, 8) if bm * bk >= 1024]
    for m in [int(x) for x in a.m.split(",")]:
        g = torch.randn(m, k, device="cuda", dtype=torch.bfloat16) * 3
        u = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
        ref_q, ref_s = silu_mul_quantize_per_token(g, u)
        floor = (2 * m * k * 2 + m * k + 4 * m) / bw * 1e6
        rows = []
        for one_pass, bm, bk, w in configs:
            q, s = torch.empty_like(ref_q), torch.empty_like(ref_s)
            launch(g, u, q, s, one_pass, bm, bk, w)
            same = torch.equal(q.view(torch.uint8), ref_q.view(torch.uint8)) and torch.equal(s, ref_s)
            us = triton.testing.do_bench_cudagraph(lambda: launch(g, u, q, s, one_pass, bm, bk, w), rep=100) * 1000
            rows.append((us, f"{'one-pass' if one_pass else 'two-pass'} BLOCK_M={bm} BLOCK_K={bk} warps={w}", same))
        print(f"\n## M={m} K={k}: byte floor {floor:.1f} us at {bw / 1e12:.2f} TB/s", flush=True)
        for us, label, same in sorted(rows):
            print(f"{us:8.1f} us {floor / us:5.0%}  {label}{'' if same else '  OUTPUT DIFFERS'}", flush=True)


if __name__ == "__main__":
    main()
