"""The e2m1 decode GEMM with f16 MMAs and fp32 group scales (qlinear/kernels/triton/e2m1_fp8_mma.py)
against the shipped Gluon kernel (e2m1_mma) and bf16 torch.mm, in one run (GPU).

    PYTHONPATH=. python3 bench/e2m1_f16_probe.py [--check-only] [--m 1,2,4,8]

First a correctness pass (float64 dequantize-then-matmul reference rounded to bf16 as the outputs are, aligned and ragged shapes,
mean |out - ref| / mean |ref|), then CUDA-graph replay medians over weight copies rotated beyond L2.
"""
from __future__ import annotations

import argparse
import dataclasses
import itertools

import torch

from qlinear.bench import _rotating, graph_median_us, measure_ceilings
from qlinear.formats import dequantize
from qlinear.kernels import Dispatch, GluonW4A16Kernel
from qlinear.kernels.triton.e2m1_fp8_mma import (SHARED_MEMORY_BYTES, E2m1Fp8Config, e2m1_fp8_mma,
                                                  pick_e2m1_fp8_config, shared_memory_bytes)
from qlinear.layers import QuantizedLinear
from qlinear.schemes import SCHEMES

from e2m1_mma_sweep import ISSUE_SHAPES, weight_copies


def run_new(lay, x, bias=None, config=None):
    lo = lay.kernel.layout
    n, k = lay.weight.shape[0], lay.weight.shape[1] * 2
    mx = lay.scheme.weight.scale_dtype == "e8m0"
    config = config or pick_e2m1_fp8_config(n, k, x.shape[0])
    return e2m1_fp8_mma(x, lay.weight, lay.weight_scale, lo.post_scale, mx=mx, scale_bias=lo.scale_bias,
                        config=config, bias=bias)


def check() -> bool:
    ok = True
    for name, (n, k), m in itertools.product(("nvfp4_a16", "mxfp4_a16"), [(256, 1024), (192, 576), (1536, 576),
                                                                           (576, 1536), (4096, 4096)], (1, 2, 3, 4, 7, 8)):
        scheme = SCHEMES[name]
        gen = torch.Generator(device="cuda").manual_seed(n * 7 + k + m)
        (qw,) = weight_copies(scheme, n, k)[:1]
        lay = QuantizedLinear(qw, None, scheme, Dispatch.single(GluonW4A16Kernel), "probe")
        x = torch.randn(m, k, device="cuda", generator=gen, dtype=torch.bfloat16)
        x[:, ::7] *= 1e-3  # a spread of magnitudes within each token
        bias = torch.randn(n, device="cuda", generator=gen, dtype=torch.bfloat16)
        ref = x.double() @ dequantize(qw).double().t() + bias.double()
        out = run_new(lay, x, bias).double()
        config = pick_e2m1_fp8_config(n, k, m)
        for ring in (2, 4):
            other = run_new(lay, x, bias, config=dataclasses.replace(config, ring=ring)).double()
            assert torch.equal(other, out), f"ring {ring} differs from the register path"

        old = lay(x).double() + bias.double()
        ref = ref.to(torch.bfloat16).double()  # both kernels round their output to bf16
        err = ((out - ref).abs().mean() / ref.abs().mean()).item()
        err_old = ((old - ref).abs().mean() / ref.abs().mean()).item()
        good = err < 1e-3
        ok &= good
        print(f"check {name:10} {n:5}x{k:<5} M={m}: rel err {err:.2e} (shipped {err_old:.2e}) "
              f"{'ok' if good else 'FAIL'}", flush=True)
    return ok


def bench(ms, sweep=False) -> None:
    ceil = measure_ceilings()
    print(f"copy {ceil.copy_bytes_per_s / 1e12:.2f} TB/s", flush=True)
    for name, (n, k) in itertools.product(("nvfp4_a16", "mxfp4_a16"), ISSUE_SHAPES):
        scheme = SCHEMES[name]
        copies = weight_copies(scheme, n, k)
        lays = [QuantizedLinear(qw, None, scheme, Dispatch.single(GluonW4A16Kernel), "probe") for qw in copies]
        floor_us = 1e6 * (n * k // 2 + n * k // scheme.weight.group_size) / ceil.copy_bytes_per_s
        ws = [torch.randn(n, k, device="cuda", dtype=torch.bfloat16) for _ in range(len(copies) * 2)]
        for m in ms:
            x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
            bf16 = graph_median_us(_rotating([lambda w=w: x @ w.t() for w in ws]))
            old = graph_median_us(_rotating([lambda lay=lay: lay(x) for lay in lays]))
            new = graph_median_us(_rotating([lambda lay=lay: run_new(lay, x) for lay in lays]))
            if sweep and m == 1:
                for split, early, ring in itertools.product((2, 4, 8), (False, True), (0, 2, 4)):
                    cfg = E2m1Fp8Config(4, 2, split, 1, early, ring)
                    if shared_memory_bytes(k, m, cfg) > SHARED_MEMORY_BYTES or k // split < 256:
                        continue
                    us = graph_median_us(_rotating([lambda lay=lay: run_new(lay, x, config=cfg) for lay in lays]))
                    print(f"  sweep {name:10} {n:6}x{k:<6} M=1 {cfg.key():22} {us:6.1f} us "
                          f"({100 * floor_us / us:4.1f}%)", flush=True)
            print(f"{name:10} {n:6}x{k:<6} M={m:<2} bf16 {bf16:6.1f}  gluon_w4a16 {old:6.1f} ({bf16 / old:4.2f}x, "
                  f"{100 * floor_us / old:4.1f}%)  f16-mma {new:6.1f} ({bf16 / new:4.2f}x, {100 * floor_us / new:4.1f}%)"
                  f"  {pick_e2m1_fp8_config(n, k, m).key()}", flush=True)
        del lays, copies, ws
        torch.cuda.empty_cache()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--check-only", action="store_true")
    ap.add_argument("--sweep", action="store_true", help="also sweep chunks and split-K at M = 1")
    ap.add_argument("--m", default="1,2,4")
    args = ap.parse_args()
    if args.sweep or (check() and not args.check_only):
        bench([int(v) for v in args.m.split(",")], sweep=args.sweep)
