"""Quantization specs: what a quantized tensor looks like, described as data.

A :class:`TensorSpec` says how one operand (weight or activation) is quantized; a
:class:`~qlinear.schemes.Scheme` pairs a weight spec with an activation spec.
Kernels decide what they can run by reading these fields, never by scheme name.

Granularity (the "tile" that shares one scale), for a 2-D tensor ``[rows, cols]``
where ``cols`` is the reduction dimension K:

========== ======================== =========================================
granularity tile shape               scale shape
========== ======================== =========================================
tensor     ``[rows, cols]``          ``[1, 1]``
channel    ``[1, cols]`` (weight)    ``[rows, 1]``
token      ``[1, cols]`` (activation)``[rows, 1]``
group      ``[1, group_size]``       ``[rows, ceil(cols / group_size)]``
block      ``block_size``            ``[ceil(rows/b0), ceil(cols/b1)]``
========== ======================== =========================================

Ragged edges use ceil: the last tile is smaller and its scale covers only real elements.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ElementType = Literal["e4m3", "int8", "e2m1"]
Granularity = Literal["tensor", "channel", "token", "group", "block"]
ScaleType = Literal["fp32", "e8m0", "e4m3"]


@dataclass(frozen=True)
class TensorSpec:
    """How one operand is quantized.

    Attributes:
        dtype: element type: ``e4m3`` (FP8 e4m3fn), ``int8`` or ``e2m1`` (FP4, packed two per uint8).
        granularity: which elements share a scale (see module docstring).
        group_size: elements per scale along K for ``group`` granularity (16 NVFP4, 32 MX, 128 FP8 groups).
        block_size: ``(rows, cols)`` for ``block`` granularity, e.g. ``(128, 128)``.
        scale_dtype: ``fp32``, ``e8m0`` (OCP MX shared exponent, stored uint8) or ``e4m3`` (NVFP4).
        dynamic: scales computed from the tensor at run time (activations) rather than stored.
        symmetric: no zero point. Asymmetric is defined for INT8 only.
        global_scale: second-level fp32 scale (NVFP4): ``"tensor"`` or ``"token"`` (per row), or None.
    """

    dtype: ElementType
    granularity: Granularity
    group_size: int | None = None
    block_size: tuple[int, int] | None = None
    scale_dtype: ScaleType = "fp32"
    dynamic: bool = False
    symmetric: bool = True
    global_scale: Literal["tensor", "token"] | None = None

    def __post_init__(self) -> None:
        if self.granularity == "group" and not self.group_size:
            raise ValueError("granularity 'group' needs group_size")
        if self.granularity == "block" and not self.block_size:
            raise ValueError("granularity 'block' needs block_size")
        if not self.symmetric and self.dtype != "int8":
            raise ValueError(f"asymmetric quantization is defined for int8 only, not {self.dtype}")

    def tile(self, rows: int, cols: int) -> tuple[int, int]:
        """The ``(tile_rows, tile_cols)`` that share one scale in a ``[rows, cols]`` tensor."""
        if self.granularity == "tensor":
            return max(rows, 1), max(cols, 1)
        if self.granularity in ("channel", "token"):
            return 1, max(cols, 1)
        if self.granularity == "group":
            return 1, self.group_size
        return self.block_size

    @property
    def k_multiple(self) -> int:
        """K must be a multiple of this (1 when ragged groups are allowed).

        MX (OCP MX v1.0) and NVFP4 define their 32/16-element blocks over whole blocks only,
        so those formats require K divisible by the group; FP8 1x128 groups and 128x128
        blocks allow a ragged last tile.
        """
        if self.granularity == "group" and self.scale_dtype in ("e8m0", "e4m3"):
            return self.group_size
        return 1

    def describe(self) -> str:
        parts = [self.dtype]
        if self.granularity == "group":
            parts.append(f"group_size={self.group_size}")
        elif self.granularity == "block":
            parts.append(f"block_size={self.block_size[0]}x{self.block_size[1]}")
        else:
            parts.append(f"per-{self.granularity}")
        parts.append(f"scale={self.scale_dtype}")
        if self.global_scale:
            parts.append(f"global={self.global_scale}")
        parts.append("dynamic" if self.dynamic else "static")
        if not self.symmetric:
            parts.append("asymmetric")
        return " ".join(parts)
