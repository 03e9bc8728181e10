"""Launch configurations of the Triton scaled GEMM, by M (decode vs prefill) and weight shape.

Chosen from sweeps on an H200 (``bench/sweep_configs.py``; ``bench/results/h200_sweep_configs.json``):
decode configs are timed under CUDA-graph replay, prefill ones with ``do_bench``. Shapes in
:data:`DECODE_TABLE` use their measured best; other shapes follow the rules in :func:`pick_config`,
which those measurements suggest.
"""
from __future__ import annotations

from .scaled_gemm import GemmConfig

SM_COUNT_HOPPER = 132
# Batch-invariant mode: one tile shape for every M and no split-K, so a row's result cannot
# depend on how many rows share the batch.
BATCH_INVARIANT = GemmConfig(block_m=64, block_n=128, block_k=128, group_m=8, num_warps=4, num_stages=3)

# (kind, N, K) -> (block_m, split_k, num_stages) of the swapped decode GEMM at M <= 16, measured.
DECODE_TABLE: dict[tuple[str, int, int], tuple[int, int, int]] = {
    ("block", 4096, 4096): (128, 8, 3),
    ("block", 14336, 4096): (128, 8, 3),
    ("block", 4096, 14336): (128, 8, 3),
    ("block", 28672, 4096): (128, 4, 3),
    ("block", 7168, 16384): (128, 4, 3),
    ("rowwise", 4096, 4096): (128, 8, 4),
    ("rowwise", 14336, 4096): (64, 1, 6),
    ("rowwise", 4096, 14336): (64, 4, 6),
    ("rowwise", 28672, 4096): (64, 1, 3),
    ("rowwise", 7168, 16384): (64, 4, 3),
}


def _split_k(tiles: int, k_tiles: int, target: int) -> int:
    """The smallest power-of-two K split giving ``target`` programs, keeping >= 4 K-tiles per split."""
    split = 1
    while tiles * split < target and k_tiles // (split * 2) >= 4:
        split *= 2
    return split


def pick_config(m: int, n: int, k: int, *, kind: str = "rowwise", block_k: int = 128,
                sms: int = SM_COUNT_HOPPER) -> tuple[GemmConfig, bool]:
    """``(config, swap_ab)`` for an ``[m, k] x [n, k]^T`` product.

    ``kind`` is ``block`` (per-K-tile scales) or ``rowwise`` (scales in the epilogue).
    Decode sizes (m <= 64) swap the operands: the weight's rows take the MMA's M side (so Hopper's
    wgmma applies at M=1) and the tokens its N side. Block scaling waits for each K-tile's product,
    so it wants more programs in flight (a deeper K split) than rowwise scaling does.
    """
    k_tiles = -(-k // block_k)
    if m <= 64:
        bn = 16 if m <= 16 else (32 if m <= 32 else 64)
        measured = DECODE_TABLE.get((kind, n, k)) if m <= 16 else None
        if measured:
            bm, split, stages = measured
        elif kind == "block":
            bm, stages = 128, 3
            split = _split_k(-(-n // bm), k_tiles, 6 * sms)
        else:
            bm, stages = 64, 6
            split = _split_k(-(-n // bm), k_tiles, 2 * sms)
        return GemmConfig(bm, bn, block_k, group_m=1, split_k=split, num_warps=4, num_stages=stages), True
    if m <= 512:
        return GemmConfig(64, 128, block_k, group_m=8, num_warps=4, num_stages=4), False
    return GemmConfig(128, 128, block_k, group_m=8, num_warps=8, num_stages=3), False
