"""Launch configurations of the weight-only GEMM (:mod:`.dequant_gemm`), by M and weight shape.

Decode streams the weight once: ``block_m`` covers the tokens (16 rows, the smallest bf16 MMA
width), and split-K (reduced in the same launch) gives every SM a few programs even for narrow
layers. Prefill uses 128x128 tiles. Numbers from ``bench/sweep_weight_only.py`` on an H200
(``bench/results/h200_issue4.md``).
"""
from __future__ import annotations

import dataclasses

from .configs import SM_COUNT_HOPPER
from .dequant_gemm import MXFP4, MXFP8, NVFP4, DequantConfig
from .gemv import GemvConfig

# Batch-invariant mode: one tile shape for every M and no split-K.
BATCH_INVARIANT = DequantConfig(block_n=64, block_m=64, block_k=128, split_k=1, num_warps=4, num_stages=3)


def fit_block_k(config: DequantConfig, k: int) -> DequantConfig:
    """``config`` with the largest ``block_k`` <= its own that divides K (grouped formats need whole tiles)."""
    block_k = config.block_k
    while block_k > 32 and k % block_k:
        block_k //= 2
    return config if block_k == config.block_k else dataclasses.replace(config, block_k=block_k)


def _split_k(tiles: int, k_tiles: int, target: int) -> int:
    split = 1
    while tiles * split < target and k_tiles // (split * 2) >= 2:
        split *= 2
    return split


def pick_dequant_config(m: int, n: int, k: int, element: str, *, sms: int = SM_COUNT_HOPPER) -> DequantConfig:
    """The config for an ``[m, k] x [n, k]^T`` product with ``element`` (``e2m1`` or ``e4m3``) weights,
    ``m >= 2`` (one token: :func:`pick_gemv_config`)."""
    if m <= 64:
        block_m = 16 if m <= 16 else 64
        block_k = 256 if element == "e2m1" else 128
        block_n = 64
        cfg = fit_block_k(DequantConfig(block_n, block_m, block_k, num_warps=4, num_stages=4), k)
        split = _split_k(-(-n // block_n), k // cfg.block_k, 2 * sms)
        return dataclasses.replace(cfg, split_k=split)
    # 128x128x64 tiles with 8 warps gave NaN for MXFP8 weights at M=4096 on the H200 (not understood;
    # bench/results/h200_issue4.md); prefill is served by dequant_cublas, so this path uses the
    # batch-invariant tiles, checked at M up to 4096 by the GPU tests.
    return fit_block_k(BATCH_INVARIANT, k)


def pick_gemv_config(n: int, k: int, wfmt: int) -> GemvConfig:
    """The config of the decode GEMV (:mod:`.gemv`) for an ``[N, K]`` weight at M = 1.

    From ``bench/sweep_gemv.py`` on an H200 (``bench/results/h200_issue4.md``, decode GEMV sections):
    e2m1 weights, 32 rows by 128 words (1024 codes) per step with 4 warps, split-K doubled while the
    grid stays within 1 program per SM (N=4096: 2 slices, N >= 14336: none), was best or within 5%
    on 7 of the 8 NVFP4/MXFP4 shapes (``h200_issue4_gemv_sweep_e2m1_narrow.json``). e4m3 weights
    (4 codes per word, decoded by ``cvt.rn.f16x2.e4m3x2``): 64 rows by 64 words, split-K doubled
    while the grid is under 2 programs per SM, the best swept config at 4096x4096, 14336x4096 and
    28672x4096 (``h200_issue4_e4m3_gemv_sweep.txt``); MXFP8 weights with K >= 3N (a down projection)
    take 32 rows by 128 words instead: 4096x14336 21.7 -> 20.0 us, outputs bitwise equal
    (``h200_issue4_gemv_e4m3_ab.txt``; per-channel e4m3 ran 32% slower so, and keeps 64 x 64).
    At most 4 slices, each of at least two steps.
    """
    e2m1 = wfmt in (NVFP4, MXFP4)
    wide_mx = wfmt == MXFP8 and k >= 3 * n
    block_n, block_w = (32, 128) if e2m1 or wide_mx else (64, 64)
    k_tiles = -(-(k // (8 if e2m1 else 4)) // block_w)
    target = SM_COUNT_HOPPER + 1 if e2m1 else 2 * SM_COUNT_HOPPER
    split = min(4, _split_k(-(-n // block_n), k_tiles, target))
    return GemvConfig(block_n=block_n, block_w=block_w, split_k=split, num_warps=4, num_stages=3)
