"""Sweep configs of the weight-only decode GEMV (M=1) against bf16, the MMA kernel and the byte floor.

    PYTHONPATH=. python3 bench/sweep_gemv.py [OUT.json] [--quick] [--schemes nvfp4_a16,mxfp4_a16]

Schemes: e2m1 (nvfp4_a16, mxfp4_a16; the default) or e4m3 (mxfp8_a16, fp8_a16) weights.
CUDA-graph replays, weights rotating beyond L2. Prints per shape and format: bf16, the 4-bit byte
floor (packed weight + scales + x + y at the measured copy bandwidth), the bf16-MMA kernel at M=1
(`dequant_gemm`; the recorded `h200_issue4_gemv_sweep.json` has, as `old_gemv`, the GEMV branch
that kernel had before this one replaced it), the shipped GEMV config and the best swept one, each checked
against a float64 reference first (mean |err| / mean |ref|).
"""
import itertools
import json
import sys

import torch

from qlinear.bench import ROTATE_BYTES, graph_median_us, measure_ceilings
from qlinear.formats import dequantize, quantize
from qlinear.kernels import Dispatch, TritonW4A16Kernel, TritonW8A16Kernel
from qlinear.kernels.triton.dequant_configs import pick_dequant_config, pick_gemv_config
from qlinear.kernels.triton.dequant_gemm import dequant_gemm
from qlinear.kernels.triton.gemv import GemvConfig, weight_only_gemv
from qlinear.layers import QuantizedLinear
from qlinear.schemes import SCHEMES

SHAPES = [(4096, 4096), (14336, 4096), (4096, 14336), (28672, 4096)]


def configs(quick: bool):
    grid = itertools.product((32, 64, 128, 256), (16, 32, 64, 128), (1, 2, 4), (4, 8))
    for bn, bw, split, warps in grid:
        if bn * bw > 2048 * warps or bn * bw < 256 * warps or (quick and warps == 8):
            continue
        yield GemvConfig(bn, bw, split, num_warps=warps, num_stages=3)


def main():
    argv = sys.argv[1:]
    names = ["nvfp4_a16", "mxfp4_a16"]
    if "--schemes" in argv:
        at = argv.index("--schemes")
        names = argv[at + 1].split(",")
        del argv[at:at + 2]
    args = [a for a in argv if not a.startswith("--")]
    quick = "--quick" in argv
    out = args[0] if args else None
    ceil = measure_ceilings()
    print(f"{torch.cuda.get_device_name()}; torch {torch.__version__}; copy {ceil.copy_bytes_per_s / 1e12:.2f} TB/s",
          flush=True)
    results = []
    torch.manual_seed(0)
    for n, k in SHAPES:
        w = torch.randn(n, k, device="cuda", dtype=torch.bfloat16) * 0.02
        copies = max(2, ROTATE_BYTES // (n * k // 2) + 1)  # enough for the 4-bit weights; more than e4m3 needs
        bf16_copies = max(2, ROTATE_BYTES // (2 * n * k) + 1)
        bf16_ws = [w * (1 + i / 64) for i in range(bf16_copies)]
        x = torch.randn(1, k, device="cuda", dtype=torch.bfloat16)
        it = itertools.count()
        bf16 = graph_median_us(lambda: x @ bf16_ws[next(it) % bf16_copies].t())
        for name in names:
            scheme = SCHEMES[name]
            e2m1 = scheme.weight.dtype == "e2m1"
            kernel = TritonW4A16Kernel if e2m1 else TritonW8A16Kernel
            layers = [QuantizedLinear(quantize(w * (1 + i / 64), scheme.weight), None, scheme,
                                      Dispatch.single(kernel), "sweep") for i in range(copies)]
            lay = layers[0].kernel.layout
            channel = scheme.weight.granularity == "channel"
            ref = (x.double() @ dequantize(layers[0].quantized_weight(), torch.float64).t()).float()
            nbytes = sum(t.numel() * t.element_size() for t in (layers[0].weight, layers[0].weight_scale))
            floor = 1e6 * (nbytes + k * 2 + n * 2) / ceil.copy_bytes_per_s

            def scales(i):  # (group scales, per-channel scales) as the kernels take them
                return (None, layers[i].weight_scale) if channel else (layers[i].weight_scale, None)

            def gemv(cfg):
                return lambda i: weight_only_gemv(x, layers[i].weight, scales(i)[0], lay.post_scale, wfmt=lay.wfmt,
                                                  scale_bias=lay.scale_bias, config=cfg, channel_scale=scales(i)[1])

            def mma_gemv(i):
                return dequant_gemm(x, layers[i].weight, scales(i)[0], lay.post_scale, wfmt=lay.wfmt, group=lay.group,
                                    config=pick_dequant_config(16, n, k, scheme.weight.dtype),
                                    scale_bias=lay.scale_bias, channel_scale=scales(i)[1])

            def timed(fn):
                err = float((fn(0).float() - ref).abs().mean() / ref.abs().mean())
                it = itertools.count()
                return graph_median_us(lambda: fn(next(it) % copies)), err

            old, old_err = timed(mma_gemv)
            default_cfg = pick_gemv_config(n, k, lay.wfmt)
            default, default_err = timed(gemv(default_cfg))
            row = dict(n=n, k=k, scheme=name, bf16_us=bf16, floor_us=floor, old_gemv_us=old, old_err=old_err,
                       default=default_cfg.key(), default_us=default, default_err=default_err, sweep={})
            for cfg in configs(quick):
                try:
                    us, err = timed(gemv(cfg))
                except Exception as exc:  # noqa: BLE001 - a config that does not compile is reported, not fatal
                    row["sweep"][cfg.key()] = str(exc)[:80]
                    continue
                row["sweep"][cfg.key()] = [us, err]
            timings = {key: v for key, v in row["sweep"].items() if isinstance(v, list)}
            best = min(timings, key=lambda key: timings[key][0])
            print(f"{n}x{k} {name}: bf16 {bf16:.1f} us, floor {floor:.1f} us | MMA kernel {old:.1f} us "
                  f"({bf16 / old:.2f}x bf16, err {old_err:.1e}) | default {default_cfg.key()} {default:.1f} us "
                  f"({bf16 / default:.2f}x bf16, {floor / default:.0%} of floor, err {default_err:.1e}) | best {best} "
                  f"{timings[best][0]:.1f} us ({bf16 / timings[best][0]:.2f}x, {floor / timings[best][0]:.0%}, "
                  f"err {timings[best][1]:.1e})", flush=True)
            results.append(row)
    if out:
        with open(out, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
