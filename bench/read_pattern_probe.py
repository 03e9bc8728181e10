"""How fast can a decode kernel read a 4-bit (or FP8) weight, by access pattern alone? (GPU)

    PYTHONPATH=. python3 bench/read_pattern_probe.py [--shapes NxK,...] [--fp8]

A Triton kernel that only loads the packed NVFP4 weight (``uint8 [N, K/2]`` as int32 words) and its
e4m3 scales (``[N, K/16]``) and XORs them together, in the tiles a decode kernel uses: R rows x BW
words per step, K split over ``split`` programs. Two layouts of the same bytes:

* ``rows``: the canonical row-major layout (each step reads R segments of BW*4 bytes, one per row);
* ``tiles``: the same tiles stored one after another (each step reads R*BW*4 contiguous bytes),
  what a repack at load time would give.

``--fp8``: the weight is ``[N, K]`` bytes (e4m3) and no scales are read (a per-channel or 128x128
block scale adds < 0.1% of the bytes); "%floor" is then against the FP8 weight's bytes: the bound
on issue 3's FP8 decode target (>= 85% of that floor) for any kernel that reads the weight once.

Times are CUDA-graph replay medians over copies rotated beyond L2, beside bf16 ``torch.mm`` at one
token; "%floor" is the stored bytes (weight + scales) at the measured copy rate, against this time.
"""
from __future__ import annotations

import argparse
import itertools

import torch
import triton
import triton.language as tl

from qlinear.bench import _copies, _rotating, graph_median_us, measure_ceilings


@triton.jit
def _read_kernel(w_ptr, s_ptr, out_ptr, KW, KS_W, R: tl.constexpr, BW: tl.constexpr, TILED: tl.constexpr,
                 SCALES: tl.constexpr):
    pid_n = tl.program_id(0)
    pid_k = tl.program_id(1)
    r = tl.arange(0, R)
    w = tl.arange(0, BW)
    acc = tl.zeros([R, BW], tl.int32)
    sacc = tl.zeros([R, BW // 8], tl.int32)  # one e4m3 scale per 16 codes: BW/8 words of scales per BW words
    steps = KS_W // BW
    for step in range(steps):
        g = pid_k * steps + step  # global step along K
        if TILED:
            base = (pid_n * (KW // BW) + g) * (R * BW)
            acc ^= tl.load(w_ptr + base + r[:, None] * BW + w[None, :])
            if SCALES:
                sbase = (pid_n * (KW // BW) + g) * (R * BW // 8)
                sacc ^= tl.load(s_ptr + sbase + r[:, None] * (BW // 8) + tl.arange(0, BW // 8)[None, :])
        else:
            rows = pid_n * R + r
            acc ^= tl.load(w_ptr + rows[:, None] * KW + g * BW + w[None, :])
            if SCALES:
                sacc ^= tl.load(s_ptr + rows[:, None] * (KW // 8) + g * (BW // 8) + tl.arange(0, BW // 8)[None, :])
    total = tl.xor_sum(tl.xor_sum(acc, 1), 0) ^ tl.xor_sum(tl.xor_sum(sacc, 1), 0)
    tl.store(out_ptr + pid_n * tl.num_programs(1) + pid_k, total)


def read(w, s, out, n, kw, r, bw, split, tiled, scales, warps):
    _read_kernel[(n // r, split)](w, s, out, kw, kw // split, R=r, BW=bw, TILED=tiled, SCALES=scales,
                                   num_warps=warps)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", default="28672x4096,4096x14336,14336x4096")
    ap.add_argument("--fp8", action="store_true", help="an e4m3 weight [N, K] without scales")
    args = ap.parse_args()
    label = "FP8" if args.fp8 else "4-bit"
    ceil = measure_ceilings()
    print(f"copy {ceil.copy_bytes_per_s / 1e12:.2f} TB/s", flush=True)
    for shape in args.shapes.split(","):
        n, k = (int(v) for v in shape.split("x"))
        kw = k // 4 if args.fp8 else k // 8  # int32 words per row
        weight_bytes = n * k if args.fp8 else n * k // 2  # e4m3 bytes or packed e2m1 codes
        scale_bytes = 0 if args.fp8 else n * k // 16  # NVFP4: one e4m3 scale per 16
        nbytes = weight_bytes + scale_bytes
        copies = _copies(nbytes)
        ws = [torch.randint(-2**31, 2**31 - 1, (n, kw), device="cuda", dtype=torch.int32) for _ in range(copies)]
        ss = [torch.randint(-2**31, 2**31 - 1, (n, kw // 8), device="cuda", dtype=torch.int32)
              for _ in range(0 if args.fp8 else copies)] or [None] * copies
        out = torch.empty(n * 64, device="cuda", dtype=torch.int32)
        floor = 1e6 * nbytes / ceil.copy_bytes_per_s
        x = torch.randn(1, k, device="cuda", dtype=torch.bfloat16)
        wb = [torch.randn(n, k, device="cuda", dtype=torch.bfloat16) for _ in range(_copies(2 * n * k))]
        print(f"{n}x{k}: bf16 torch.mm M=1 {graph_median_us(_rotating([lambda w=w: x @ w.t() for w in wb])):.1f} us; "
              f"{label} floor {floor:.1f} us", flush=True)
        del wb
        grid = [(r, bw, split, 4, tiled, not args.fp8) for r, bw, split, tiled in
                itertools.product((16, 64), (32, 64, 128), (1, 4, 16), (False, True))]
        grid += [] if args.fp8 else [(64, 32, 4, 4, tiled, False) for tiled in (False, True)]
        for r, bw, split, warps, tiled, scales in grid:
            if kw % (bw * split):
                continue
            fns = [lambda w=w, s=s: read(w, s, out, n, kw, r, bw, split, tiled, scales, warps) for w, s in zip(ws, ss)]
            us = graph_median_us(_rotating(fns), rep_ms=40)
            read_bytes = weight_bytes + (scale_bytes if scales else 0)
            print(f"  R={r:3} BW={bw:4}w ({4 * bw:4} B/row) split={split:2} warps={warps} "
                  f"{'tiles' if tiled else 'rows ':5} {'w+scales' if scales else 'w only  '} {us:7.1f} us  "
                  f"{read_bytes / (us * 1e-6) / 1e12:5.2f} TB/s  {100 * floor / us:5.1f}% of {label} floor", flush=True)
        del ws, ss
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
