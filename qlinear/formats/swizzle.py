"""The 128x4 swizzled layout of block scales that Blackwell (sm_100+) block-scaled GEMMs read.

Source: cuBLAS documentation, "1D block scaling factors layout" (the layout PyTorch's ``_scaled_mm``
calls ``SWIZZLE_32_4_4``; vLLM's ``swizzle_blockscale`` builds the same). A scale matrix
``[rows, cols]`` (rows = M or N, cols = K / block) is padded with zeros to ``[ceil(rows/128)*128,
ceil(cols/4)*4]`` and cut into 128x4 tiles, stored tile after tile, row-tiles outermost; inside a
tile, the scale of row ``r`` and column ``c`` lies at ``(r % 32) * 16 + (r // 32) * 4 + c``.

Checkpoints store scales unswizzled (row-major); qlinear keeps them so and swizzles in a kernel's
``prepare`` only.
"""
from __future__ import annotations

import torch

TILE_ROWS, TILE_COLS = 128, 4


def swizzled_shape(rows: int, cols: int) -> tuple[int, int]:
    """The padded ``[rows, cols]`` the swizzled layout covers."""
    return -(-rows // TILE_ROWS) * TILE_ROWS, -(-cols // TILE_COLS) * TILE_COLS


def swizzle_128x4(scales: torch.Tensor) -> torch.Tensor:
    """Row-major ``[rows, cols]`` scales (any dtype) -> the flat swizzled layout (1-D, contiguous,
    ``prod(swizzled_shape(rows, cols))`` elements, padding zero)."""
    rows, cols = scales.shape
    prow, pcol = swizzled_shape(rows, cols)
    padded = scales.new_zeros(prow, pcol)
    padded[:rows, :cols] = scales
    # [row tile, 4 row groups of 32, 32, col tile, 4] -> [row tile, col tile, 32, 4 row groups, 4]
    tiles = padded.view(prow // TILE_ROWS, 4, 32, pcol // TILE_COLS, TILE_COLS)
    return tiles.permute(0, 3, 2, 1, 4).contiguous().view(-1)


def unswizzle_128x4(swizzled: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """The inverse of :func:`swizzle_128x4`: the row-major ``[rows, cols]`` scales.

    Raises:
        ValueError: ``swizzled`` does not hold ``prod(swizzled_shape(rows, cols))`` elements.
    """
    prow, pcol = swizzled_shape(rows, cols)
    if swizzled.numel() != prow * pcol:
        raise ValueError(f"a swizzled [{rows}, {cols}] scale matrix has {prow * pcol} elements, got {swizzled.numel()}")
    tiles = swizzled.reshape(prow // TILE_ROWS, pcol // TILE_COLS, 32, 4, TILE_COLS)
    return tiles.permute(0, 3, 2, 1, 4).reshape(prow, pcol)[:rows, :cols].contiguous()
