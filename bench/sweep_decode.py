"""Sweep decode (M <= 64) configs of the swapped Triton GEMM; write the per-shape table qlinear loads.

    PYTHONPATH=. python3 bench/sweep_decode.py OUT.json [block,rowwise] [1,16,64] [NxK,...] [BLOCK_M,...]

Times the whole kernel path (activation quantization included) as CUDA-graph replays, with the
weights rotating beyond L2, for M = 1, 16, 64 (buckets "1", "2-16", "17-64"; the third argument picks some).
The weight-row tile heights swept are 64 and 128 unless the fifth argument names others (below 64
the product runs on mma.sync rather than wgmma; with them K is also split 16 ways). Each point prints the fastest three configs and the
time of the config shipped in ``tuned_decode.json`` for it, measured in the same loop. OUT.json has the
format of qlinear/kernels/triton/tuned_decode.json; copy it there to ship it.
"""
import itertools
import json
import sys

import torch
import triton.testing

from qlinear.formats import quantize
from qlinear.kernels.dispatch import DECODE_MAX_M, bucket_label
from qlinear.kernels.triton.configs import tuned_decode
from qlinear.kernels.triton.act_quant import quantize_per_group, quantize_per_token
from qlinear.kernels.triton.scaled_gemm import GemmConfig, scaled_gemm
from qlinear.schemes import SCHEMES

SHAPES = [(4096, 4096), (6144, 4096), (14336, 4096), (4096, 14336), (28672, 4096), (7168, 16384)]
SAMPLE_MS = (1, 16, DECODE_MAX_M)  # the largest M of each decode bucket (a bucket's config must serve it)


def candidates(kind, m, block_ms=(64, 128)):
    bn = 16 if m <= 16 else 64
    block_ks = (128,) if kind == "block" else (128, 256)
    splits = (1, 2, 4, 8, 16) if min(block_ms) < 64 else (1, 2, 4, 8)
    for bm, bk, split, stages, tma in itertools.product(block_ms, block_ks, splits, (3, 5), (False, True)):
        if bm == 128 and bk == 256 and m > 16:
            continue  # does not fit in shared memory
        yield GemmConfig(bm, bn, bk, group_m=1, split_k=split, num_warps=4, num_stages=stages, tma=tma)


def main():
    out = sys.argv[1]
    kinds = sys.argv[2].split(",") if len(sys.argv) > 2 else ["block", "rowwise"]
    ms = [int(v) for v in sys.argv[3].split(",")] if len(sys.argv) > 3 else list(SAMPLE_MS)
    shapes = [tuple(int(d) for d in s.split("x")) for s in sys.argv[4].split(",")] if len(sys.argv) > 4 else SHAPES
    block_ms = tuple(int(v) for v in sys.argv[5].split(",")) if len(sys.argv) > 5 else (64, 128)
    entries = []
    torch.manual_seed(0)
    for n, k in shapes:
        copies = max(2, 256 * 2**20 // (n * k) + 1)
        w = torch.randn(n, k, device="cuda", dtype=torch.bfloat16)
        weights = {
            "block": [quantize(w * (1 + i / 64), SCHEMES["fp8_per_block"].weight) for i in range(copies)],
            "rowwise": [quantize(w * (1 + i / 64), SCHEMES["fp8_per_channel"].weight) for i in range(copies)],
        }
        for m, kind in itertools.product(ms, kinds):
            x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
            it = itertools.count()

            def run(cfg, fuse):
                q = weights[kind][next(it) % copies]
                if kind == "block" and fuse:
                    return scaled_gemm(x, q.data, None, q.scale, a_mode="group", b_mode="block", config=cfg,
                                       quant_a=True, swap_ab=True)
                if kind == "block":
                    xq, s = quantize_per_group(x, 128)
                    return scaled_gemm(xq, q.data, s, q.scale, a_mode="group", b_mode="block", config=cfg, swap_ab=True,
                                       after_producer=True)
                xq, s = quantize_per_token(x)
                return scaled_gemm(xq, q.data, s, q.scale, a_mode="token", b_mode="channel", config=cfg, swap_ab=True,
                                   after_producer=True)

            timed = []
            shipped = tuned_decode(kind, m, n, k)
            # Block decode can quantize x inside the GEMM (one launch) or in a separate pass first.
            fusions = (True, False) if kind == "block" and m <= 16 else (False,)
            for cfg, fuse in itertools.product(candidates(kind, m, block_ms), fusions):
                try:
                    us = 1000 * triton.testing.do_bench_cudagraph(lambda: run(cfg, fuse), rep=20, return_mode="median")
                except Exception as err:  # noqa: BLE001 (some tiles do not fit)
                    print(f"  {kind} M={m} {n}x{k} {cfg.key()}: {type(err).__name__}")
                    continue
                timed.append((us, cfg, fuse))
            timed.sort(key=lambda t: t[0])
            us, cfg, fuse = timed[0]
            ship = [t for t in timed if shipped is not None and (t[1], t[2]) == shipped]
            print(f"{kind:8} M={m:<3} {n}x{k}: {us:7.1f} us  {cfg.key()} fused={fuse}; next "
                  + ", ".join(f"{c.key()}{'F' if f else ''} {u:.1f}" for u, c, f in timed[1:3])
                  + (f"; shipped {ship[0][1].key()} {ship[0][0]:.1f}" if ship else "; shipped config not swept"),
                  flush=True)
            entries.append({"kind": kind, "n": n, "k": k, "bucket": bucket_label(m), "us": round(us, 2),
                            "block_m": cfg.block_m, "block_k": cfg.block_k, "split_k": cfg.split_k,
                            "num_stages": cfg.num_stages, "tma": cfg.tma, "fused_quant": fuse})
        del weights
        torch.cuda.empty_cache()
    with open(out, "w") as f:
        json.dump({torch.cuda.get_device_name(): entries}, f, indent=1)


if __name__ == "__main__":
    main()
