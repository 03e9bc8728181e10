"""Launch configurations of the Triton scaled GEMM, by M (decode vs prefill) and weight shape.

Decode (M <= ``dispatch.DECODE_MAX_M``, 64): per-shape configs measured on a GPU by
``bench/sweep_decode.py`` (whole path, CUDA-graph replays) ship in ``tuned_decode.json``, keyed by
GPU name and M bucket (``dispatch.bucket_label``); ``QLINEAR_TRITON_CONFIGS`` points at another
such file. Shapes not in it follow :func:`pick_config`'s rules. Prefill configs come from
``bench/sweep_prefill.py`` (results in ``bench/results/``).
"""
from __future__ import annotations

import functools
import json
import os
from pathlib import Path

from ..dispatch import DECODE_MAX_M, bucket_label
from .scaled_gemm import GemmConfig

SM_COUNT_HOPPER = 132
TUNED_FILE = Path(__file__).with_name("tuned_decode.json")
# Batch-invariant mode: one tile shape for every M and no split-K, so a row's result cannot
# depend on how many rows share the batch.
BATCH_INVARIANT = GemmConfig(block_m=64, block_n=128, block_k=128, group_m=8, num_warps=4, num_stages=3)


@functools.cache
def _tuned(path: str, device: str) -> dict[tuple[str, int, int, str], tuple[GemmConfig, bool]]:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    table = {}
    for e in data.get(device, []):
        bn = 64 if e["bucket"] == bucket_label(DECODE_MAX_M) else 16
        cfg = GemmConfig(e["block_m"], bn, e["block_k"], group_m=1, split_k=e["split_k"], num_warps=4,
                         num_stages=e["num_stages"], tma=bool(e.get("tma", False)))
        table[(e["kind"], e["n"], e["k"], e["bucket"])] = (cfg, bool(e.get("fused_quant", False)))
    return table


def _device_name() -> str:
    import torch

    return torch.cuda.get_device_name() if torch.cuda.is_available() else ""


def tuned_decode(kind: str, m: int, n: int, k: int) -> tuple[GemmConfig, bool] | None:
    """The measured ``(config, fused_quant)`` for this shape and decode bucket on this GPU, if any."""
    path = os.environ.get("QLINEAR_TRITON_CONFIGS") or str(TUNED_FILE)
    return _tuned(path, _device_name()).get((kind, n, k, bucket_label(m)))


def fuse_block_quant(m: int, n: int, k: int) -> bool:
    """Whether block decode quantizes x inside the GEMM: the measured choice, else up to M=16."""
    if m > 16:
        return False
    tuned = tuned_decode("block", m, n, k)
    return tuned[1] if tuned is not None else True


def _split_k(tiles: int, k_tiles: int, target: int) -> int:
    """The smallest power-of-two K split giving ``target`` programs, keeping >= 4 K-tiles per split."""
    split = 1
    while tiles * split < target and k_tiles // (split * 2) >= 4:
        split *= 2
    return split


def pick_config(m: int, n: int, k: int, *, kind: str = "rowwise", sms: int = SM_COUNT_HOPPER) -> tuple[GemmConfig, bool]:
    """``(config, swap_ab)`` for an ``[m, k] x [n, k]^T`` product.

    ``kind`` is ``block`` (per-K-tile scales), ``rowwise`` (scales in the epilogue) or ``mx``
    (e8m0 scales per 32-wide K step).
    Decode sizes (m <= DECODE_MAX_M) swap the operands: the weight's rows take the MMA's M side (so
    Hopper's wgmma applies at M=1) and the tokens its N side. Block scaling waits for each K-tile's product,
    so it wants more programs in flight (a deeper K split) than rowwise scaling does.
    """
    if kind == "mx":  # e8m0 scales per 32: one 32-wide K step per product
        if m <= DECODE_MAX_M:
            bn = 16 if m <= 16 else 64
            split = _split_k(-(-n // 64), -(-k // 32) // 4, 2 * sms)
            return GemmConfig(64, bn, 32, group_m=1, split_k=split, num_warps=4, num_stages=6), True
        return GemmConfig(128, 128, 32, group_m=8, num_warps=8, num_stages=5), False
    if m <= DECODE_MAX_M:
        tuned = tuned_decode(kind, m, n, k)
        if tuned is not None:
            return tuned[0], True
        bn = 16 if m <= 16 else (32 if m <= 32 else 64)
        k_tiles = -(-k // 128)
        if kind == "block":
            bm, stages, split, tma = 128, 3, _split_k(-(-n // 128), k_tiles, 6 * sms), False
        else:  # TMA weight loads won 11 of 12 rowwise sweeps (bench/results/h200_sweep_decode_tma.txt)
            bm, stages, split, tma = 64, 6, _split_k(-(-n // 64), k_tiles, 2 * sms), True
        return GemmConfig(bm, bn, 128, group_m=1, split_k=split, num_warps=4, num_stages=stages, tma=tma), True
    if m <= 512:
        return GemmConfig(64, 128, 128, group_m=8, num_warps=4, num_stages=4), False
    return GemmConfig(128, 128, 128, group_m=8, num_warps=8, num_stages=3), False
