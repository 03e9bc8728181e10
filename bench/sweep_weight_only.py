"""Sweep decode configs of the weight-only GEMM (W4A16 NVFP4/MXFP4) against bf16 and the byte floor.

    PYTHONPATH=. python3 bench/sweep_weight_only.py [OUT.json]

CUDA-graph replays, weights rotating beyond L2, M = 16 (M = 1 runs on the e2m1 GEMV:
`bench/sweep_gemv.py`; `h200_issue4_sweep_weight_only.*` also hold M = 1 rows of the GEMV
branch the MMA kernel had before it). Prints, per shape/M/format, bf16,
the 4-bit byte floor (packed weight + scales at the measured copy bandwidth), the shipped default
config and the best swept one; OUT.json gets every timing.
"""
import itertools
import json
import sys

import torch

from qlinear.bench import ROTATE_BYTES, graph_median_us, measure_ceilings
from qlinear.formats import quantize
from qlinear.kernels import Dispatch, TritonW4A16Kernel
from qlinear.kernels.triton.dequant_configs import fit_block_k, pick_dequant_config
from qlinear.kernels.triton.dequant_gemm import DequantConfig, dequant_gemm
from qlinear.layers import QuantizedLinear
from qlinear.schemes import SCHEMES

SHAPES = [(4096, 4096), (14336, 4096), (4096, 14336), (28672, 4096)]


def configs(k, m):
    for bn, bk, split in itertools.product((64, 128), (256, 512), (1, 2, 4, 8)):
        if bn == 128 and bk == 512:
            continue
        yield fit_block_k(DequantConfig(bn, 16, bk, split_k=split, num_warps=4, num_stages=2), k)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else None
    ceil = measure_ceilings()
    print(f"copy {ceil.copy_bytes_per_s / 1e12:.2f} TB/s", flush=True)
    results = []
    torch.manual_seed(0)
    for n, k in SHAPES:
        w = torch.randn(n, k, device="cuda", dtype=torch.bfloat16)
        copies = max(2, ROTATE_BYTES // (n * k // 2) + 1)
        bf16_copies = max(2, ROTATE_BYTES // (2 * n * k) + 1)
        bf16_ws = [w * (1 + i / 64) for i in range(bf16_copies)]
        for m in (16,):
            x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
            it = itertools.count()
            bf16 = graph_median_us(lambda: x @ bf16_ws[next(it) % bf16_copies].t())
            for name in ("nvfp4_a16", "mxfp4_a16"):
                scheme = SCHEMES[name]
                layers = [QuantizedLinear(quantize(w * (1 + i / 64), scheme.weight), None, scheme,
                                          Dispatch.single(TritonW4A16Kernel), "sweep") for i in range(copies)]
                nbytes = sum(t.numel() * t.element_size() for t in (layers[0].weight, layers[0].weight_scale))
                floor = 1e6 * (nbytes + m * k * 2 + m * n * 2) / ceil.copy_bytes_per_s

                def run(cfg):
                    lay = layers[next(it) % copies]
                    lo = lay.kernel.layout
                    return dequant_gemm(x, lay.weight, lay.weight_scale, lo.post_scale, wfmt=lo.wfmt,
                                        group=lo.group, config=cfg, scale_bias=lo.scale_bias)

                default = pick_dequant_config(m, n, k, "e2m1")
                timed = {}
                for cfg in [default, *configs(k, m)]:
                    if cfg.key() in timed:
                        continue
                    try:
                        timed[cfg.key()] = graph_median_us(lambda cfg=cfg: run(cfg), rep_ms=60)
                    except Exception as err:  # a config that does not compile or fit is reported
                        print(f"  {name} {n}x{k} M={m} {cfg.key()}: {type(err).__name__} {str(err)[:120]}")
                best = min(timed, key=timed.get)
                d = timed[default.key()]
                print(f"{name:10} {n:>6}x{k:<6} M={m:<3} bf16 {bf16:6.1f} floor {floor:5.1f} | default "
                      f"{default.key():22} {d:6.1f} us {bf16 / d:4.2f}x bf16 {100 * floor / d:3.0f}% | best "
                      f"{best:22} {timed[best]:6.1f} us {bf16 / timed[best]:4.2f}x {100 * floor / timed[best]:3.0f}%",
                      flush=True)
                results.append({"scheme": name, "n": n, "k": k, "m": m, "bf16_us": bf16, "floor_us": floor,
                                "default": default.key(), "timings": timed})
                del layers
    if out:
        with open(out, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
