"""Where the one-token e2m1 decode GEMM's time goes (GPU): the shipped kernel against copies of it
with one part taken out (``e2m1_mma(_ablate=bits)``, an experiment-only switch), beside a pure read
of the same bytes, NVFP4, M = 1, the issue's four shapes.

    PYTHONPATH=. python3 bench/e2m1_ablation_probe.py [--shapes 4096x14336,...]

bits: 1 no decode (the loaded words are moved into the MMA operand as they are), 2 no activation
staging (shared memory left as it is), 4 no split-K reduction (each slice stores its partials and
stops), 8 no weight loads after the first step (the words are xor-ed with the step, so the decode
stays in the loop); 16 is no ablation but a change: the first step's weight loads are issued before the
activation is staged. Outputs of ablated kernels are meaningless; times are CUDA-graph replay medians
over weight copies rotated beyond L2.
"""
from __future__ import annotations

import argparse
import dataclasses
import itertools

import torch

from qlinear.bench import _copies, _rotating, graph_median_us, measure_ceilings
from qlinear.formats import quantize
from qlinear.kernels import Dispatch, GluonW4A16Kernel
from qlinear.kernels.triton.e2m1_mma import e2m1_mma, pick_e2m1_mma_config
from qlinear.layers import QuantizedLinear
from qlinear.schemes import SCHEMES

from read_pattern_probe import read

VARIANTS = {"shipped": 0, "no decode": 1, "no staging": 2, "no split reduction": 4, "no loads": 8,
            "loads + MMA only": 1 | 2 | 4, "decode + MMA only": 2 | 4 | 8, "first loads before staging": 16}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", default="4096x4096,14336x4096,4096x14336,28672x4096")
    ap.add_argument("--once", action="store_true", help="launch each variant once, for Nsight Compute")
    ap.add_argument("--m", default="1")
    ap.add_argument("--variants", default=",".join(VARIANTS), help="labels of VARIANTS, comma-separated")
    ap.add_argument("--schemes", default="nvfp4_a16")
    args = ap.parse_args()
    ceil = measure_ceilings()
    print(f"copy {ceil.copy_bytes_per_s / 1e12:.2f} TB/s", flush=True)
    variants = {label: VARIANTS[label] for label in args.variants.split(",")}
    for name, shape, m in itertools.product(args.schemes.split(","), args.shapes.split(","),
                                            (int(v) for v in args.m.split(","))):
        scheme = SCHEMES[name]
        mx = scheme.weight.scale_dtype == "e8m0"
        n, k = (int(v) for v in shape.split("x"))
        qw = quantize(torch.randn(n, k, device="cuda", dtype=torch.bfloat16), scheme.weight)
        layers = [QuantizedLinear(dataclasses.replace(qw, data=qw.data.clone(), scale=qw.scale.clone()), None, scheme,
                                  Dispatch.single(GluonW4A16Kernel), "ablation") for _ in range(_copies(n * k // 2))]
        lay = layers[0].kernel.layout
        x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
        cfg = pick_e2m1_mma_config(n, k, m)
        floor = 1e6 * (n * k // 2 + n * k // scheme.weight.group_size) / ceil.copy_bytes_per_s
        print(f"{name} {n}x{k} M={m} {cfg.key()}: 4-bit floor {floor:.1f} us", flush=True)
        expect = e2m1_mma(x, layers[0].weight, layers[0].weight_scale, lay.post_scale, mx=mx, config=cfg,
                          scale_bias=lay.scale_bias)
        reads = m == 1  # the pure read beside one token
        ws = [torch.randint(-2**31, 2**31 - 1, (n, k // 8), device="cuda", dtype=torch.int32) for _ in layers * reads]
        ss = [torch.randint(-2**31, 2**31 - 1, (n, k // 64), device="cuda", dtype=torch.int32) for _ in layers * reads]
        out = torch.empty(n * 64, device="cuda", dtype=torch.int32)
        for r, bw in ((16, 64), (64, 32)) if reads else ():
            fns = [lambda w=w, s=s: read(w, s, out, n, k // 8, r, bw, 4, False, True, 4) for w, s in zip(ws, ss)]
            if args.once:
                fns[0]()
                continue
            us = graph_median_us(_rotating(fns))
            print(f"  pure read R={r} BW={bw}w split=4 {us:7.1f} us  {100 * floor / us:5.1f}% of floor", flush=True)
        fns = {label: [lambda L=L, b=bits: e2m1_mma(x, L.weight, L.weight_scale, lay.post_scale, mx=mx, config=cfg,
                                                   scale_bias=lay.scale_bias, _ablate=b) for L in layers]
               for label, bits in variants.items()}
        if args.once:
            for label, f in fns.items():
                f[0]()
                torch.cuda.synchronize()
                print(f"  launched {label} (ablate={variants[label]})", flush=True)
            continue
        times = {label: [] for label in fns}
        for _ in range(2):  # alternating, so drift falls on every variant alike
            for label, f in fns.items():
                times[label].append(graph_median_us(_rotating(f)))
        for label, us in times.items():
            same = torch.equal(fns[label][0](), expect)
            print(f"  {label:26} {us[0]:7.1f} {us[1]:7.1f} us  {100 * floor / min(us):5.1f}% of floor  "
                  f"bitwise = shipped: {same}", flush=True)
        del layers, ws, ss
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
