"""Where the fused SiLU-and-multiply + per-token e4m3 quantization spends its time at M=4096,
K=14336: the shipped one-pass kernel against variants that each drop one cost, as CUDA-graph replays.

* ``exact``: the shipped math (accurate exp, IEEE division: PyTorch's eager rounding);
* ``approx``: exp2 and a fast reciprocal instead (not PyTorch's rounding: a probe only);
* ``mul``: ``h = g * u`` (no silu at all);
* ``gate``: h = g (one input read, like the plain per-token quantization);
* ``exp+fastdiv``, ``exp2+div_rn``: one of the two approximated;
* ``exp+newton``: accurate exp, the division as a fast reciprocal and one residual correction.

    PYTHONPATH=. python3 bench/silu_mul_quant_probe.py
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl
import triton.testing
from triton.language.extra import libdevice

from qlinear.bench import measure_ceilings


@triton.jit
def _probe_kernel(g_ptr, u_ptr, q_ptr, s_ptr, K, BLOCK_K: tl.constexpr, MODE: tl.constexpr):
    row = tl.program_id(0)
    cols = tl.arange(0, BLOCK_K)
    m = cols < K
    g = tl.load(g_ptr + row * K + cols, mask=m, other=0.0).to(tl.float32)
    if MODE == 3:
        h = g
    else:
        u = tl.load(u_ptr + row * K + cols, mask=m, other=0.0).to(tl.float32)
        if MODE == 0:
            silu = tl.math.div_rn(g, 1.0 + libdevice.exp(-g)).to(tl.bfloat16).to(tl.float32)
            h = (silu * u).to(tl.bfloat16).to(tl.float32)
        elif MODE == 1:
            silu = (g / (1.0 + tl.exp2(g * -1.4426950408889634))).to(tl.bfloat16).to(tl.float32)
            h = (silu * u).to(tl.bfloat16).to(tl.float32)
        elif MODE == 2:
            h = (g * u).to(tl.bfloat16).to(tl.float32)
        elif MODE == 4:  # accurate exp, approximate division
            silu = (g / (1.0 + libdevice.exp(-g))).to(tl.bfloat16).to(tl.float32)
            h = (silu * u).to(tl.bfloat16).to(tl.float32)
        elif MODE == 5:  # approximate exp, IEEE division
            silu = tl.math.div_rn(g, 1.0 + tl.exp2(g * -1.4426950408889634)).to(tl.bfloat16).to(tl.float32)
            h = (silu * u).to(tl.bfloat16).to(tl.float32)
        else:  # accurate exp, division by a reciprocal and one residual correction
            d = 1.0 + libdevice.exp(-g)
            r = 1.0 / d
            q0 = g * r
            q1 = tl.fma(tl.fma(-q0, d, g), r, q0)
            silu = tl.where(d == float("inf"), g * 0.0, q1).to(tl.bfloat16).to(tl.float32)
            h = (silu * u).to(tl.bfloat16).to(tl.float32)
    scale = tl.math.div_rn(tl.maximum(tl.max(tl.abs(h), axis=0), 1e-12), 448.0)
    q = tl.clamp(h * tl.math.div_rn(1.0, scale), -448.0, 448.0).to(tl.float8e4nv)
    tl.store(q_ptr + row * K + cols, q, mask=m)
    tl.store(s_ptr + row, scale)


def main() -> None:
    bw = measure_ceilings().copy_bytes_per_s
    m, k = 4096, 14336
    g = torch.randn(m, k, device="cuda", dtype=torch.bfloat16) * 3
    u = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
    q = torch.empty(m, k, device="cuda", dtype=torch.float8_e4m3fn)
    s = torch.empty(m, device="cuda", dtype=torch.float32)
    print(f"M={m} K={k}, copy {bw / 1e12:.2f} TB/s")
    exact_q = torch.empty_like(q)
    _probe_kernel[(m,)](g, u, exact_q, s, k, BLOCK_K=16384, MODE=0, num_warps=32)
    names = ["exact", "approx", "mul", "gate", "exp+fastdiv", "exp2+div_rn", "exp+newton"]
    for mode, name in enumerate(names):
        inputs = 1 if mode == 3 else 2
        floor = (inputs * m * k * 2 + m * k) / bw * 1e6
        for warps in (16, 32):
            fn = lambda: _probe_kernel[(m,)](g, u, q, s, k, BLOCK_K=16384, MODE=mode, num_warps=warps)  # noqa: E731
            fn()
            us = triton.testing.do_bench_cudagraph(fn, rep=100) * 1000
            differ = (q.view(torch.uint8) != exact_q.view(torch.uint8)).sum().item() if mode not in (2, 3) else "-"
            print(f"{name:11} warps={warps:2}: {us:7.1f} us ({floor / us:4.0%} of its byte floor {floor:.1f} us); "
                  f"q bytes differing from exact: {differ}", flush=True)


if __name__ == "__main__":
    main()
