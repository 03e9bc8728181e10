"""FP4 e2m1 elements: encoding, round-to-nearest-even, and two-per-byte packing.

Format: OCP Microscaling Formats (MX) v1.0, FP4 E2M1 element: 1 sign, 2 exponent, 1 mantissa
bit, no inf/NaN. The eight magnitudes are codes 0..7 = {0, 0.5, 1, 1.5, 2, 3, 4, 6}; bit 3
is the sign. Packing (NVFP4 and MXFP4 checkpoints of compressed-tensors, ModelOpt, gpt-oss):
two codes per uint8 along K, element ``2j`` in the low nibble, ``2j+1`` in the high nibble.

Rounding: nearest value, ties to the even code, saturating at ±6. Ties: 0.25→0, 0.75→1,
1.25→1, 1.75→2, 2.5→2, 3.5→4, 5→4 (the same thresholds as vLLM's reference quantizer).
"""
from __future__ import annotations

import torch

E2M1_MAX = 6.0
MAGNITUDES = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)
# Midpoints between neighbouring magnitudes; a value exactly on one rounds to the even code.
_MIDPOINTS = (0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0)


def encode(x: torch.Tensor) -> torch.Tensor:
    """Round already-scaled values to e2m1 codes (uint8 in 0..15, same shape as ``x``)."""
    mag = x.abs().float().clamp(max=E2M1_MAX)
    mids = torch.tensor(_MIDPOINTS, device=x.device)
    code = torch.bucketize(mag, mids)  # a value equal to a midpoint lands on the lower code
    on_mid = mag == mids[code.clamp(max=len(_MIDPOINTS) - 1)]
    code = code + (on_mid & (code % 2 == 1)).to(code.dtype)  # lower code odd -> tie goes up to even
    return (code | (x < 0).to(code.dtype) << 3).to(torch.uint8)


def decode(codes: torch.Tensor) -> torch.Tensor:
    """e2m1 codes (uint8 0..15) to float32 values."""
    table = torch.tensor(MAGNITUDES + tuple(-m for m in MAGNITUDES), device=codes.device)
    return table[codes.long()]


def pack(codes: torch.Tensor) -> torch.Tensor:
    """``[rows, K]`` codes to ``[rows, K/2]`` uint8, even element in the low nibble. K must be even."""
    if codes.shape[-1] % 2:
        raise ValueError(f"e2m1 packing needs an even number of elements along K, got {codes.shape[-1]}")
    return codes[..., 0::2] | (codes[..., 1::2] << 4)


def unpack(packed: torch.Tensor) -> torch.Tensor:
    """``[rows, K/2]`` uint8 to ``[rows, K]`` codes."""
    return torch.stack((packed & 0xF, packed >> 4), dim=-1).reshape(*packed.shape[:-1], -1)
