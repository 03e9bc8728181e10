"""Prefill on Hopper's FP8 tensor cores through the Gluon wgmma GEMM (:mod:`.triton.wgmma_gemm`):
a persistent grid, a TMA producer and two consumer warpgroups, each K step's product scaled while
the next one runs on the tensor cores. Prefill sizes only (M > 64): decode streams the weight in
the Triton kernels.

* ``gluon_fp8_block``: 128x128 e4m3 weight blocks x dynamic 1x128 e4m3 activation groups; about
  twice the Triton GEMM's rate at M = 4096 on an H200 (``bench/results/h200_issue3.md``).
  cuBLASLt blockwise is faster where it is correct, so it keeps the first place; this kernel takes
  the K that cuBLASLt refuses (ceil(K/128) not a multiple of 4).
* ``gluon_mxfp8``: MXFP8 (OCP MX) weights x dynamic MXFP8 activations, e8m0 scales per 32 on both,
  each 32-deep product scaled on its own: about half the bf16 rate on an H200, where scaling on
  CUDA cores (2 FP32 instructions per output element per 32-group) caps any such kernel at ~1.4x
  bf16 (``bench/results/h200_issue4.md``), so the weight-only ``dequant_cublas`` goes first.
* ``gluon_int8`` and ``gluon_fp8_rowwise``: per-channel weights x dynamic per-token activations
  (INT8 W8A8, FP8 per-channel), the same pipeline with nothing to scale per K step; the scales
  multiply the finished sum. INT8 products sum on the tensor cores in int32, in tiles of 256 rows
  where the grid's rounds of tiles favour them (1.52-1.88x bf16 at M = 4096 on an H200). e4m3
  products are summed per K-tile in fp32 on the CUDA cores (the tensor cores' FP8 accumulation
  keeps fewer bits, too few over a long K), in 128-row tiles: 0-6% behind cuBLAS rowwise on an
  H200, where ``qlinear.tuning.DEFAULTS`` prefers cuBLAS (``bench/results/h200_issue3.md``).

Each layer call quantizes x, then launches the GEMM with PDL, so its launch and prologue overlap the
quantization's tail.
"""
from __future__ import annotations

import torch

from ..platform import Platform
from .base import OK, LayerConfig, LinearKernel, Verdict, importable, require_cuda_exactly
from .dispatch import DECODE_MAX_M
from .triton_w8a8 import TritonFp8BlockKernel, TritonFp8RowwiseKernel, TritonInt8Kernel, TritonMxfp8Kernel

WGMMA_CAPABILITY = 90  # wgmma is sm_90a only: Blackwell replaced it (tcgen05)


class _GluonWgmma(LinearKernel):
    backend = "gluon"
    batch_invariant = True  # fixed tiles, no split-K: a row's result never depends on M
    same_scheme_as: type[LinearKernel]  # the Triton kernel whose can_implement defines the scheme
    k_align: int  # TMA's 16 bytes, or whole MX groups
    scales: str  # "block" (block_fp8_gemm), "mx" (mxfp8_gemm) or "rowwise" (rowwise_gemm)

    @classmethod
    def is_supported(cls, platform: Platform) -> Verdict:
        ok, reason = require_cuda_exactly(platform, WGMMA_CAPABILITY, "Hopper wgmma")
        return importable("triton.wgmma_gemm", "Triton's Gluon Hopper API") if ok else (ok, reason)

    @classmethod
    def can_implement(cls, config: LayerConfig) -> Verdict:
        from .triton.wgmma_gemm import N_ALIGN

        ok, reason = cls.same_scheme_as.can_implement(config)
        if not ok:
            return ok, reason
        if config.min_m <= DECODE_MAX_M:
            return False, f"128-row tiles are for prefill (M > {DECODE_MAX_M}); decode streams the weight elsewhere"
        if config.in_features % cls.k_align or config.out_features % N_ALIGN:
            return False, (f"needs K % {cls.k_align} == 0 and N % {N_ALIGN} == 0 (TMA reads 16-byte rows), "
                           f"layer is N={config.out_features}, K={config.in_features}")
        return OK


    def prepare(self, layer) -> None:
        from .triton.wgmma_gemm import block_fp8_gemm, mxfp8_gemm, rowwise_gemm, weight_descriptors

        self.weight_scale = self.kernel_scales(layer.weight_scale)
        self.weight_descs = weight_descriptors(layer.weight, self.weight_scale, self.scales)
        self.gemm = {"block": block_fp8_gemm, "mx": mxfp8_gemm, "rowwise": rowwise_gemm}[self.scales]

    def apply(self, layer, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        q, s = self.quantize(x.contiguous())  # lets the GEMM launch early (PDL); it waits for q and s
        return self._gemm(layer, q, s, bias, x.dtype, after_producer=True)

    def _gemm(self, layer, q, scale, bias, out_dtype, *, after_producer: bool) -> torch.Tensor:
        gemm_dtype = out_dtype if out_dtype in (torch.bfloat16, torch.float16) else torch.bfloat16
        return self.gemm(q, scale, layer.weight, self.weight_scale, bias, gemm_dtype, b_descs=self.weight_descs,
                         after_producer=after_producer).to(out_dtype)


class GluonFp8BlockKernel(_GluonWgmma):
    name = "gluon_fp8_block"
    summary = ("Gluon (Triton) Hopper wgmma block FP8, 1x128 A x 128x128 W: persistent, a TMA producer, two consumer "
               "warpgroups scaling each K-tile's product while the next runs; prefill (M > 64)")
    same_scheme_as = TritonFp8BlockKernel
    k_align, scales = 16, "block"

    @staticmethod
    def kernel_scales(weight_scale: torch.Tensor) -> torch.Tensor:
        return weight_scale.float().contiguous()  # checkpoints may hold bf16 block scales

    @staticmethod
    def quantize(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        from .triton.act_quant import quantize_per_group

        return quantize_per_group(x, 128, m_major=True, tma_aligned=True, pdl_any_m=True)


class GluonMxfp8Kernel(_GluonWgmma):
    name = "gluon_mxfp8"
    summary = ("Gluon (Triton) Hopper wgmma MXFP8 W8A8: e8m0 scales per 32 applied to each 32-deep product while "
               "the next runs; fused MXFP8 quantization; prefill (M > 64)")
    same_scheme_as = TritonMxfp8Kernel
    k_align, scales = 32, "mx"

    @staticmethod
    def kernel_scales(weight_scale: torch.Tensor) -> torch.Tensor:
        from .triton.wgmma_gemm import mx_weight_scales

        return mx_weight_scales(weight_scale)

    @staticmethod
    def quantize(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        from .triton.act_quant import quantize_per_group

        return quantize_per_group(x, 32, m_major=True, tma_aligned=True, e8m0=True, pdl_any_m=True)


class _GluonRowwise(_GluonWgmma):
    """Per-channel (or per-tensor) weight x dynamic per-token activation of ``element`` type."""

    k_align, scales = 16, "rowwise"
    element: torch.dtype

    def kernel_scales(self, weight_scale: torch.Tensor) -> torch.Tensor:
        # a per-tensor weight scale becomes one per channel: the GEMM reads one per output column
        return weight_scale.float().reshape(-1).expand(self.config.out_features).contiguous()

    def quantize(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        from .triton.act_quant import quantize_per_token

        return quantize_per_token(x, self.element, pdl_any_m=True)

    def takes_quantized_input(self) -> bool:
        return True

    def apply_quantized(self, layer, q, scale, bias, out_dtype):
        return self._gemm(layer, q, scale, bias, out_dtype, after_producer=False)


class GluonInt8Kernel(_GluonRowwise):
    name = "gluon_int8"
    summary = ("Gluon (Triton) Hopper wgmma INT8 W8A8, per-channel W x dynamic per-token A: persistent, a TMA "
               "producer, two consumer warpgroups, int32 sums scaled once; prefill (M > 64)")
    same_scheme_as = TritonInt8Kernel
    element = torch.int8


class GluonFp8RowwiseKernel(_GluonRowwise):
    name = "gluon_fp8_rowwise"
    summary = ("Gluon (Triton) Hopper wgmma FP8 per-channel/per-tensor W x dynamic per-token A: persistent, a TMA "
               "producer, two consumer warpgroups, each K-tile's product added in fp32, scaled once; prefill (M > 64)")
    same_scheme_as = TritonFp8RowwiseKernel
    element = torch.float8_e4m3fn
