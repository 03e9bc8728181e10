"""Quantize and dequantize any :class:`~qlinear.spec.TensorSpec`: the single numerical truth.

Every kernel in qlinear is checked against :func:`dequantize`; every quantized weight is
produced by :func:`quantize`. Rounding rules live in the per-format modules
(:mod:`.fp8`, :mod:`.int8`, :mod:`.e2m1`, :mod:`.e8m0`, :mod:`.nvfp4`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..spec import TensorSpec
from . import e2m1, e8m0, fp8, int8, nvfp4
from .tiles import from_tiles, per_tile, to_tiles

ELEMENT_MAX = {"e4m3": fp8.E4M3_MAX, "e2m1": e2m1.E2M1_MAX, "int8": int8.INT8_SYMMETRIC_MAX}


@dataclass
class QuantizedTensor:
    """A quantized 2-D tensor ``[rows, cols]`` (cols = K, the reduction dimension).

    Attributes:
        data: ``float8_e4m3fn [rows, cols]``, ``int8 [rows, cols]`` or, for e2m1,
            ``uint8 [rows, cols/2]`` (two codes per byte, even element in the low nibble).
        scale: dequant multipliers, shape ``spec.tile`` grid ``[ceil(rows/tr), ceil(cols/tc)]``;
            float32, uint8 (e8m0) or float8_e4m3fn (NVFP4 block scales).
        spec: how it was quantized.
        shape: logical ``(rows, cols)``.
        global_scale: NVFP4 fp32 decode multiplier: 0-d (per tensor) or ``[rows, 1]`` (per token).
        zero_point: int32, same shape as ``scale``, asymmetric INT8 only.
    """

    data: torch.Tensor
    scale: torch.Tensor
    spec: TensorSpec
    shape: tuple[int, int]
    global_scale: torch.Tensor | None = None
    zero_point: torch.Tensor | None = None

    def tensors(self) -> dict[str, torch.Tensor]:
        out = {"data": self.data, "scale": self.scale}
        if self.global_scale is not None:
            out["global_scale"] = self.global_scale
        if self.zero_point is not None:
            out["zero_point"] = self.zero_point
        return out

    def to(self, device: torch.device | str) -> QuantizedTensor:
        """The same tensor with its data and scales on ``device``."""
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        return QuantizedTensor(move(self.data), move(self.scale), self.spec, self.shape,
                               move(self.global_scale), move(self.zero_point))

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.tensors().values())


def _check_input(x: torch.Tensor, spec: TensorSpec) -> None:
    if x.dim() != 2:
        raise ValueError(f"quantize expects a 2-D [rows, K] tensor, got shape {tuple(x.shape)}")
    if x.shape[1] % spec.k_multiple:
        raise ValueError(
            f"{spec.describe()} needs K divisible by {spec.k_multiple}, got K={x.shape[1]}"
        )


def quantize(
    x: torch.Tensor,
    spec: TensorSpec,
    *,
    tensor_amax: torch.Tensor | None = None,
    scale: torch.Tensor | None = None,
) -> QuantizedTensor:
    """Quantize a 2-D tensor ``x [rows, K]`` (any float dtype) to ``spec``.

    Args:
        x: the tensor; computed in float32.
        spec: target spec; activation specs (token/group) and weight specs use the same code.
        tensor_amax: max |x| over the whole tensor, when ``x`` is one chunk of a larger tensor
            (per-tensor scale, NVFP4 per-tensor global). Defaults to this tensor's own amax.
        scale: a given fp32 per-tensor dequant multiplier (a static, calibrated activation scale,
            e.g. a checkpoint's ``input_scale``) instead of one computed from ``x``; values beyond
            ``scale * element max`` saturate.

    Raises:
        ValueError: ``x`` not 2-D, K not a multiple of the format's group (MX 32, NVFP4 16), or a
            given ``scale`` for a spec that is not per-tensor fp32.
    """
    _check_input(x, spec)
    if scale is not None:
        return _quantize_with_scale(x, spec, scale)
    shape = (x.shape[0], x.shape[1])
    tile = spec.tile(*shape)
    xf = x.float()
    tiles = to_tiles(xf, tile)
    if spec.granularity == "tensor" and tensor_amax is not None:
        amax = tensor_amax.float().reshape(1, 1)
    else:
        amax = tiles.abs().amax(dim=(1, 3))

    if spec.dtype == "int8" and not spec.symmetric:
        scale, zp = int8.asymmetric_params(tiles.amin(dim=(1, 3)), tiles.amax(dim=(1, 3)))
        q = int8.round_asymmetric(tiles / per_tile(scale), per_tile(zp))
        return QuantizedTensor(from_tiles(q, shape).contiguous(), scale, spec, shape, zero_point=zp)

    global_scale = None
    if spec.scale_dtype == "e8m0":
        exponent = e8m0.exponent_for(amax, ELEMENT_MAX[spec.dtype])
        scale = e8m0.encode(exponent)
        real_scale = torch.exp2(exponent.float())
    elif spec.scale_dtype == "e4m3":
        if spec.global_scale == "tensor":
            g_amax = tensor_amax if tensor_amax is not None else xf.abs().amax()
            global_scale = nvfp4.global_scale_from_amax(g_amax).reshape(())
        else:
            global_scale = nvfp4.global_scale_from_amax(xf.abs().amax(dim=1, keepdim=True))
        scale = nvfp4.block_scales(amax, global_scale)
        real_scale = scale.float() * global_scale
    elif spec.dtype == "int8":
        scale = real_scale = int8.symmetric_scale(amax)
    else:
        scale = real_scale = fp8.scale_from_amax(amax)

    safe = torch.where(real_scale > 0, real_scale, torch.ones_like(real_scale))
    if spec.scale_dtype == "e4m3":
        scaled = from_tiles(tiles / per_tile(safe), shape)
    else:
        # Multiply by the fp32 reciprocal of the scale, as the fused GPU kernels do (one multiply per
        # element instead of a division); exact for e8m0's powers of two.
        scaled = from_tiles(tiles * per_tile(torch.reciprocal(safe)), shape)
    if spec.dtype == "e4m3":
        data = fp8.to_e4m3(scaled)
    elif spec.dtype == "int8":
        data = int8.round_symmetric(scaled)
    else:
        data = e2m1.pack(e2m1.encode(scaled))
    return QuantizedTensor(data.contiguous(), scale, spec, shape, global_scale=global_scale)


def _quantize_with_scale(x: torch.Tensor, spec: TensorSpec, scale: torch.Tensor) -> QuantizedTensor:
    if spec.granularity != "tensor" or spec.scale_dtype != "fp32" or spec.dtype == "e2m1":
        raise ValueError(f"a given (static) scale needs a per-tensor e4m3/int8 spec, got {spec.describe()}")
    s = scale.float().reshape(1, 1)
    scaled = x.float() * torch.reciprocal(s)
    data = fp8.to_e4m3(scaled) if spec.dtype == "e4m3" else int8.round_symmetric(scaled)
    return QuantizedTensor(data.contiguous(), s, spec, (x.shape[0], x.shape[1]))


def concat_rows(parts: list[QuantizedTensor]) -> QuantizedTensor:
    """Join quantized row-chunks of one tensor (quantized with the same ``tensor_amax``).

    Every chunk but the last must hold a whole number of tile rows. A per-tensor scale and a
    per-tensor global scale are the same in every chunk and are kept once.
    """
    first = parts[0]
    if len(parts) == 1:
        return first
    per_tensor = first.spec.granularity == "tensor"

    def cat(name):
        values = [getattr(p, name) for p in parts]
        return None if values[0] is None else torch.cat(values)

    rows = sum(p.shape[0] for p in parts)
    scale = first.scale if per_tensor else cat("scale")
    global_scale = first.global_scale if first.spec.global_scale == "tensor" else cat("global_scale")
    zero_point = None if first.zero_point is None else (first.zero_point if per_tensor else cat("zero_point"))
    return QuantizedTensor(cat("data"), scale, first.spec, (rows, first.shape[1]), global_scale, zero_point)


def quantize_in_row_chunks(
    x: torch.Tensor, spec: TensorSpec, chunk_rows: int = 1024, reference: torch.Tensor | None = None,
    measure: bool = True,
) -> tuple[QuantizedTensor, float | None]:
    """:func:`quantize` ``x [rows, K]`` a few rows at a time; returns ``(quantized, sqnr_db)``.

    Identical to quantizing the whole tensor, but only one chunk is ever held in float32 (the
    weight's own dtype is read as is), so quantizing a layer costs about ``chunk_rows * K * 4``
    bytes more than its quantized size. ``chunk_rows`` is rounded to whole tile rows. The SQNR is
    measured against ``reference`` (same shape; default ``x``), chunk by chunk; with
    ``measure=False`` it is not (``sqnr_db`` is None: no float64 dequantization, e.g. when the
    result is converted again and only the converted weight's error is reported).

    Raises:
        ValueError: as :func:`quantize`; ``reference`` of another shape.
    """
    _check_input(x, spec)
    if reference is None:
        reference = x
    elif reference.shape != x.shape:
        raise ValueError(f"quantize_in_row_chunks: reference {tuple(reference.shape)} is not x's shape {tuple(x.shape)}")
    tile_rows = spec.tile(*x.shape)[0] if spec.granularity != "tensor" else 1
    step = max(tile_rows, chunk_rows // tile_rows * tile_rows)
    lo, hi = torch.aminmax(x)  # exact in x's own dtype, no float32 copy
    tensor_amax = torch.maximum(lo.abs(), hi.abs()).float()
    parts, signal, noise = [], 0.0, 0.0
    for start in range(0, x.shape[0], step):
        q = quantize(x[start : start + step], spec, tensor_amax=tensor_amax)
        if measure:
            ref = reference[start : start + step].double()
            signal += float(ref.pow(2).sum())
            noise += float((ref - dequantize(q, torch.float64)).pow(2).sum())
        parts.append(q)
    if not measure:
        return concat_rows(parts), None
    sqnr = float("inf") if noise == 0 else 10 * math.log10(signal / noise) if signal > 0 else float("-inf")
    return concat_rows(parts), sqnr


def requantize(q: QuantizedTensor, spec: TensorSpec, reference: torch.Tensor | None = None) -> tuple[QuantizedTensor, float]:
    """Convert a quantized tensor to another format: ``(converted, sqnr_db)``, the SQNR of the
    converted values against ``reference`` (e.g. the float weight ``q`` was made from, for the
    error of both steps), by default against ``q``'s own dequantized values (the conversion alone).

    Used to convert NVFP4/MXFP4 weights to FP8 at load, so that they run on FP8 tensor cores (vLLM
    PR #38728 does this for NVFP4 on Hopper). ``q`` is dequantized in float32 one layer at a time
    (e2m1 x e4m3 x fp32 global is exact in float32 but for the product of the two scales).

    Raises:
        ValueError: as :func:`quantize` (K not a multiple of ``spec``'s group); ``reference`` of
            another shape.
    """
    return quantize_in_row_chunks(dequantize(q, torch.float32), spec, reference=reference)


def element_values(q: QuantizedTensor) -> torch.Tensor:
    """The unscaled element values as float32 ``[rows, K]`` (zero point removed for asymmetric INT8)."""
    if q.spec.dtype == "e2m1":
        return e2m1.decode(e2m1.unpack(q.data))
    return q.data.float()


def scale_values(q: QuantizedTensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The real dequant multiplier per tile in ``dtype``, global scale folded in (computed in
    ``dtype``: float64 keeps the NVFP4 product of two scales exact)."""
    if q.spec.scale_dtype == "e8m0":
        return e8m0.decode(q.scale).to(dtype)
    if q.spec.scale_dtype == "e4m3":
        return q.scale.float().to(dtype) * q.global_scale.float().to(dtype)
    return q.scale.float().to(dtype)


def dequantize(q: QuantizedTensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Reconstruct ``[rows, K]`` as ``element * scale`` (``(q - zero_point) * scale`` for asymmetric INT8).

    Computed in float32 (float64 if ``dtype`` is float64), then cast to ``dtype``.
    """
    work = torch.float64 if dtype == torch.float64 else torch.float32
    values = element_values(q).to(work)
    tile = q.spec.tile(*q.shape)
    tiles = to_tiles(values, tile)
    if q.zero_point is not None:
        tiles = tiles - per_tile(q.zero_point.to(work))
    out = from_tiles(tiles * per_tile(scale_values(q, work)), q.shape)
    return out.to(dtype)


def fake_quantize(x: torch.Tensor, spec: TensorSpec, scale: torch.Tensor | None = None) -> torch.Tensor:
    """``dequantize(quantize(x))`` as float32: what a kernel's quantized operand represents.

    ``scale``: a static per-tensor multiplier (see :func:`quantize`); None computes it from ``x``.
    """
    return dequantize(quantize(x, spec, scale=scale))


def sqnr_db(reference: torch.Tensor, approx: torch.Tensor) -> float:
    """Signal-to-quantization-noise ratio ``10*log10(|ref|^2 / |ref - approx|^2)`` in dB (inf if exact)."""
    ref = reference.double()
    noise = (ref - approx.double()).pow(2).sum()
    if noise == 0:
        return float("inf")
    return float(10 * torch.log10(ref.pow(2).sum() / noise))
