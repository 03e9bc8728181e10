"""FP8 e4m3fn elements with fp32 scales (per-tensor, per-channel, per-token, 1x128 groups, 128x128 blocks).

Format: OCP 8-bit floating point spec (OFP8, 2023) E4M3 "fn" variant as in ``torch.float8_e4m3fn``:
largest finite 448, no infinities. Rounding of the element cast is round-to-nearest-even
(PyTorch's cast). Values beyond ±448 saturate to ±448 (the plain cast would give NaN).

Scale rule (dequant multiplier, ``x ≈ q * scale``): ``scale = max(amax, 1e-12) / 448`` (IEEE
division); ``q = saturate(x * (1 / scale))`` with the fp32 reciprocal rounded once, so a fused kernel
does one multiply per element (vLLM and DeepGEMM quantize the same way). The 1e-12 floor only
matters for all-zero tiles.
"""
from __future__ import annotations

import torch

from .tiles import divide

E4M3_MAX = 448.0
AMAX_FLOOR = 1e-12


def scale_from_amax(amax: torch.Tensor) -> torch.Tensor:
    """fp32 dequant scale that maps ``amax`` onto the largest e4m3 value."""
    return divide(amax.float().clamp(min=AMAX_FLOOR), E4M3_MAX)


def to_e4m3(x: torch.Tensor) -> torch.Tensor:
    """Saturating round-to-nearest-even cast to ``torch.float8_e4m3fn``."""
    return x.clamp(-E4M3_MAX, E4M3_MAX).to(torch.float8_e4m3fn)
