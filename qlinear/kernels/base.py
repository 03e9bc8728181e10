"""The one kernel contract every qlinear kernel implements, for every scheme.

A kernel class answers two questions before it is chosen, and does two jobs after:

* ``is_supported(platform) -> (ok, reason)``: can this hardware run the kernel's dtypes at all
  (FP8 tensor cores need sm_89+, not merely "is CUDA").
* ``can_implement(config) -> (ok, reason)``: can it compute this layer (scheme, shape, dtype).
* ``prepare(layer)``: once, after the weights are loaded, repack them into the kernel's layout.
* ``apply(layer, x, bias)``: ``y = x @ W.T + bias`` for ``x [M, K]``, returning ``[M, N]`` in x's dtype.

Kernels that quantize x per token before their GEMM also offer ``apply_quantized`` (the GEMM on an
already quantized x), so that a compiler can fuse the quantization into the op that produced x.

State lives on the layer (its buffers move with ``.to()`` and appear in ``state_dict``); the
kernel instance holds only what ``prepare`` derived from the config (padded sizes, etc.).
"""
from __future__ import annotations

import functools
import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import torch

from ..platform import Platform
from ..schemes import Scheme

if TYPE_CHECKING:
    from ..layers.linear import QuantizedLinear

Verdict = tuple[bool, str]
OK: Verdict = (True, "")


@dataclass(frozen=True)
class LayerConfig:
    """What a kernel needs to know about a layer to decide if it can implement it.

    Attributes:
        scheme: the quantization scheme.
        out_features: N.
        in_features: K.
        has_bias: whether the layer adds a bias.
        name: the module's name in its model, for messages.
        min_m, max_m: the range of M (rows of x) this choice is for; ``max_m=None`` is unbounded.
            Decode and prefill sizes get separate choices (see :mod:`.dispatch`).
    """

    scheme: Scheme
    out_features: int
    in_features: int
    has_bias: bool = False
    name: str = ""
    min_m: int = 1
    max_m: int | None = None

    def describe(self) -> str:
        where = f"{self.name} " if self.name else ""
        rows = "" if (self.min_m, self.max_m) == (1, None) else f" M in {m_range_label(self.min_m, self.max_m)}"
        return f"{where}[{self.out_features}x{self.in_features}] {self.scheme.name}{rows}"


def m_range_label(min_m: int, max_m: int | None) -> str:
    if max_m is None:
        return f"{min_m}+"
    return str(min_m) if min_m == max_m else f"{min_m}-{max_m}"


class LinearKernel(ABC):
    """Base of all kernels. Subclasses set the class attributes and implement the four methods.

    Class attributes:
        name: unique name, used by ``QLINEAR_DISABLED_KERNELS`` and ``--backend``.
        backend: the library or method behind it (``cublas``, ``torch``, ``triton``, ``emulation``);
            forcing a backend forces all its kernels.
        fallback: True for last-resort kernels; choosing one after faster kernels were rejected warns.
        batch_invariant: True if a row's result never depends on M (fixed tiles, no split-K) when
            ``QLINEAR_BATCH_INVARIANT=1``; only such kernels are selected in that mode.
        summary: one line for ``qlinear kernels``.
    """

    name: ClassVar[str]
    backend: ClassVar[str]
    fallback: ClassVar[bool] = False
    batch_invariant: ClassVar[bool] = False
    summary: ClassVar[str] = ""

    def __init__(self, config: LayerConfig):
        self.config = config

    @classmethod
    @abstractmethod
    def is_supported(cls, platform: Platform) -> Verdict:
        """Whether ``platform`` can run this kernel at all; the reason when not."""

    @classmethod
    @abstractmethod
    def can_implement(cls, config: LayerConfig) -> Verdict:
        """Whether this kernel computes ``config``'s scheme and shape; the reason when not."""

    def prepare(self, layer: QuantizedLinear) -> None:
        """Derive the kernel's operand layout from ``layer``'s buffers, once, after loading.

        The layer's canonical buffers are shared by the kernels of its dispatch table and are never
        replaced; a kernel keeps its derived tensors (padded copies, transposed views) on itself.
        """

    @classmethod
    def deviation(cls, config: LayerConfig) -> str:
        """How this kernel's numbers knowingly differ from ``config``'s scheme ("" when they do not),
        e.g. a W4A4 scheme run weight-only. ``explain`` prints it beside the choice."""
        return ""

    @abstractmethod
    def apply(self, layer: QuantizedLinear, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        """``x [M, K]`` (bf16/fp16/fp32) -> ``[M, N]`` in ``x.dtype``."""

    def takes_quantized_input(self) -> bool:
        """True when ``apply`` starts by quantizing x per token to the scheme's activation spec, with
        the numbers of :func:`qlinear.formats.quantize`, and :meth:`apply_quantized` runs the rest.

        Under ``torch.compile`` a layer whose kernels all say so quantizes x in PyTorch ops instead,
        which the compiler fuses into the op that produced x (:mod:`qlinear.layers.compiled`).
        """
        return False

    def apply_quantized(self, layer: QuantizedLinear, q: torch.Tensor, scale: torch.Tensor,
                        bias: torch.Tensor | None, out_dtype: torch.dtype) -> torch.Tensor:
        """``[M, N]`` in ``out_dtype`` from x quantized per token: ``q [M, K]`` (the scheme's
        activation element type, K contiguous) and ``scale [M, 1]`` fp32 dequant multipliers.

        Raises:
            NotImplementedError: the kernel does not :meth:`take quantized input <takes_quantized_input>`.
        """
        raise NotImplementedError(f"{self.name} quantizes its input itself; it has no apply_quantized")


def require_cuda(platform: Platform, capability: int, what: str) -> Verdict:
    """OK on an NVIDIA GPU of at least ``capability`` (``major*10+minor``); else why not, naming ``what``."""
    if platform.kind != "cuda":
        return False, f"needs an NVIDIA GPU, platform is {platform.describe()}"
    if not platform.cuda_at_least(capability):
        return False, f"needs {what} (sm_{capability}+), {platform.describe()} has none"
    return OK


def require_cuda_exactly(platform: Platform, capability: int, what: str) -> Verdict:
    """OK on an NVIDIA GPU of exactly ``capability``: for instructions a later generation dropped
    (Hopper's wgmma, cuBLASLt's sm_90 blockwise FP8 scaling)."""
    ok, reason = require_cuda(platform, capability, what)
    if ok and platform.capability != capability:
        return False, f"{what} exists on sm_{capability} only, {platform.describe()}"
    return ok, reason


@functools.cache
def importable(module: str, what: str) -> Verdict:
    """OK when ``qlinear.kernels.<module>`` imports (the Triton/Gluon API it is written in exists in
    this installation); else why not, naming ``what``."""
    try:
        importlib.import_module(f"{__package__}.{module}")
    except ImportError as err:
        return False, f"{what} is not importable ({err})"
    return OK


def spec_mismatch(config: LayerConfig, accepted: str, ok: bool) -> Verdict:
    """A uniform rejection message: the scheme's specs against what the kernel accepts."""
    if ok:
        return OK
    return False, f"takes {accepted}; {config.scheme.name} is not"
