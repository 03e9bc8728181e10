"""Shape-aware dispatch: one kernel per range of M, resolved once when a layer is built.

Decode (a few rows) streams the weight and wants small-M kernels; prefill is tensor-core bound
and wants large tiles. A layer therefore holds a small table ``M range -> kernel``; the call path
does a bucket lookup and nothing else. In batch-invariant mode (``QLINEAR_BATCH_INVARIANT=1``)
the table has a single row, so every M runs the same kernel with the same tiles.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass

from ..platform import Platform
from .base import LayerConfig, LinearKernel, m_range_label
from .modes import batch_invariant_mode, fuse_activation_quantization
from .registry import Selection, select_kernel

DECODE_MAX_M = 64  # decode buckets end here; prefill-only kernels (large tiles, dequantized weight) start above
M_BUCKETS: tuple[tuple[int, int | None], ...] = (
    (1, 1), (2, 16), (17, DECODE_MAX_M), (DECODE_MAX_M + 1, 1024), (1025, None))


def bucket_label(m: int) -> str:
    """The label (``"1"``, ``"2-16"``, ...) of the :data:`M_BUCKETS` bucket holding ``m`` rows."""
    lo, hi = next((lo, hi) for lo, hi in M_BUCKETS if hi is None or m <= hi)
    return m_range_label(lo, hi)


@dataclass(frozen=True)
class Route:
    """Rows ``min_m..max_m`` (``max_m=None``: no upper bound) run ``selection.kernel``."""

    min_m: int
    max_m: int | None
    selection: Selection

    @property
    def label(self) -> str:
        return m_range_label(self.min_m, self.max_m)


@dataclass(frozen=True)
class Dispatch:
    """A layer's table of routes, ordered by M, covering every M >= 1."""

    routes: tuple[Route, ...]

    @classmethod
    def single(cls, kernel: type[LinearKernel]) -> Dispatch:
        """Every M on one kernel (tests, forced choices)."""
        return cls((Route(1, None, Selection(kernel)),))

    def kernels(self) -> list[type[LinearKernel]]:
        """The distinct kernels of the table, in first-use order."""
        seen: dict[str, type[LinearKernel]] = {}
        for r in self.routes:
            seen.setdefault(r.selection.kernel.name, r.selection.kernel)
        return list(seen.values())

    def kernel_names(self) -> str:
        return "+".join(k.name for k in self.kernels())

    def quantizes_input_outside(self, config: LayerConfig) -> bool:
        """Whether, under ``torch.compile``, x is quantized in PyTorch ops outside the layer's op (for
        the compiler to fuse): every kernel of the table takes x quantized per token
        (:meth:`LinearKernel.takes_quantized_input`) and ``QLINEAR_FUSE_ACT_QUANT`` is not ``0``."""
        return fuse_activation_quantization() and all(k(config).takes_quantized_input() for k in self.kernels())

    def to_dict(self) -> dict:
        return {"dispatch": [{"m": r.label, **r.selection.to_dict()} for r in self.routes]}


def select_dispatch(
    config: LayerConfig,
    platform: Platform,
    *,
    backend: str | None = None,
    disabled: Iterable[str] = (),
    preferred: dict[str, str] | None = None,
) -> Dispatch:
    """Select a kernel for each M bucket of :data:`M_BUCKETS` (one bucket in batch-invariant mode).

    ``preferred`` maps a bucket label (``"1"``, ``"2-16"``, ...) to a measured kernel name that is
    tried first. Raises like :func:`~.registry.select_kernel`.
    """
    buckets = ((1, None),) if batch_invariant_mode() else M_BUCKETS
    preferred = preferred or {}
    routes = []
    for lo, hi in buckets:
        bucket = dataclasses.replace(config, min_m=lo, max_m=hi)
        sel = select_kernel(bucket, platform, backend=backend, disabled=disabled,
                            prefer=preferred.get(m_range_label(lo, hi)))
        routes.append(Route(lo, hi, sel))
    return Dispatch(tuple(routes))
