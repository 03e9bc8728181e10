"""The Gluon e4m3 decode GEMM (qlinear/kernels/triton/e4m3_mma.py) on the GPU: checked against the
float64 reference, then timed against bf16 torch.mm and triton_w8a16 in one run.

    PYTHONPATH=. python3 bench/e4m3_mma_probe.py [--sweep] [--shapes NxK,...] [--m 1,4,16]

Times are CUDA-graph replay medians over weight copies rotated beyond L2, as `qlinear bench` times
decode. "%floor" is the weight as stored (e4m3 bytes + e8m0 scales) at the copy bandwidth measured
in the same run.
"""
from __future__ import annotations

import argparse
import dataclasses
import itertools

import torch

from qlinear.bench import _copies, _rotating, graph_median_us, measure_ceilings
from qlinear.formats import dequantize, quantize
from qlinear.kernels import Dispatch, TritonW8A16Kernel
from qlinear.kernels.triton.e2m1_mma import E2m1MmaConfig
from qlinear.kernels.triton.e4m3_mma import e4m3_mma, fits_shared_memory, pick_e4m3_mma_config
from qlinear.layers import QuantizedLinear
from qlinear.schemes import SCHEMES

ISSUE_SHAPES = [(4096, 4096), (14336, 4096), (4096, 14336), (28672, 4096)]


def _layer(qw, scheme):
    return QuantizedLinear(qw, None, scheme, Dispatch.single(TritonW8A16Kernel), "probe")


def _call(layer, x, cfg, bias=None):
    lay = layer.kernel.layout
    if layer.scheme.weight.granularity == "channel":
        return e4m3_mma(x, layer.weight, lay.post_scale, config=cfg, channel_scale=layer.weight_scale, bias=bias)
    return e4m3_mma(x, layer.weight, lay.post_scale, config=cfg, mx_scales=layer.weight_scale,
                    scale_bias=lay.scale_bias, bias=bias)


def check() -> None:
    """Against float64 dequantize-then-matmul: aligned and ragged shapes, M = 1..64, both scale kinds,
    configs with split-K and masked last steps, bias; widened MX scale range."""
    worst = 0.0
    cases = 0
    for name, (n, k), m in itertools.product(("mxfp8_a16", "fp8_a16"),
                                             [(4096, 4096), (576, 1536), (192, 576), (100, 224), (1000, 14336)],
                                             (1, 7, 16, 33, 64)):
        scheme = SCHEMES[name]
        g = torch.Generator(device="cuda").manual_seed(n * 7 + k + m)
        w = torch.randn(n, k, device="cuda", generator=g) * torch.exp2(torch.randint(-20, 20, (n, 1), device="cuda",
                                                                                      generator=g).float())
        qw = quantize(w, scheme.weight)
        layer = _layer(qw, scheme)
        x = torch.randn(m, k, device="cuda", generator=g).bfloat16().float()
        bias = torch.randn(n, device="cuda", generator=g)
        ref = x.double() @ dequantize(qw, torch.float64).t() + bias.double()
        configs = {pick_e4m3_mma_config(n, k, m), E2m1MmaConfig(4, 1, 3), E2m1MmaConfig(8, 2, 1),
                   E2m1MmaConfig(4, 4, 2)}
        for cfg in configs:
            if k % (64 * cfg.chunks) and cfg.chunks > 1 or not fits_shared_memory(k, m, cfg):
                continue
            y = _call(layer, x, cfg, bias).double()
            err = float(((y - ref).abs() / (ref.abs() + ref.abs().mean())).max())
            worst = max(worst, err)
            cases += 1
            if not err < 1e-5:
                print(f"FAIL {name} {n}x{k} M={m} {cfg.key()}: max error / (|ref| + mean|ref|) {err:.2e}", flush=True)
    print(f"check: {cases} cases, worst max |y - ref| / (|ref| + mean |ref|) = {worst:.2e}", flush=True)


def weight_copies(scheme, n, k):
    gen = torch.Generator(device="cuda").manual_seed(n + k)
    qw = quantize(torch.randn(n, k, device="cuda", generator=gen, dtype=torch.bfloat16), scheme.weight)
    return [dataclasses.replace(qw, data=qw.data.clone(), scale=qw.scale.clone()) for _ in range(_copies(n * k))]


def bench(shapes, ms, schemes, sweep: bool) -> None:
    ceil = measure_ceilings()
    print(f"copy {ceil.copy_bytes_per_s / 1e12:.2f} TB/s", flush=True)
    for name, (n, k) in itertools.product(schemes, shapes):
        scheme = SCHEMES[name]
        layers = [_layer(qw, scheme) for qw in weight_copies(scheme, n, k)]
        stored = n * k + (n * k // 32 if name.startswith("mx") else 4 * n)
        floor_us = 1e6 * stored / ceil.copy_bytes_per_s
        ws = [torch.randn(n, k, device="cuda", dtype=torch.bfloat16) for _ in range(_copies(2 * n * k))]
        for m in ms:
            x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
            bf16 = graph_median_us(_rotating([lambda w=w: x @ w.t() for w in ws]))

            def report(label, us):
                print(f"{name:10} {n:6}x{k:<6} M={m:<3} {label:28} {us:8.1f} us  {bf16 / us:5.2f}x bf16  "
                      f"{100 * floor_us / us:5.1f}% of floor", flush=True)

            report("bf16 torch.mm", bf16)
            report("triton_w8a16", graph_median_us(_rotating([lambda lay=lay: lay(x) for lay in layers])))
            picked = pick_e4m3_mma_config(n, k, m)
            report(f"e4m3_mma {picked.key()}",
                   graph_median_us(_rotating([lambda lay=lay: _call(lay, x, picked) for lay in layers])))
            if not sweep:
                continue
            for cfg in (E2m1MmaConfig(w, c, s) for w, c, s in itertools.product((4, 8), (1, 2, 4), (1, 2, 4, 8, 16))):
                if cfg == picked or k % (64 * cfg.chunks) or not fits_shared_memory(k, m, cfg):
                    continue
                report(cfg.key(), graph_median_us(_rotating([lambda lay=lay: _call(lay, x, cfg) for lay in layers])))
        del layers, ws
        torch.cuda.empty_cache()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sweep", action="store_true")
    ap.add_argument("--no-check", action="store_true")
    ap.add_argument("--shapes", default=",".join(f"{n}x{k}" for n, k in ISSUE_SHAPES))
    ap.add_argument("--m", default="1,4,16")
    ap.add_argument("--schemes", default="mxfp8_a16,fp8_a16")
    args = ap.parse_args()
    if not args.no_check:
        check()
    shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",")]
    bench(shapes, [int(v) for v in args.m.split(",")], args.schemes.split(","), args.sweep)


if __name__ == "__main__":
    main()
