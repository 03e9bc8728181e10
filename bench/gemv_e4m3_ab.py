"""The e4m3 decode GEMV (M=1) at the shipped config against a few others, in one run (GPU):
``mxfp8_a16`` and ``fp8_a16`` on the issue's four shapes, bf16 ``torch.mm`` beside them.

    PYTHONPATH=. python3 bench/gemv_e4m3_ab.py [--configs n32w128s4,n32w64s4,...]

CUDA-graph replay medians over layer copies rotated beyond L2, two timings per config, alternating;
each config's output is checked against the shipped config's (mean |diff| / mean |ref|).
"""
from __future__ import annotations

import argparse
import dataclasses
import itertools

import torch

from qlinear.bench import _copies, _rotating, graph_median_us
from qlinear.formats import quantize
from qlinear.kernels import Dispatch, TritonW8A16Kernel
from qlinear.kernels.triton.dequant_configs import pick_gemv_config
from qlinear.kernels.triton.gemv import GemvConfig
from qlinear.layers import QuantizedLinear
from qlinear.schemes import SCHEMES

SHAPES = [(4096, 4096), (14336, 4096), (4096, 14336), (28672, 4096)]


def parse(key: str) -> GemvConfig:
    n, rest = key.removeprefix("n").split("w", 1)
    w, s = rest.split("s")
    return GemvConfig(int(n), int(w), int(s), num_warps=4, num_stages=3)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--configs", default="n32w128s4,n32w64s4,n32w128s2,n64w64s2,n64w32s4,n32w64s2")
    args = ap.parse_args()
    others = [parse(key) for key in args.configs.split(",")]
    for name, (n, k) in itertools.product(("mxfp8_a16", "fp8_a16"), SHAPES):
        scheme = SCHEMES[name]
        gen = torch.Generator(device="cuda").manual_seed(n + k)
        qw = quantize(torch.randn(n, k, device="cuda", generator=gen, dtype=torch.bfloat16), scheme.weight)
        layers = [QuantizedLinear(dataclasses.replace(qw, data=qw.data.clone(), scale=qw.scale.clone()), None, scheme,
                                  Dispatch.single(TritonW8A16Kernel), "ab") for _ in range(_copies(n * k))]
        x = torch.randn(1, k, device="cuda", dtype=torch.bfloat16)
        bf16_ws = [torch.randn(n, k, device="cuda", dtype=torch.bfloat16) for _ in range(_copies(2 * n * k))]
        bf16 = graph_median_us(_rotating([lambda w=w: x @ w.t() for w in bf16_ws]))
        del bf16_ws

        def run(cfg, layer):  # the layer's own one-token path, with its GEMV config replaced
            layer.kernel.gemv_config = cfg
            return layer(x)

        shipped = pick_gemv_config(n, k, layers[0].kernel.layout.wfmt)
        configs = {"shipped " + shipped.key(): shipped}
        configs.update({cfg.key(): cfg for cfg in others if cfg != shipped and (k // 4) % (cfg.block_w * cfg.split_k) == 0})
        ref = run(shipped, layers[0]).float()
        times = {label: [] for label in configs}
        for _ in range(2):
            for label, cfg in configs.items():
                times[label].append(graph_median_us(_rotating([lambda L=L, c=cfg: run(c, L) for L in layers])))
        for label, cfg in configs.items():
            diff = float((run(cfg, layers[0]).float() - ref).abs().mean() / ref.abs().mean())
            best = min(times[label])
            print(f"{name:10} {n:6}x{k:<6} {label:32} {times[label][0]:6.1f} {times[label][1]:6.1f} us  "
                  f"{bf16 / best:5.2f}x bf16 ({bf16:5.1f})  diff {diff:.1e}", flush=True)
        del layers
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
