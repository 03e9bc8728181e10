"""Independent float64 references for the tests: brute-force nearest-value rounding over the
full table of representable values, and loops over tiles (no shared code with qlinear.formats)."""
from __future__ import annotations

import math

import torch


def _grid(values: torch.Tensor, codes: torch.Tensor):
    order = torch.argsort(values)
    return values[order].double(), codes[order]


def e4m3_grid():
    codes = torch.arange(256, dtype=torch.int32).to(torch.uint8)
    vals = codes.view(torch.float8_e4m3fn).float()
    keep = torch.isfinite(vals) & ~((codes == 0x80))  # drop NaN and -0
    return _grid(vals[keep], codes[keep].int())


def e2m1_grid():
    mags = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]
    vals = torch.tensor(mags + [-m for m in mags[1:]])
    codes = torch.tensor(list(range(8)) + list(range(9, 16)))
    return _grid(vals, codes)


def round_to_grid(x: torch.Tensor, grid) -> torch.Tensor:
    """Nearest grid value (saturating), ties to the even code: a brute-force reference."""
    values, codes = grid
    x = x.double().clamp(values[0], values[-1])
    dist = (x.reshape(-1, 1) - values.reshape(1, -1)).abs()
    best = dist.min(dim=1, keepdim=True).values
    tied = dist == best
    odd = (codes % 2 == 1).reshape(1, -1)
    prefer = tied & ~odd
    pick = torch.where(prefer.any(dim=1), prefer.double().argmax(dim=1), tied.double().argmax(dim=1))
    return values[pick].reshape(x.shape)


def fp8_tiles_reference(x: torch.Tensor, tile: tuple[int, int]) -> torch.Tensor:
    """Quantize-dequantize with e4m3 and one amax/448 scale per tile, tile by tile in float64."""
    grid = e4m3_grid()
    x = x.double()
    out = torch.empty_like(x)
    rows, cols = x.shape
    for r in range(0, rows, tile[0]):
        for c in range(0, cols, tile[1]):
            t = x[r : r + tile[0], c : c + tile[1]]
            scale = float(torch.tensor(max(float(t.abs().max()), 1e-12) / 448.0, dtype=torch.float32))
            inverse = torch.reciprocal(torch.tensor(scale, dtype=torch.float32))  # fp32 1/scale, rounded once
            scaled = (t.float() * inverse).double()
            out[r : r + tile[0], c : c + tile[1]] = round_to_grid(scaled, grid) * scale
    return out


def mx_reference(x: torch.Tensor, elem: str) -> torch.Tensor:
    """OCP MX with the exponent rounded up: X = ceil(log2(amax / elem_max)), per 32 along K."""
    grid = e4m3_grid() if elem == "e4m3" else e2m1_grid()
    elem_max = 448.0 if elem == "e4m3" else 6.0
    x = x.double()
    out = torch.empty_like(x)
    for r in range(x.shape[0]):
        for c in range(0, x.shape[1], 32):
            t = x[r, c : c + 32]
            amax = float(t.abs().max())
            e = math.ceil(math.log2(amax / elem_max)) if amax > 0 else -127
            e = max(-127, min(127, e))
            out[r, c : c + 32] = round_to_grid(t / 2.0**e, grid) * 2.0**e
    return out
