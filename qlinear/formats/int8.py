"""INT8 elements with fp32 scales: symmetric (weights, activations) and asymmetric (activations).

Symmetric: ``scale = max(amax, 1e-12) / 127``, ``q = clamp(round(x * (1 / scale)), -127, 127)``,
``x ≈ q * scale``. The range is kept symmetric (-128 unused) so negation is exact.
(compressed-tensors writes ``amax / 127.5`` with range [-128, 127]; readers take the scale
from the file, they never recompute it.)

Asymmetric (per-token dynamic activations): the range is widened to include 0 so that zero is
exact, ``scale = (max - min) / 255``, ``zero_point = clamp(round(-128 - min / scale), -128, 127)``,
``q = clamp(round(x / scale) + zero_point, -128, 127)``, ``x ≈ (q - zero_point) * scale``.

``round`` is round-half-to-even (``torch.round``); ``1 / scale`` is the fp32 reciprocal, rounded once
(one multiply per element in the fused kernels).
"""
from __future__ import annotations

import torch

from .tiles import divide

INT8_SYMMETRIC_MAX = 127.0
AMAX_FLOOR = 1e-12


def symmetric_scale(amax: torch.Tensor) -> torch.Tensor:
    return divide(amax.float().clamp(min=AMAX_FLOOR), INT8_SYMMETRIC_MAX)


def round_symmetric(x_over_scale: torch.Tensor) -> torch.Tensor:
    return torch.round(x_over_scale).clamp(-INT8_SYMMETRIC_MAX, INT8_SYMMETRIC_MAX).to(torch.int8)


def asymmetric_params(tmin: torch.Tensor, tmax: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(scale fp32, zero_point int32)`` for tiles with minimum ``tmin`` and maximum ``tmax``."""
    lo = tmin.float().clamp(max=0.0)
    hi = tmax.float().clamp(min=0.0)
    scale = divide((hi - lo).clamp(min=AMAX_FLOOR), 255.0)
    zero_point = torch.round(-128.0 - lo / scale).clamp(-128, 127).to(torch.int32)
    return scale, zero_point


def round_asymmetric(x_over_scale: torch.Tensor, zero_point: torch.Tensor) -> torch.Tensor:
    return (torch.round(x_over_scale) + zero_point).clamp(-128, 127).to(torch.int8)
