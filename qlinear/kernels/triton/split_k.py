"""Split-K finished in the launch that computes it, shared by the Triton GEMMs and the GEMV.

Each K slice writes its fp32 partial tile to a workspace ``[SPLIT_K, slab]`` and bumps the tile's
arrival counter; the slice that arrives last adds the partials in slice order (so the sum does not
depend on which slice finished first), resets the counter and returns ``last = True`` to its
caller, which applies the epilogue and stores the output. One launch: no zero-filled output, no
atomic float adds, no cast kernel afterwards — at decode sizes each of those launches costs as
much as streaming a small weight (bench/results/h200_issue3.md).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

_counters: dict[torch.device, torch.Tensor] = {}


def tile_counters(device: torch.device, count: int) -> torch.Tensor:
    """Zeroed int32 arrival counters for ``count`` tiles, shared by every kernel on ``device``.

    Each launch leaves them zero again, so kernels queued on one stream can share them; kernels
    running concurrently on two streams must not. Grown, never shrunk: call once before a CUDA
    graph is captured (as the layer's first forward does) so that capture allocates nothing.
    """
    have = _counters.get(device)
    if have is None or have.numel() < count:
        _counters[device] = torch.zeros(max(count, 4096), dtype=torch.int32, device=device)
    return _counters[device]


def split_k_buffers(device: torch.device, split_k: int, slab: int, tiles: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(workspace fp32 [split_k * slab], counters int32)`` for one split-K launch of ``tiles`` tiles."""
    return torch.empty(split_k * slab, device=device, dtype=torch.float32), tile_counters(device, tiles)


@triton.jit
def reduce_slices(acc, ws_ptr, cnt_ptr, offs, mask, slab, tile, pid_k, SPLIT_K: tl.constexpr):
    """``(total, last)``: slice ``pid_k``'s fp32 tile ``acc`` (elements ``offs`` of a ``slab``,
    ``mask`` where real) joins the others of counter ``tile``; ``last`` is true in the one program
    that arrived last, whose ``total`` is the slice-order sum (zeros elsewhere)."""
    tl.store(ws_ptr + pid_k * slab + offs, acc, mask=mask)
    tl.debug_barrier()  # every thread's partial is written before the counter says so
    arrived = tl.atomic_add(cnt_ptr + tile, 1, sem="acq_rel", scope="gpu")
    last = arrived == SPLIT_K - 1
    total = tl.zeros(acc.shape, dtype=tl.float32)
    if last:
        for s in range(SPLIT_K):
            total += tl.load(ws_ptr + s * slab + offs, mask=mask, other=0.0, cache_modifier=".cg")
        tl.atomic_xchg(cnt_ptr + tile, 0, sem="relaxed", scope="gpu")
    return total, last


__all__ = ["tile_counters", "split_k_buffers", "reduce_slices"]
