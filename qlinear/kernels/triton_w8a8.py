"""Triton W8A8 kernels on the shared scaled GEMM (:mod:`.triton.scaled_gemm`).

* ``triton_fp8_block``: 128x128 e4m3 weight blocks x dynamic 1x128 e4m3 activation groups.
  Decode may quantize the activation groups inside the GEMM (one launch; chosen per shape by
  measurement, see ``triton/configs.py``); otherwise one fused quantization pass, then the GEMM.
* ``triton_fp8_rowwise``: per-channel (or per-tensor) e4m3 weight x dynamic per-token e4m3 activation.
* ``triton_int8``: per-channel int8 weight x dynamic per-token int8 activation (int32 accumulation).
* ``triton_mxfp8``: MXFP8 (OCP MX) e4m3 weight x dynamic MXFP8 activation, both with e8m0 scales
  per 32 applied to each 32-wide K step's product on FP8 tensor cores.

All read the canonical weight buffers as stored (``[N, K]``, K contiguous); nothing is repacked.
"""
from __future__ import annotations

import dataclasses
import functools

import torch

from ..platform import FP8_TENSOR_CORES, Platform
from .base import OK, LayerConfig, LinearKernel, Verdict, require_cuda, spec_mismatch
from .modes import batch_invariant_mode

INT8_TRITON_MIN_CAPABILITY = 80  # Triton's int8 tl.dot lowers to mma.sync on Ampere and newer


@functools.cache
def _triton_error() -> str:
    try:
        import triton  # noqa: F401
    except ImportError as err:
        return f"triton is not installed ({err})"
    return ""


def _cuda_triton(platform: Platform, capability: int, what: str) -> Verdict:
    ok, reason = require_cuda(platform, capability, what)
    if not ok:
        return ok, reason
    error = _triton_error()
    return (False, error) if error else OK


class _TritonW8A8(LinearKernel):
    backend = "triton"
    batch_invariant = True  # with the fixed config used under QLINEAR_BATCH_INVARIANT=1

    scale_kind = "rowwise"
    min_capability: int = FP8_TENSOR_CORES
    hardware: str = "FP8 tensor cores"

    @classmethod
    def is_supported(cls, platform: Platform) -> Verdict:
        return _cuda_triton(platform, cls.min_capability, cls.hardware)

    def config_for(self, m: int):
        """``(GemmConfig, swap_ab)`` for ``m`` rows: fixed in batch-invariant mode."""
        from .triton.configs import BATCH_INVARIANT, pick_config

        if batch_invariant_mode():
            return (dataclasses.replace(BATCH_INVARIANT, block_k=32) if self.scale_kind == "mx" else BATCH_INVARIANT), False
        return pick_config(m, self.config.out_features, self.config.in_features, kind=self.scale_kind)


class TritonFp8BlockKernel(_TritonW8A8):
    name = "triton_fp8_block"
    scale_kind = "block"
    summary = "Triton FP8 128x128-block W x 1x128-group A; swapped decode GEMM, in-kernel quantization where faster"

    @classmethod
    def can_implement(cls, config: LayerConfig) -> Verdict:
        w, a = config.scheme.weight, config.scheme.activation
        ok = (
            w.dtype == "e4m3" and w.granularity == "block" and w.block_size == (128, 128) and w.scale_dtype == "fp32"
            and a is not None and a.dtype == "e4m3" and a.granularity == "group" and a.group_size == 128
            and a.dynamic and a.scale_dtype == "fp32"
        )
        return spec_mismatch(config, "e4m3 128x128-block weights with dynamic 1x128 e4m3 activations", ok)

    def apply(self, layer, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        from .triton.act_quant import quantize_per_group
        from .triton.configs import fuse_block_quant
        from .triton.scaled_gemm import scaled_gemm

        m = x.shape[0]
        cfg, swap = self.config_for(m)
        x = x.contiguous()
        # Decode may quantize x inside the GEMM (one launch; every program re-quantizes its tokens,
        # which cost 3x at M=64 on an H200): configs.fuse_block_quant holds the measured choice.
        if batch_invariant_mode() or fuse_block_quant(m, self.config.out_features, self.config.in_features):
            return scaled_gemm(x, layer.weight, None, layer.weight_scale, a_mode="group", b_mode="block",
                               config=cfg, out_dtype=x.dtype, bias=bias, quant_a=True, swap_ab=swap)
        q, s = quantize_per_group(x, 128)
        return scaled_gemm(q, layer.weight, s, layer.weight_scale, a_mode="group", b_mode="block",
                           config=cfg, out_dtype=x.dtype, bias=bias, swap_ab=swap, after_producer=True)


class _TritonRowwise(_TritonW8A8):
    """Per-channel weight x dynamic per-token activation, both of ``element`` type; scales in the epilogue."""

    element: str
    torch_dtype: torch.dtype
    weight_granularities: tuple[str, ...] = ("channel",)

    @classmethod
    def can_implement(cls, config: LayerConfig) -> Verdict:
        w, a = config.scheme.weight, config.scheme.activation
        ok = (
            w.dtype == cls.element and w.granularity in cls.weight_granularities and w.scale_dtype == "fp32"
            and w.symmetric and a is not None and a.dtype == cls.element and a.granularity == "token"
            and a.dynamic and a.symmetric
        )
        weights = "/".join(cls.weight_granularities)
        return spec_mismatch(config, f"{cls.element} per-{weights} weights with dynamic per-token {cls.element} activations", ok)

    def takes_quantized_input(self) -> bool:
        return True

    def apply(self, layer, x, bias):
        from .triton.act_quant import quantize_per_token

        q, s = quantize_per_token(x.contiguous(), self.torch_dtype)
        return self._gemm(layer, q, s, bias, x.dtype, after_producer=True)

    def apply_quantized(self, layer, q, scale, bias, out_dtype):
        return self._gemm(layer, q, scale, bias, out_dtype, after_producer=False)

    def _gemm(self, layer, q, scale, bias, out_dtype, *, after_producer):
        from .triton.scaled_gemm import scaled_gemm

        cfg, swap = self.config_for(q.shape[0])
        b_mode = "tensor" if self.config.scheme.weight.granularity == "tensor" else "channel"
        return scaled_gemm(q, layer.weight, scale, layer.weight_scale, a_mode="token", b_mode=b_mode,
                           config=cfg, out_dtype=out_dtype, bias=bias, swap_ab=swap, after_producer=after_producer)


class TritonFp8RowwiseKernel(_TritonRowwise):
    name = "triton_fp8_rowwise"
    summary = ("Triton FP8 per-channel/per-tensor W x dynamic per-token A (fused per-token quantization; "
               "products added in fp32 every 256 of K)")
    element, torch_dtype = "e4m3", torch.float8_e4m3fn
    weight_granularities = ("channel", "tensor")


class TritonInt8Kernel(_TritonRowwise):
    name = "triton_int8"
    summary = "Triton INT8 W8A8: per-channel W x dynamic per-token A, int32 accumulation"
    element, torch_dtype = "int8", torch.int8
    min_capability, hardware = INT8_TRITON_MIN_CAPABILITY, "INT8 mma in Triton"


class TritonMxfp8Kernel(_TritonW8A8):
    name = "triton_mxfp8"
    scale_kind = "mx"
    summary = ("Triton MXFP8 W8A8 on FP8 tensor cores: e8m0 scales per 32 applied per K step; "
               "fused MXFP8 activation quantization")

    @classmethod
    def can_implement(cls, config: LayerConfig) -> Verdict:
        w, a = config.scheme.weight, config.scheme.activation

        def mx(spec):
            return (spec is not None and spec.dtype == "e4m3" and spec.granularity == "group"
                    and spec.group_size == 32 and spec.scale_dtype == "e8m0")

        return spec_mismatch(config, "MXFP8 weights with dynamic MXFP8 activations", mx(w) and mx(a) and a.dynamic)

    def apply(self, layer, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        from .triton.act_quant import quantize_per_group
        from .triton.scaled_gemm import scaled_gemm

        cfg, swap = self.config_for(x.shape[0])
        q, s = quantize_per_group(x.contiguous(), 32, e8m0=True)
        return scaled_gemm(q, layer.weight, s, layer.weight_scale, a_mode="mx", b_mode="mx",
                           config=cfg, out_dtype=x.dtype, bias=bias, swap_ab=swap, after_producer=True)
