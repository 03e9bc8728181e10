"""Kernel registry and the one selection path.

Each platform kind (``cuda``, ``rocm``, ``xpu``, ``cpu``) has a priority list of kernel
classes; the emulation kernel closes every list. :func:`select_kernel` walks the list once
per layer, when the layer is built, and returns the winner together with every rejected
candidate and its reason. Nothing is decided at call time.

Environment:
    QLINEAR_BACKEND: force a kernel name or backend (``cublas``, ``torch``, ``emulation``, ...);
        ``auto`` or unset selects by priority. Overridden by an explicit ``backend=`` argument.
    QLINEAR_DISABLED_KERNELS: comma-separated kernel names never to select.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass, field

from ..platform import Platform
from .base import LayerConfig, LinearKernel
from .emulation import EmulationKernel
from .modes import batch_invariant_mode

log = logging.getLogger("qlinear")

PLATFORM_KINDS = ("cuda", "rocm", "xpu", "cpu")
_PRIORITIES: dict[str, list[type[LinearKernel]]] = {kind: [] for kind in PLATFORM_KINDS}
FALLBACK: type[LinearKernel] = EmulationKernel


class NoKernelError(ValueError):
    """No kernel can run a layer (or a forced one cannot); the message lists every reason."""


def register_kernel(
    kernel: type[LinearKernel], platforms: Iterable[str], *, index: int | None = None
) -> None:
    """Add ``kernel`` to the priority list of each platform kind in ``platforms``.

    Third-party packages call this to plug in kernels. ``index`` is the position in the list
    (0 = highest priority); by default the kernel goes last, still ahead of emulation.

    Raises:
        ValueError: a name already registered for another class, or an empty ``name``.
    """
    if not getattr(kernel, "name", ""):
        raise ValueError(f"{kernel.__qualname__} has no name")
    for other in all_kernels():
        if other.name == kernel.name and other is not kernel:
            raise ValueError(f"kernel name {kernel.name!r} is already registered by {other.__qualname__}")
    for kind in platforms:
        ranked = _PRIORITIES.setdefault(kind, [])
        if kernel in ranked:
            continue
        ranked.insert(len(ranked) if index is None else index, kernel)


def candidates(platform: Platform) -> list[type[LinearKernel]]:
    """The kernels tried for ``platform``, highest priority first (emulation last)."""
    return [*_PRIORITIES.get(platform.kind, []), FALLBACK]


def fast_candidates(config: LayerConfig, platform: Platform) -> list[type[LinearKernel]]:
    """Every non-fallback kernel that runs on ``platform`` and implements ``config`` (what tuning and
    benchmarks time against each other)."""
    return [k for k in all_kernels()
            if not k.fallback and k.is_supported(platform)[0] and k.can_implement(config)[0]]


def all_kernels() -> list[type[LinearKernel]]:
    """Every registered kernel once, in first-seen priority order."""
    seen: dict[str, type[LinearKernel]] = {}
    for ranked in _PRIORITIES.values():
        for k in ranked:
            seen.setdefault(k.name, k)
    seen.setdefault(FALLBACK.name, FALLBACK)
    return list(seen.values())


@dataclass(frozen=True)
class Rejection:
    kernel: str
    reason: str


@dataclass(frozen=True)
class Selection:
    """The outcome of selection for one layer.

    Attributes:
        kernel: the chosen kernel class.
        rejected: every candidate tried before it, in priority order, with its reason.
        forced: the backend/kernel name the user forced, if any.
        measured: True when the kernel won as a measured choice (``qlinear tune``'s cache or the GPU's
            built-in default in :mod:`qlinear.tuning`; tried first).
        deviation: how the chosen kernel's numbers differ from the scheme (see ``LinearKernel.deviation``).
    """

    kernel: type[LinearKernel]
    rejected: tuple[Rejection, ...] = field(default_factory=tuple)
    forced: str | None = None
    measured: bool = False
    deviation: str = ""

    def to_dict(self) -> dict:
        return {
            "kernel": self.kernel.name,
            "forced": self.forced,
            "measured": self.measured,
            "deviation": self.deviation,
            "rejected": [{"kernel": r.kernel, "reason": r.reason} for r in self.rejected],
        }


def _env_list(name: str) -> set[str]:
    return {s.strip() for s in os.environ.get(name, "").split(",") if s.strip()}


def _verdict(kernel: type[LinearKernel], config: LayerConfig, platform: Platform, disabled: set[str]) -> str:
    """Empty string if ``kernel`` can run ``config`` on ``platform``, else why not."""
    if kernel.name in disabled:
        return "disabled by QLINEAR_DISABLED_KERNELS"
    if batch_invariant_mode() and not kernel.batch_invariant:
        return "not batch-invariant (QLINEAR_BATCH_INVARIANT=1)"
    ok, reason = kernel.is_supported(platform)
    if not ok:
        return reason
    ok, reason = kernel.can_implement(config)
    return "" if ok else reason


_warned: set[str] = set()
_planning_only = False


@contextmanager
def planning_only():
    """Within this block, layers are built to be planned for another platform, not run here: a
    fallback selected for this machine is not warned about (nor marked as warned)."""
    global _planning_only
    previous, _planning_only = _planning_only, True
    try:
        yield
    finally:
        _planning_only = previous


def select_kernel(
    config: LayerConfig,
    platform: Platform,
    *,
    backend: str | None = None,
    disabled: Iterable[str] = (),
    prefer: str | None = None,
) -> Selection:
    """Choose the kernel for one layer (and one range of M, ``config.min_m..max_m``).

    Args:
        config: the layer (scheme, shape, M range).
        platform: where it will run.
        backend: force a kernel name or backend name; None reads ``QLINEAR_BACKEND``; ``auto`` selects.
        disabled: kernel names to skip, added to ``QLINEAR_DISABLED_KERNELS``.
        prefer: a kernel name tried first (a measured choice, :func:`qlinear.tuning.tuned_choices`); it still has
            to pass every check.

    Returns:
        The chosen kernel and every rejected candidate with its reason.

    Raises:
        NoKernelError: nothing fits, or the forced backend cannot run this layer; lists every reason.
        ValueError: the forced backend names no registered kernel.
    """
    if backend is None:
        backend = os.environ.get("QLINEAR_BACKEND") or None
    if backend == "auto":
        backend = None
    disabled_set = _env_list("QLINEAR_DISABLED_KERNELS") | set(disabled)
    pool = candidates(platform)
    if prefer is not None:
        pool = sorted(pool, key=lambda k: k.name != prefer)
    if backend is not None:
        pool = [k for k in all_kernels() if backend in (k.name, k.backend)]
        if not pool:
            names = sorted({k.name for k in all_kernels()} | {k.backend for k in all_kernels()})
            raise ValueError(f"unknown backend {backend!r}; known kernels and backends: {', '.join(names)}")

    rejected: list[Rejection] = []
    for kernel in pool:
        reason = _verdict(kernel, config, platform, disabled_set)
        if not reason:
            selection = Selection(kernel, tuple(rejected), backend, measured=kernel.name == prefer,
                                  deviation=kernel.deviation(config))
            _warn_if_fallback(selection, config, platform)
            return selection
        rejected.append(Rejection(kernel.name, reason))

    lines = "\n".join(f"  {r.kernel}: {r.reason}" for r in rejected)
    what = f"forced backend {backend!r} cannot run" if backend else "no kernel can run"
    raise NoKernelError(f"{what} {config.describe()} on {platform.describe()}:\n{lines}")


def _warn_if_fallback(selection: Selection, config: LayerConfig, platform: Platform) -> None:
    if _planning_only or not selection.kernel.fallback or not selection.rejected or selection.forced:
        return
    reasons = "; ".join(f"{r.kernel}: {r.reason}" for r in selection.rejected)
    message = (
        f"{config.scheme.name} on {platform.describe()} falls back to the slow {selection.kernel.name} "
        f"kernel because faster kernels were rejected ({reasons})"
    )
    if message not in _warned:
        _warned.add(message)
        log.warning(message)
