"""NVFP4 and MXFP8 W8A8/W4A4 on Blackwell block-scaled tensor cores, through ``torch._scaled_mm``.

sm_100+ only: Hopper and older have no FP4 or MX block-scaled MMA, and ``is_supported`` says so
(on our H100/H200 these kernels are registered and always rejected with that reason). cuBLASLt
takes both operands' block scales in the 128x4 swizzled layout (:mod:`qlinear.formats.swizzle`),
built once for the weight in ``prepare`` and per call for the activation; ``_scaled_mm`` checks
K and N for multiples of 16 elements of the packed operand. NVFP4's second-level scales (the
weight's per-tensor global, the activation's per-token global) factor out of the K sum and are
applied to the output.

Not run on hardware here: there is no sm_100 GPU in this project's reach. The operand layouts they
build are checked on the CPU (tests/test_kernels.py); their numerics are the reference's by
construction (same quantized operands, exact products, fp32 accumulation).
"""
from __future__ import annotations

import torch

from ..formats import quantize
from ..formats.swizzle import swizzle_128x4
from ..platform import FP4_MX_TENSOR_CORES, Platform
from .base import OK, LayerConfig, LinearKernel, Verdict, require_cuda, spec_mismatch


def _blockscaled_verdict(config: LayerConfig, accepted: str, ok: bool, k_multiple: int) -> Verdict:
    verdict = spec_mismatch(config, accepted, ok)
    if verdict[0] and (config.in_features % k_multiple or config.out_features % 16):
        return False, (f"cuBLASLt block-scaled GEMM needs in_features % {k_multiple} == 0 and out_features % 16 == 0, "
                       f"got {config.in_features} and {config.out_features}")
    return verdict


class _BlockScaledMM(LinearKernel):
    backend = "cublas"
    dtype_name: str  # the torch dtype the kernel needs, checked in is_supported
    # Both operands: element type, elements per scale along K, scale type; and the rejection text.
    element: str
    group_size: int
    scale_dtype: str
    accepted: str

    @classmethod
    def can_implement(cls, config: LayerConfig) -> Verdict:
        w, a = config.scheme.weight, config.scheme.activation

        def fits(spec) -> bool:
            return (spec is not None and spec.dtype == cls.element and spec.granularity == "group"
                    and spec.group_size == cls.group_size and spec.scale_dtype == cls.scale_dtype)

        nvfp4_global = w.global_scale == "tensor" if cls.scale_dtype == "e4m3" else w.global_scale is None
        return _blockscaled_verdict(config, cls.accepted, fits(w) and fits(a) and a.dynamic and nvfp4_global, 32)

    @classmethod
    def is_supported(cls, platform: Platform) -> Verdict:
        ok, reason = require_cuda(platform, FP4_MX_TENSOR_CORES, "FP4/MX block-scaled tensor cores")
        if not ok:
            return ok, reason
        if not hasattr(torch, cls.dtype_name):
            return False, f"torch {torch.__version__} has no torch.{cls.dtype_name}"
        return OK

    def prepare(self, layer) -> None:
        self.weight_t = self.operand(layer.weight).t()  # [K(packed), N] column-major, as _scaled_mm wants
        self.scale_b = self.scales(layer.weight_scale)

    def apply(self, layer, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        q = quantize(x, self.config.scheme.activation)
        y = torch._scaled_mm(self.operand(q.data), self.weight_t, scale_a=self.scales(q.scale),
                             scale_b=self.scale_b, out_dtype=torch.bfloat16).float()
        if q.global_scale is not None:
            y = y * (q.global_scale.float() * layer.weight_global_scale.float())
        if bias is not None:
            y = y + bias.float()
        return y.to(x.dtype)


class CublasNvfp4Kernel(_BlockScaledMM):
    name = "cublas_nvfp4"
    dtype_name = "float4_e2m1fn_x2"
    summary = "torch._scaled_mm NVFP4 W4A4 on FP4 tensor cores (e4m3 scales per 16, swizzled); sm_100+"
    element, group_size, scale_dtype = "e2m1", 16, "e4m3"
    accepted = "NVFP4 weights with dynamic NVFP4 activations (W4A4)"

    @staticmethod
    def operand(packed: torch.Tensor) -> torch.Tensor:
        return packed.view(torch.float4_e2m1fn_x2)

    @staticmethod
    def scales(scale: torch.Tensor) -> torch.Tensor:
        return swizzle_128x4(scale)


class CublasMxfp8Kernel(_BlockScaledMM):
    name = "cublas_mxfp8"
    dtype_name = "float8_e8m0fnu"
    summary = "torch._scaled_mm MXFP8 W8A8 on MX tensor cores (e8m0 scales per 32, swizzled); sm_100+"
    element, group_size, scale_dtype = "e4m3", 32, "e8m0"
    accepted = "MXFP8 weights with dynamic MXFP8 activations"

    @staticmethod
    def operand(data: torch.Tensor) -> torch.Tensor:
        return data

    @staticmethod
    def scales(scale: torch.Tensor) -> torch.Tensor:
        return swizzle_128x4(scale.view(torch.float8_e8m0fnu))
