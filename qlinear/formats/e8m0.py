"""E8M0 shared scales of OCP MX (MXFP8, MXFP4).

Format: OCP Microscaling Formats (MX) v1.0: one unsigned 8-bit exponent per 32 elements,
value ``2**(e - 127)``; 255 is NaN. Stored as uint8 (``torch.uint8``), never as a float.

Exponent rule: the spec's rule is ``floor(log2(amax)) - emax_elem``, which lets the block
maximum exceed the element range and clip (measured: +9.7% perplexity for MXFP8 on
SmolLM2-135M). We round the exponent up instead, ``X = ceil(log2(amax / elem_max))``, so
``amax / 2**X <= elem_max`` and nothing clips (the same rule as vLLM's MXFP8 quantizer).
"""
from __future__ import annotations

import torch

from .tiles import divide

E8M0_BIAS = 127


def exponent_for(amax: torch.Tensor, elem_max: float) -> torch.Tensor:
    """Smallest integer X (int32, clamped to [-127, 127]) with ``amax / 2**X <= elem_max``.

    ``frexp`` gives ``v = m * 2**e`` with ``m`` in [0.5, 1); ``ceil(log2 v)`` is ``e - 1``
    exactly when ``m == 0.5`` and ``e`` otherwise, with no floating-point log.
    """
    v = divide(amax.float(), elem_max)
    m, e = torch.frexp(v)
    x = torch.where(m == 0.5, e - 1, e)
    # v was rounded by the division; bump X where the block maximum would still exceed the range.
    x = x + (amax.float() > elem_max * torch.exp2(x.float())).to(x.dtype)
    x = torch.where(v > 0, x, torch.full_like(x, -E8M0_BIAS))
    return x.clamp(-E8M0_BIAS, E8M0_BIAS).to(torch.int32)


def encode(exponent: torch.Tensor) -> torch.Tensor:
    """Integer exponent to stored uint8 (biased by 127)."""
    return (exponent + E8M0_BIAS).to(torch.uint8)


def decode(stored: torch.Tensor) -> torch.Tensor:
    """Stored uint8 to the float32 scale ``2**(e - 127)``."""
    return torch.exp2(stored.float() - E8M0_BIAS)
