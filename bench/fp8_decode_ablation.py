"""Where per-channel FP8 decode's time goes at one token (GPU): the shipped layer (per-token
quantization, then the swapped Triton GEMM launched with PDL) against the same with one part
taken out, beside a pure read of the weight in the GEMM's own tiling and cuBLAS FP8 tensorwise.

    PYTHONPATH=. python3 bench/fp8_decode_ablation.py [--shapes 4096x4096,...]

Variants: PDL off (``QLINEAR_PDL=0``); the GEMM alone on a token quantized beforehand
(``apply_quantized``); that without fp32 promotion (``PROMOTE_EVERY = None``: e4m3 products summed
on the tensor cores alone, as before the fifth session); that without the split-K reduction
(``ABLATE_SPLIT_REDUCTION``, an experiment-only switch: the slices store unreduced). Times are
CUDA-graph replay medians over weight copies rotated beyond L2.
"""
from __future__ import annotations

import argparse
import os

import torch

from qlinear.bench import _copies, _rotating, graph_median_us, measure_ceilings
from qlinear.formats import quantize
from qlinear.kernels import Dispatch
from qlinear.kernels.triton import scaled_gemm as sg
from qlinear.kernels.triton.act_quant import quantize_per_token
from qlinear.kernels.triton_w8a8 import TritonFp8RowwiseKernel
from qlinear.layers import QuantizedLinear
from qlinear.schemes import SCHEMES

from read_pattern_probe import read

SHAPES = "4096x4096,14336x4096,4096x14336,28672x4096,7168x16384"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", default=SHAPES)
    args = ap.parse_args()
    ceil = measure_ceilings()
    print(f"copy {ceil.copy_bytes_per_s / 1e12:.2f} TB/s", flush=True)
    scheme = SCHEMES["fp8_per_channel"]
    for shape in args.shapes.split(","):
        n, k = (int(v) for v in shape.split("x"))
        copies = _copies(n * k)
        gen = torch.Generator(device="cuda").manual_seed(n + k)
        layers = [QuantizedLinear(quantize(torch.randn(n, k, device="cuda", generator=gen, dtype=torch.bfloat16),
                                           scheme.weight), None, scheme, Dispatch.single(TritonFp8RowwiseKernel),
                                  "ablation") for _ in range(copies)]
        kernel = layers[0].kernel
        cfg, _ = kernel.config_for(1)
        x = torch.randn(1, k, device="cuda", dtype=torch.bfloat16)
        q, s = quantize_per_token(x)
        floor = 1e6 * n * k / ceil.copy_bytes_per_s
        bf16_ws = [torch.randn(n, k, device="cuda", dtype=torch.bfloat16) for _ in range(_copies(2 * n * k))]
        bf16 = graph_median_us(_rotating([lambda w=w: x @ w.t() for w in bf16_ws]))
        del bf16_ws
        one = torch.ones((), device="cuda")
        tensorwise = graph_median_us(_rotating([lambda L=L: torch._scaled_mm(
            q, L.weight.t(), scale_a=one, scale_b=one, out_dtype=torch.bfloat16) for L in layers]))
        words = [L.weight.view(torch.int32) for L in layers]
        out = torch.empty(n * 64, device="cuda", dtype=torch.int32)
        bw = cfg.block_k // 4  # the GEMM's K-tile in int32 words
        pure = graph_median_us(_rotating([lambda w=w: read(w, None, out, n, k // 4, cfg.block_m, bw, cfg.split_k,
                                                           False, False, 4) for w in words]))
        print(f"{n}x{k} M=1 {cfg}: FP8 floor {floor:.1f} us; bf16 {bf16:.1f}; cuBLAS FP8 tensorwise, no "
              f"quantization {tensorwise:.1f}; pure read in the GEMM's tiling ({cfg.block_m} rows x "
              f"{cfg.block_k} B, split {cfg.split_k}) {pure:.1f} us", flush=True)

        def layer_call(layers=layers, x=x):
            return [lambda L=L: L(x) for L in layers]

        def gemm_alone(layers=layers, kernel=kernel, q=q, s=s):
            return [lambda L=L: kernel.apply_quantized(L, q, s, None, torch.bfloat16) for L in layers]

        variants = {"shipped layer (quantization + GEMM, PDL)": (layer_call, {}, {}),
                    "layer, PDL off": (layer_call, {"QLINEAR_PDL": "0"}, {}),
                    "GEMM alone (token quantized beforehand)": (gemm_alone, {}, {}),
                    "GEMM alone, no fp32 promotion": (gemm_alone, {}, {"PROMOTE_EVERY": None}),
                    "GEMM alone, no split-K reduction": (gemm_alone, {}, {"ABLATE_SPLIT_REDUCTION": True}),
                    "GEMM alone, neither": (gemm_alone, {}, {"PROMOTE_EVERY": None, "ABLATE_SPLIT_REDUCTION": True})}
        times = {label: [] for label in variants}
        for _ in range(2):  # alternating, so drift falls on every variant alike
            for label, (make, env, module) in variants.items():
                saved_env = {key: os.environ.get(key) for key in env}
                saved_module = {key: getattr(sg, key) for key in module}
                os.environ.update(env)
                for key, value in module.items():
                    setattr(sg, key, value)
                try:
                    times[label].append(graph_median_us(_rotating(make())))
                finally:
                    for key, value in saved_env.items():
                        os.environ.pop(key) if value is None else os.environ.__setitem__(key, value)
                    for key, value in saved_module.items():
                        setattr(sg, key, value)
        for label, us in times.items():
            print(f"  {label:44} {us[0]:6.1f} {us[1]:6.1f} us  {100 * floor / min(us):5.1f}% of floor  "
                  f"{bf16 / min(us):4.2f}x bf16", flush=True)
        del layers, words, variants
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
