"""Sweep the Gluon e2m1 decode GEMM (qlinear/kernels/triton/e2m1_mma.py) against bf16 torch.mm and
the Triton W4A16 kernels, in one run, on the issue's decode shapes (GPU).

    PYTHONPATH=. python3 bench/e2m1_mma_sweep.py [--quick] [--shapes NxK,...] [--m 1,16]

Every time is a CUDA-graph replay median (triton.testing.do_bench_cudagraph) over weight copies
rotated beyond L2, as `qlinear bench` times decode. "%floor" is the NVFP4/MXFP4 bytes as stored
(packed codes + scales) at the copy bandwidth measured in the same run.
"""
from __future__ import annotations

import argparse
import dataclasses
import itertools

import torch

from qlinear.bench import _copies, _rotating, graph_median_us, measure_ceilings
from qlinear.formats import quantize
from qlinear.kernels import Dispatch, GluonW4A16Kernel, TritonW4A16Kernel
from qlinear.kernels.triton.e2m1_mma import E2m1MmaConfig, e2m1_mma, fits_shared_memory, pick_e2m1_mma_config
from qlinear.layers import QuantizedLinear
from qlinear.schemes import SCHEMES

ISSUE_SHAPES = [(4096, 4096), (14336, 4096), (4096, 14336), (28672, 4096)]


def weight_copies(scheme, n, k):
    """Distinct quantized copies of one random weight, enough to stream more than L2 per round."""
    gen = torch.Generator(device="cuda").manual_seed(n + k)
    qw = quantize(torch.randn(n, k, device="cuda", generator=gen, dtype=torch.bfloat16), scheme.weight)
    return [dataclasses.replace(qw, data=qw.data.clone(), scale=qw.scale.clone()) for _ in range(_copies(n * k // 2))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="default configs only")
    ap.add_argument("--shapes", default=",".join(f"{n}x{k}" for n, k in ISSUE_SHAPES))
    ap.add_argument("--m", default="1,16,64")
    ap.add_argument("--schemes", default="nvfp4_a16,mxfp4_a16")
    args = ap.parse_args()
    ceil = measure_ceilings()
    print(f"copy {ceil.copy_bytes_per_s / 1e12:.2f} TB/s, bf16 {ceil.bf16_flops_per_s / 1e12:.0f} TFLOPS", flush=True)
    shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",")]
    for name, (n, k) in itertools.product(args.schemes.split(","), shapes):
        scheme = SCHEMES[name]
        copies = weight_copies(scheme, n, k)
        glu = [QuantizedLinear(qw, None, scheme, Dispatch.single(GluonW4A16Kernel), "sweep") for qw in copies]
        tri = [QuantizedLinear(qw, None, scheme, Dispatch.single(TritonW4A16Kernel), "sweep") for qw in copies]
        group = scheme.weight.group_size
        stored = n * k // 2 + n * k // group
        floor_us = 1e6 * stored / ceil.copy_bytes_per_s
        ws = [torch.randn(n, k, device="cuda", dtype=torch.bfloat16) for _ in range(_copies(2 * n * k))]
        for m in (int(v) for v in args.m.split(",")):
            x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
            bf16 = graph_median_us(_rotating([lambda w=w: x @ w.t() for w in ws]))

            def report(label, us):
                print(f"{name:10} {n:6}x{k:<6} M={m:<3} {label:34} {us:8.1f} us  {bf16 / us:5.2f}x bf16  "
                      f"{100 * floor_us / us:5.1f}% of 4-bit floor", flush=True)

            report("bf16 torch.mm", bf16)
            report("triton_w4a16", graph_median_us(_rotating([lambda lay=lay: lay(x) for lay in tri])))
            report(f"gluon_w4a16 {pick_e2m1_mma_config(n, k, m).key()}",
                   graph_median_us(_rotating([lambda lay=lay: lay(x) for lay in glu])))
            if args.quick or name != "nvfp4_a16":
                continue
            lay0 = glu[0].kernel.layout
            chunks = 2 if m <= 16 else 1
            grid = [E2m1MmaConfig(w, chunks, s) for w, s in itertools.product((4, 8), (1, 2, 4, 8, 16))]
            for cfg in grid:
                if k % (128 * cfg.chunks) or not fits_shared_memory(k, m, cfg):
                    continue
                fns = [lambda lay=lay: e2m1_mma(x, lay.weight, lay.weight_scale, lay0.post_scale,
                                                mx=scheme.weight.scale_dtype == "e8m0", config=cfg,
                                                scale_bias=lay0.scale_bias) for lay in glu]
                report(cfg.key(), graph_median_us(_rotating(fns)))
        del glu, tri, ws, copies
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
