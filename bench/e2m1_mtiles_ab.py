"""A/B in one run (GPU): the Gluon e2m1 decode GEMM with each warp computing 2 MMA row tiles that
share one shared-memory read of the activation (``E2m1MmaConfig.m_tiles``), against one tile per
warp (``one_row_tile_config``, the picker before m_tiles), on the issue's decode shapes; outputs
compared bitwise with the one-tile config's.

    PYTHONPATH=. python3 bench/e2m1_mtiles_ab.py --explore [--m 1,4,16]   # two-tile variants of it
    PYTHONPATH=. python3 bench/e2m1_mtiles_ab.py --m 9,16                  # the shipped picker against it

CUDA-graph replay medians over weight copies rotated beyond L2; two timings per config, alternating.
"""
from __future__ import annotations

import argparse
import dataclasses
import itertools

import torch

from qlinear.bench import _copies, _rotating, graph_median_us, measure_ceilings
from qlinear.formats import quantize
from qlinear.kernels import Dispatch, GluonW4A16Kernel
from qlinear.kernels.triton.e2m1_mma import e2m1_mma, fits_shared_memory, one_row_tile_config, pick_e2m1_mma_config
from qlinear.layers import QuantizedLinear
from qlinear.schemes import SCHEMES

ISSUE_SHAPES = [(4096, 4096), (14336, 4096), (4096, 14336), (28672, 4096)]


def variants(cfg):
    out = {"one tile": cfg}
    for chunks, split_mul in ((1, 1), (1, 2), (2, 1), (2, 2)):
        out[f"t2 c{chunks} s x{split_mul}"] = dataclasses.replace(cfg, m_tiles=2, chunks=chunks,
                                                                 split_k=cfg.split_k * split_mul)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--m", default="1,4,16")
    ap.add_argument("--explore", action="store_true", help="two-tile variants of the one-tile config")
    args = ap.parse_args()
    ceil = measure_ceilings()
    print(f"copy {ceil.copy_bytes_per_s / 1e12:.2f} TB/s", flush=True)
    for name, (n, k) in itertools.product(("nvfp4_a16", "mxfp4_a16"), ISSUE_SHAPES):
        scheme = SCHEMES[name]
        gen = torch.Generator(device="cuda").manual_seed(n + k)
        qw = quantize(torch.randn(n, k, device="cuda", generator=gen, dtype=torch.bfloat16), scheme.weight)
        layers = [QuantizedLinear(dataclasses.replace(qw, data=qw.data.clone(), scale=qw.scale.clone()), None, scheme,
                                  Dispatch.single(GluonW4A16Kernel), "ab") for _ in range(_copies(n * k // 2))]
        lay = layers[0].kernel.layout
        mx = scheme.weight.scale_dtype == "e8m0"
        floor = 1e6 * (n * k // 2 + n * k // scheme.weight.group_size) / ceil.copy_bytes_per_s
        bf16_ws = [torch.randn(n, k, device="cuda", dtype=torch.bfloat16) for _ in range(_copies(2 * n * k))]
        for m in (int(v) for v in args.m.split(",")):
            x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
            bf16 = graph_median_us(_rotating([lambda w=w: x @ w.t() for w in bf16_ws]))

            def run(cfg, layer):
                return e2m1_mma(x, layer.weight, layer.weight_scale, lay.post_scale, mx=mx, config=cfg,
                                scale_bias=lay.scale_bias)

            one = one_row_tile_config(n, k, m)
            configs = variants(one) if args.explore else {"one tile": one, "picked": pick_e2m1_mma_config(n, k, m)}
            configs = {label: cfg for label, cfg in configs.items()
                       if k % (128 * cfg.chunks) == 0 and fits_shared_memory(k, m, cfg)}
            expect = run(one, layers[0])
            times = {label: [] for label in configs}
            for _ in range(2):
                for label, cfg in configs.items():
                    times[label].append(graph_median_us(_rotating([lambda L=L, c=cfg: run(c, L) for L in layers])))
            for label, cfg in configs.items():
                best = min(times[label])
                same = torch.equal(run(cfg, layers[0]), expect)
                print(f"{name:10} {n:6}x{k:<6} M={m:<3} {label:14} {cfg.key():22} {times[label][0]:6.1f} "
                      f"{times[label][1]:6.1f} us  {bf16 / best:5.2f}x bf16 ({bf16:5.1f})  "
                      f"{100 * floor / best:5.1f}% of floor  bitwise = one tile: {same}", flush=True)
        del layers, bf16_ws
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
