"""Tiling helpers shared by every format: one scale per tile, ceil on ragged edges.

A ``[rows, cols]`` tensor is zero-padded to whole tiles and viewed as
``[rows/tr, tr, cols/tc, tc]``; a scale of shape ``[rows/tr, cols/tc]`` then broadcasts
as ``scale[:, None, :, None]``. Zero padding never changes an amax, so edge tiles get the
scale of their real elements only.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def to_tiles(x: torch.Tensor, tile: tuple[int, int]) -> torch.Tensor:
    """View ``x [rows, cols]`` as ``[ceil(rows/tr), tr, ceil(cols/tc), tc]`` (zero-padded copy if ragged)."""
    rows, cols = x.shape
    tr, tc = tile
    pad_r, pad_c = (-rows) % tr, (-cols) % tc
    if pad_r or pad_c:
        x = F.pad(x, (0, pad_c, 0, pad_r))
    return x.reshape(x.shape[0] // tr, tr, x.shape[1] // tc, tc)


def from_tiles(tiles: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Inverse of :func:`to_tiles`: drop the padding and return ``[rows, cols]``."""
    a, tr, b, tc = tiles.shape
    return tiles.reshape(a * tr, b * tc)[: shape[0], : shape[1]]


def per_tile(scale: torch.Tensor) -> torch.Tensor:
    """Broadcast a ``[rows/tr, cols/tc]`` scale against a tiled view."""
    return scale[:, None, :, None]


def divide(t: torch.Tensor, divisor: float) -> torch.Tensor:
    """``t / divisor`` with IEEE division on every device.

    PyTorch's CUDA kernels turn division by a Python scalar into multiplication by its rounded
    reciprocal, which differs from true division in the last bit (and then, through rounding, in
    quantized values); dividing by a tensor keeps the division exact-rounded on CPU and GPU alike.
    """
    return t / torch.full_like(t, divisor)
