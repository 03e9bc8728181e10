"""One quantized Linear's tensors on disk: their names, dtypes, shapes and scale conventions.

Every format qlinear reads (compressed-tensors, ``quant_method: "fp8"``, ModelOpt) stores a Linear as
an element tensor, a scale tensor and, for some schemes, a second-level NVFP4 scale and a static
activation scale. Only the names and two conventions differ (``shared/reference/checkpoint-formats.md``):
compressed-tensors' NVFP4 ``weight_global_scale`` is a divisor, every other scale a multiplier.
:class:`OnDisk` names them; :func:`read_linear` checks and converts them to qlinear's canonical
:class:`~qlinear.formats.QuantizedTensor` (one convention inside: every scale a multiplier);
:func:`linear_tensors` is its inverse for the writer.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from ..formats import QuantizedTensor, nvfp4
from ..schemes import Scheme
from ..spec import TensorSpec

# Dtypes of float scales in real checkpoints: f32 (DeepSeek, ModelOpt), bf16/f16 (Qwen, llm-compressor
# in the model's dtype), e8m0 (DeepSeek-V4 ``scale_fmt: ue8m0``).
FLOAT_SCALE_DTYPES = (torch.float32, torch.bfloat16, torch.float16, torch.float8_e8m0fnu)


class CheckpointError(ValueError):
    """A checkpoint file or tensor is missing, malformed or inconsistent; the message names it."""


@dataclass(frozen=True)
class OnDisk:
    """Tensor names (suffixes after ``<layer>.``) of one quantized Linear in a checkpoint format.

    Attributes:
        weight: the elements (``weight``; compressed-tensors calls packed FP4 ``weight_packed``).
        scale: the per-tensor/channel/block/group dequant multipliers.
        global_scale: NVFP4's fp32 second-level scale, or None.
        global_is_divisor: True where the file stores ``2688 / amax`` (compressed-tensors) rather
            than the multiplier ``amax / 2688`` (ModelOpt ``weight_scale_2``).
        input_scale: the static activation multiplier (``fp8_static``), or None.
    """

    weight: str = "weight"
    scale: str = "weight_scale"
    global_scale: str | None = None
    global_is_divisor: bool = False
    input_scale: str | None = None

    def names(self) -> list[str]:
        return [n for n in (self.weight, self.scale, self.global_scale, self.input_scale) if n]


def element_dtype(spec: TensorSpec) -> torch.dtype:
    return {"e4m3": torch.float8_e4m3fn, "int8": torch.int8, "e2m1": torch.uint8}[spec.dtype]


def stored_shape(spec: TensorSpec, n: int, k: int) -> tuple[int, int]:
    """Element tensor shape: ``[N, K]``, or ``[N, K/2]`` for two e2m1 codes per byte."""
    return (n, k // 2) if spec.dtype == "e2m1" else (n, k)


def scale_grid(spec: TensorSpec, n: int, k: int) -> tuple[int, int]:
    """Canonical scale shape: one per tile of ``spec.tile`` (ceil on ragged edges)."""
    tr, tc = spec.tile(n, k)
    return -(-n // tr), -(-k // tc)


def _same_grid(shape: tuple[int, ...], grid: tuple[int, int]) -> bool:
    """Scalars are stored as ``[]``, ``[1]`` or ``[1, 1]``, per-channel scales as ``[N]`` or ``[N, 1]``:
    the same numbers in the same order, so any shape with the grid's non-unit sizes is accepted."""
    return math.prod(shape) == math.prod(grid) and [d for d in shape if d != 1] == [d for d in grid if d != 1]


Getter = Callable[[str], tuple[torch.Tensor, Path]]


def _fail(file: Path, name: str, problem: str) -> CheckpointError:
    return CheckpointError(f"{file}: tensor {name} {problem}")


def _scalar(get: Getter, name: str, what: str) -> torch.Tensor:
    t, file = get(name)
    if t.numel() != 1 or t.dtype not in FLOAT_SCALE_DTYPES:
        raise _fail(file, name, f"has shape {tuple(t.shape)} and dtype {t.dtype}, expected one float number ({what})")
    value = t.float().reshape(())
    if not bool(torch.isfinite(value)) or float(value) <= 0:
        raise _fail(file, name, f"is {float(value)}, expected a finite positive {what}")
    return value


def _scale(get: Getter, name: str, spec: TensorSpec, n: int, k: int) -> torch.Tensor:
    t, file = get(name)
    grid = scale_grid(spec, n, k)
    if spec.scale_dtype == "e8m0":
        dtypes, shape_ok = (torch.uint8, torch.float8_e8m0fnu), tuple(t.shape) == grid
    elif spec.scale_dtype == "e4m3":
        dtypes, shape_ok = (torch.float8_e4m3fn,), tuple(t.shape) == grid
    else:
        dtypes, shape_ok = FLOAT_SCALE_DTYPES, _same_grid(tuple(t.shape), grid)
    if not shape_ok:
        raise _fail(file, name, f"has shape {tuple(t.shape)}, expected {grid}")
    if t.dtype not in dtypes:
        raise _fail(file, name, f"has dtype {t.dtype}, expected one of {dtypes}")
    if spec.scale_dtype == "e8m0":
        t = t.view(torch.uint8)
        bad = int((t == 255).sum())  # e8m0 0xFF is NaN (OCP MX v1.0)
    else:
        bad = int((~torch.isfinite(t.float())).sum())
    if bad:
        raise _fail(file, name, f"has NaN/Inf values ({bad} of {t.numel()})")
    return t.contiguous() if spec.scale_dtype != "fp32" else t.float().reshape(grid)


def read_linear(get: Getter, layer: str, scheme: Scheme, on_disk: OnDisk, n: int, k: int
                ) -> tuple[QuantizedTensor, torch.Tensor | None]:
    """``(weight, input_scale)`` of Linear ``layer`` ``[n, k]`` stored as ``on_disk``.

    ``get(tensor_name)`` returns ``(tensor, file)`` and raises :class:`CheckpointError` naming the
    layer when the tensor is missing.

    Raises:
        CheckpointError: a tensor of wrong dtype or shape, NaN/Inf or non-positive scales (the
            message names the file and the tensor), or in_features not divisible by the scheme's
            group size (names the layer).
    """
    spec = scheme.weight
    if k % scheme.k_multiple:
        raise CheckpointError(f"layer {layer} [{n}x{k}]: in_features {k} is not divisible by {scheme.k_multiple}, "
                              f"the group size of {scheme.name}")
    wname = f"{layer}.{on_disk.weight}"
    w, file = get(wname)
    if tuple(w.shape) != stored_shape(spec, n, k):
        raise _fail(file, wname, f"has shape {tuple(w.shape)}, expected {stored_shape(spec, n, k)}")
    if w.dtype != element_dtype(spec):
        raise _fail(file, wname, f"has dtype {w.dtype}, expected {element_dtype(spec)}")
    scale = _scale(get, f"{layer}.{on_disk.scale}", spec, n, k)
    global_scale = None
    if spec.global_scale:
        stored = _scalar(get, f"{layer}.{on_disk.global_scale}", "NVFP4 global scale")
        global_scale = nvfp4.global_scale_from_divisor(stored) if on_disk.global_is_divisor else stored
    input_scale = None
    if scheme.static_activation:
        input_scale = _scalar(get, f"{layer}.{on_disk.input_scale}", "static activation scale")
    return QuantizedTensor(w, scale, spec, (n, k), global_scale=global_scale), input_scale


def linear_tensors(layer: str, weight: QuantizedTensor, input_scale: torch.Tensor | None, on_disk: OnDisk
                   ) -> dict[str, torch.Tensor]:
    """The inverse of :func:`read_linear`: tensors to save for one Linear (float scales in float32,
    exact; scalars as ``[1]``, as compressed-tensors writes them)."""
    spec = weight.spec
    out = {f"{layer}.{on_disk.weight}": weight.data}
    scale = weight.scale
    if spec.scale_dtype == "fp32":
        scale = scale.float().reshape(1) if spec.granularity == "tensor" else scale.float()
    out[f"{layer}.{on_disk.scale}"] = scale
    if spec.global_scale:
        g = weight.global_scale.float()
        out[f"{layer}.{on_disk.global_scale}"] = (nvfp4.global_scale_to_divisor(g) if on_disk.global_is_divisor else g).reshape(1)
    if input_scale is not None:
        out[f"{layer}.{on_disk.input_scale}"] = input_scale.float().reshape(1)
    return {name: t.detach().contiguous().cpu() for name, t in out.items()}
