"""Zero padding of weights (once, in prepare) and activations (per call) to a kernel's alignment."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def pad_2d(t: torch.Tensor, rows: int, cols: int, value: float = 0.0) -> torch.Tensor:
    """Pad ``t [r, c]`` at the end to ``[rows, cols]`` (no copy when already that size).

    Works for float8/int8 tensors by padding their raw bytes viewed as uint8 when ``value`` is 0.
    """
    pr, pc = rows - t.shape[0], cols - t.shape[1]
    if pr == 0 and pc == 0:
        return t
    if t.dtype in (torch.float8_e4m3fn, torch.int8, torch.uint8) and value == 0.0:
        return F.pad(t.view(torch.uint8), (0, pc, 0, pr)).view(t.dtype)
    return F.pad(t, (0, pc, 0, pr), value=value)
