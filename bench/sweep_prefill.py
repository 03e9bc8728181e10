"""Sweep prefill (M=4096) launch configs of the Triton scaled GEMM; print and save the best per case.

    PYTHONPATH=. python3 bench/sweep_prefill.py OUT.json

Cases: block FP8 after the fused 1x128 quantization pass, per-token FP8 and INT8. Weights rotate
beyond L2. (Decode configs: bench/sweep_decode.py.)
"""
import itertools
import json
import sys

import torch

from qlinear.bench import median_us
from qlinear.formats import quantize
from qlinear.kernels.triton.act_quant import quantize_per_group, quantize_per_token
from qlinear.kernels.triton.scaled_gemm import GemmConfig, scaled_gemm
from qlinear.schemes import SCHEMES

SHAPES = [(4096, 4096), (14336, 4096), (4096, 14336), (28672, 4096), (7168, 16384)]


def prefill_configs():
    for bm, bn, warps, stages in [(128, 128, 8, 3), (128, 128, 8, 4), (128, 128, 4, 3), (128, 256, 8, 3),
                                  (64, 256, 4, 3), (256, 128, 8, 3)]:
        yield GemmConfig(bm, bn, 128, group_m=8, num_warps=warps, num_stages=stages)


def sweep(name, m, n, k, run, configs):
    best = None
    for cfg in configs:
        try:
            us = median_us(lambda: run(cfg), warmup_ms=5, rep_ms=25)
        except Exception as err:  # noqa: BLE001 (out of shared memory etc. are expected for some tiles)
            print(f"  {name} {m}x{n}x{k} {cfg.key()}: {type(err).__name__}")
            continue
        if best is None or us < best[0]:
            best = (us, cfg)
    us, cfg = best
    print(f"{name:14} M={m:<5} {n}x{k}: {us:8.1f} us  {cfg.key()}", flush=True)
    return {"case": name, "m": m, "n": n, "k": k, "us": us, "config": cfg.__dict__}


def main():
    out = sys.argv[1]
    results = []
    torch.manual_seed(0)
    for n, k in SHAPES:
        copies = max(2, 256 * 2**20 // (n * k) + 1)
        w = torch.randn(n, k, device="cuda", dtype=torch.bfloat16)
        blk = [quantize(w * (1 + i / 100), SCHEMES["fp8_per_block"].weight) for i in range(copies)]
        ch = [quantize(w * (1 + i / 100), SCHEMES["fp8_per_channel"].weight) for i in range(copies)]
        i8 = [quantize(w * (1 + i / 100), SCHEMES["int8_per_channel"].weight) for i in range(copies)]
        it = itertools.count()

        x = torch.randn(4096, k, device="cuda", dtype=torch.bfloat16)

        def pre_block(cfg):
            q = blk[next(it) % copies]
            xq, s = quantize_per_group(x, 128)
            return scaled_gemm(xq, q.data, s, q.scale, a_mode="group", b_mode="block", config=cfg)

        def pre_int8(cfg):
            q = i8[next(it) % copies]
            xq, s = quantize_per_token(x, torch.int8)
            return scaled_gemm(xq, q.data, s, q.scale, a_mode="token", b_mode="channel", config=cfg)

        def pre_rowwise(cfg):
            q = ch[next(it) % copies]
            xq, s = quantize_per_token(x)
            return scaled_gemm(xq, q.data, s, q.scale, a_mode="token", b_mode="channel", config=cfg)

        results.append(sweep("block_prefill", 4096, n, k, pre_block, prefill_configs()))
        results.append(sweep("rowwise_prefill", 4096, n, k, pre_rowwise, prefill_configs()))
        results.append(sweep("int8_prefill", 4096, n, k, pre_int8, prefill_configs()))
        del blk, ch, i8
        torch.cuda.empty_cache()
    with open(out, "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
