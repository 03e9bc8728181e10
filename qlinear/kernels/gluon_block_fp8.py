"""Block FP8 prefill on Hopper through the Gluon wgmma GEMM (:mod:`.triton.wgmma_block_fp8`).

Same scheme as ``triton_fp8_block`` (128x128 e4m3 weight blocks x dynamic 1x128 e4m3 activation
groups), for prefill sizes only: a persistent grid, a TMA producer and two consumer warpgroups, each K-tile's
product scaled while the next one runs on the tensor cores; about twice the Triton GEMM's rate at
M = 4096 on an H200 (``bench/results/h200_issue3.md``). cuBLASLt blockwise is faster where it is correct, so it keeps
the first place; this kernel takes the K that cuBLASLt refuses (ceil(K/128) not a multiple of 4).
"""
from __future__ import annotations

import functools

import torch

from ..platform import Platform
from .base import OK, LayerConfig, LinearKernel, Verdict, require_cuda_exactly
from .triton_w8a8 import TritonFp8BlockKernel

WGMMA_CAPABILITY = 90  # wgmma is sm_90a only: Blackwell replaced it (tcgen05)
DECODE_MAX_M = 64  # 128-row tiles; decode sizes stream the weight in the swapped Triton GEMM instead


@functools.cache
def _gluon_error() -> str:
    try:
        from .triton import wgmma_block_fp8  # noqa: F401
    except ImportError as err:
        return f"Triton's Gluon Hopper API is not importable ({err})"
    return ""


class GluonFp8BlockKernel(LinearKernel):
    name = "gluon_fp8_block"
    backend = "gluon"
    batch_invariant = True  # fixed 128x128 tiles, no split-K: a row's result never depends on M
    summary = ("Gluon (Triton) Hopper wgmma block FP8, 1x128 A x 128x128 W: persistent, a TMA producer, two consumer "
               "warpgroups scaling each K-tile's product while the next runs; prefill (M > 64)")

    @classmethod
    def is_supported(cls, platform: Platform) -> Verdict:
        ok, reason = require_cuda_exactly(platform, WGMMA_CAPABILITY, "Hopper wgmma")
        if not ok:
            return ok, reason
        error = _gluon_error()
        return (False, error) if error else OK

    @classmethod
    def can_implement(cls, config: LayerConfig) -> Verdict:
        from .triton.wgmma_block_fp8 import K_ALIGN, N_ALIGN

        ok, reason = TritonFp8BlockKernel.can_implement(config)
        if not ok:
            return ok, reason
        if config.min_m <= DECODE_MAX_M:
            return False, f"128-row tiles are for prefill (M > {DECODE_MAX_M}); decode streams the weight elsewhere"
        if config.in_features % K_ALIGN or config.out_features % N_ALIGN:
            return False, (f"TMA needs 16-byte rows: K % {K_ALIGN} == 0 and N % {N_ALIGN} == 0, "
                           f"layer is N={config.out_features}, K={config.in_features}")
        return OK

    def prepare(self, layer) -> None:
        from .triton.wgmma_block_fp8 import weight_descriptor

        self.weight_scale = layer.weight_scale.float().contiguous()  # checkpoints may hold bf16 block scales
        self.weight_desc = weight_descriptor(layer.weight)

    def apply(self, layer, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        from .triton.act_quant import quantize_per_group
        from .triton.wgmma_block_fp8 import block_fp8_gemm

        q, s = quantize_per_group(x.contiguous(), 128, m_major=True)
        out_dtype = x.dtype if x.dtype in (torch.bfloat16, torch.float16) else torch.bfloat16
        return block_fp8_gemm(q, s, layer.weight, self.weight_scale, bias, out_dtype,
                              b_desc=self.weight_desc).to(x.dtype)
