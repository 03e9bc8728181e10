"""EXPERIMENT: gluon_w4a16's decode GEMM with the weight streamed by TMA into a shared-memory ring
(E2m1MmaConfig.ring) against its shipped register path, in one run (GPU).

    PYTHONPATH=. python3 bench/e2m1_ring_probe.py

First the ring's outputs against the register path's (same split: must be bitwise equal), on
aligned and ragged shapes; then CUDA-graph replay medians over weight copies rotated beyond L2.
"""
from __future__ import annotations

import dataclasses
import itertools

import torch

from qlinear.bench import _rotating, graph_median_us, measure_ceilings
from qlinear.kernels import Dispatch, GluonW4A16Kernel
from qlinear.kernels.triton.e2m1_mma import e2m1_mma, pick_e2m1_mma_config
from qlinear.layers import QuantizedLinear
from qlinear.schemes import SCHEMES

from e2m1_mma_sweep import ISSUE_SHAPES, weight_copies


def run(lay, x, config):
    lo = lay.kernel.layout
    return e2m1_mma(x, lay.weight, lay.weight_scale, lo.post_scale, mx=lay.scheme.weight.scale_dtype == "e8m0",
                    config=config, scale_bias=lo.scale_bias)


def check() -> bool:
    ok = True
    for name, (n, k), m in itertools.product(("nvfp4_a16", "mxfp4_a16"), [(256, 1024), (192, 576), (1536, 576),
                                                                           (4096, 4096)], (1, 7, 16, 64)):
        scheme = SCHEMES[name]
        (qw,) = weight_copies(scheme, n, k)[:1]
        lay = QuantizedLinear(qw, None, scheme, Dispatch.single(GluonW4A16Kernel), "probe")
        x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
        config = pick_e2m1_mma_config(n, k, m)
        base = run(lay, x, config)
        for ring in (2, 4, 8):
            same = torch.equal(run(lay, x, dataclasses.replace(config, ring=ring)), base)
            ok &= same
            if not same:
                print(f"check {name} {n}x{k} M={m} ring {ring}: DIFFERS", flush=True)
    print(f"check: {'all equal' if ok else 'FAILED'}", flush=True)
    return ok


def bench() -> None:
    ceil = measure_ceilings()
    print(f"copy {ceil.copy_bytes_per_s / 1e12:.2f} TB/s", flush=True)
    for name, (n, k) in itertools.product(("nvfp4_a16", "mxfp4_a16"), ISSUE_SHAPES):
        scheme = SCHEMES[name]
        copies = weight_copies(scheme, n, k)
        lays = [QuantizedLinear(qw, None, scheme, Dispatch.single(GluonW4A16Kernel), "probe") for qw in copies]
        floor_us = 1e6 * (n * k // 2 + n * k // scheme.weight.group_size) / ceil.copy_bytes_per_s
        for m in ((1, 16) if name == "nvfp4_a16" else (1,)):
            x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
            picked = pick_e2m1_mma_config(n, k, m)
            row = []
            for ring, split in itertools.product((0, 2, 4, 8), (picked.split_k, 2 * picked.split_k)):
                if ring == 0 and split != picked.split_k:
                    continue
                cfg = dataclasses.replace(picked, ring=ring, split_k=split)
                us = graph_median_us(_rotating([lambda lay=lay: run(lay, x, cfg) for lay in lays]))
                row.append(f"r{ring}s{split} {us:5.1f} ({100 * floor_us / us:2.0f}%)")
            print(f"{name:10} {n:6}x{k:<6} M={m:<2} " + "  ".join(row), flush=True)
        del lays, copies
        torch.cuda.empty_cache()


if __name__ == "__main__":
    if check():
        bench()
