"""SiLU-and-multiply fused into the per-token quantization of down_proj's input (one Triton pass,
``qlinear.layers.gated_mlp``) against what ran before: Inductor's fusion of the same ops (two
passes over gate and up at rows wider than 1024) and eager (h written, then quantized).

1. The quantization alone, M x 14336 (Llama-3.1-8B's down_proj input), CUDA-graph replays; the
   fused kernel's output against eager PyTorch's ``F.silu(g) * u`` quantized (bitwise).
2. The compiled 32-layer decoder (``qlinear.e2e``), bf16 and each scheme with ``fuse_mlp`` off/on,
   alternating: decode step at batch 1 and 16, prefill of 4096 tokens.

    PYTHONPATH=. python3 bench/silu_mul_quant_ab.py [--schemes fp8_per_channel,int8_per_channel] [--repeats 2]
"""
from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
import triton.testing

from qlinear.bench import measure_ceilings
from qlinear.e2e import build_model, compile_decoder_layers, measure, timing_line
from qlinear.formats import quantize as reference_quantize
from qlinear.kernels.triton.act_quant import quantize_per_token, silu_mul_quantize_per_token
from qlinear.layers import quantize
from qlinear.schemes import get_scheme


def graph_us(fn) -> float:
    return triton.testing.do_bench_cudagraph(fn, rep=200) * 1000.0


def kernels(k: int = 14336) -> None:
    bw = measure_ceilings().copy_bytes_per_s / 1e12
    print(f"copy bandwidth {bw:.2f} TB/s")
    for m in (1, 16, 4096):
        g = torch.randn(m, k, device="cuda", dtype=torch.bfloat16) * 3
        u = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
        for scheme in ("fp8_per_channel", "int8_per_channel"):
            spec = get_scheme(scheme).activation
            dtype = torch.int8 if spec.dtype == "int8" else torch.float8_e4m3fn
            q, s = silu_mul_quantize_per_token(g, u, dtype)
            ref = reference_quantize(F.silu(g) * u, spec)
            same = torch.equal(q.view(torch.uint8), ref.data.view(torch.uint8)) and torch.equal(s, ref.scale)
            compiled = torch.compile(lambda g, u: reference_quantize(F.silu(g) * u, spec).data, dynamic=False)
            compiled(g, u)
            fused = graph_us(lambda: silu_mul_quantize_per_token(g, u, dtype))
            inductor = graph_us(lambda: compiled(g, u))
            eager = graph_us(lambda: quantize_per_token(F.silu(g) * u, dtype))
            floor = (2 * m * k * 2 + m * k) / (bw * 1e12) * 1e6
            print(f"M={m:5} K={k} {scheme:16} fused {fused:8.1f} us ({floor / fused:4.0%} of the byte floor)  "
                  f"inductor {inductor:8.1f}  eager silu*mul + quantize {eager:8.1f}  bitwise equal to eager: {same}",
                  flush=True)


def timed(scheme: str, fuse: bool | None, layers: int | None) -> str:
    torch._dynamo.reset()
    model = build_model(layers)
    fused = ""
    if scheme != "bf16":
        fused = f" fused MLPs {len(quantize(model, scheme, progress=False, fuse_mlp=fuse).fused_mlps)}"
    compile_decoder_layers(model)
    decode, prefill = measure(model)
    del model
    torch.cuda.empty_cache()
    return timing_line(f"{scheme:16}{fused:15}", decode, prefill)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--schemes", default="fp8_per_channel,int8_per_channel")
    p.add_argument("--layers", type=int, default=None)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--no-kernels", action="store_true")
    a = p.parse_args()
    if not a.no_kernels:
        kernels()
    for _ in range(a.repeats):
        print(timed("bf16", None, a.layers), flush=True)
        for s in a.schemes.split(","):
            for fuse in (False, True):
                print(timed(s, fuse, a.layers), flush=True)


if __name__ == "__main__":
    main()
