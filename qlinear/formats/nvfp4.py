"""NVFP4 two-level scales: an fp32 global scale and one e4m3 scale per 16 e2m1 elements.

Format: NVIDIA NVFP4 (Blackwell microscaling; as written by ModelOpt and compressed-tensors).
Dequant: ``x = e2m1 * float(block_scale_e4m3) * global_scale``.

Inside qlinear the global scale is always the **decode multiplier** (``global_scale ≈
amax / (448 * 6)``). On disk two conventions exist and are converted at the boundary only:
ModelOpt's ``weight_scale_2`` / ``input_scale`` are multipliers (use as is);
compressed-tensors' ``weight_global_scale`` / ``input_global_scale`` are divisors
(``2688 / amax``): :func:`global_scale_from_divisor` converts them.

Quantization: ``divisor = fp32(2688 * fp32(1 / max(amax_global, 1e-12)))`` and ``global = fp32(1 /
divisor)`` (compressed-tensors computes ``2688 / amax``, which PyTorch evaluates as the reciprocal
times 2688; going through its divisor, the divisor written to its checkpoints reads back to exactly
the same multiplier); per 16 elements
``block = saturate_e4m3(amax_16 / 6 / global)``; elements ``round_e2m1(x / (block * global))``,
0 where the block scale rounded to 0.
"""
from __future__ import annotations

import torch

from . import fp8
from .e2m1 import E2M1_MAX
from .tiles import divide

GLOBAL_RANGE = fp8.E4M3_MAX * E2M1_MAX  # 2688: e4m3 max times e2m1 max


def global_scale_from_amax(amax: torch.Tensor) -> torch.Tensor:
    """fp32 decode multiplier (about ``amax / 2688``) that puts the largest block scale at the top of e4m3.

    It is the fp32 reciprocal of an fp32 divisor, so :func:`global_scale_to_divisor` finds a divisor
    that converts back to it exactly.
    """
    divisor = torch.reciprocal(amax.float().clamp(min=fp8.AMAX_FLOOR)) * GLOBAL_RANGE  # = torch's 2688 / amax
    return global_scale_from_divisor(divisor)


def global_scale_from_divisor(divisor: torch.Tensor) -> torch.Tensor:
    """compressed-tensors ``*_global_scale`` (a divisor, ``2688/amax``) to qlinear's multiplier (fp32)."""
    return torch.reciprocal(divisor.float())


def global_scale_to_divisor(global_scale: torch.Tensor) -> torch.Tensor:
    """qlinear's fp32 multiplier to the compressed-tensors divisor convention.

    Returns the fp32 divisor ``d`` nearest ``1/global_scale`` for which ``fp32(1/d)`` is exactly
    ``global_scale`` (one exists for every multiplier :func:`global_scale_from_amax` produces; about
    one in six arbitrary fp32 values has none, and then the nearest divisor is returned, off by one
    unit in the last place after the round trip).
    """
    g = global_scale.float()
    first = torch.reciprocal(g)
    best = first.clone()
    found = torch.reciprocal(first) == g
    for steps in (1, 2, 3):
        for direction in (float("inf"), float("-inf")):
            candidate = first
            for _ in range(steps):
                candidate = torch.nextafter(candidate, torch.full_like(candidate, direction))
            hit = (torch.reciprocal(candidate) == g) & ~found
            best = torch.where(hit, candidate, best)
            found |= hit
    return best


def block_scales(block_amax: torch.Tensor, global_scale: torch.Tensor) -> torch.Tensor:
    """e4m3 block scales from per-16 amax and the (broadcastable) fp32 global multiplier."""
    return fp8.to_e4m3(divide(block_amax.float(), E2M1_MAX) / global_scale)
