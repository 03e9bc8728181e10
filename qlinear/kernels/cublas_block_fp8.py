"""Block FP8 (1x128 activation groups x 128x128 weight blocks) through cuBLASLt ``torch._scaled_mm``.

cuBLASLt has these scale modes on sm_90 only. Its constraints, checked here rather than failing
at run time: M = 1 is rejected by cuBLASLt (CUBLAS_STATUS_NOT_SUPPORTED, measured on H200), so
this kernel does not take buckets that contain M = 1; with torch 2.11 the result is silently wrong
unless ceil(K/128) is a multiple of 4 (PyTorch #166752; the padded scale layout of the fix is
rejected by 2.11), so such K is refused; activation scales must be M-major
(``stride(0) == 1``), rows are padded to a multiple of 4 (16-byte aligned scale columns); K and N
are padded to multiples of 16 once in ``prepare`` (the 128-block grid is unchanged by that).
The activation quantization is the fused Triton pass (one read of x).
"""
from __future__ import annotations

import torch

from ..platform import BLOCKWISE_FP8_CUBLAS, Platform
from .base import OK, LayerConfig, LinearKernel, Verdict, require_cuda_exactly
from .padding import pad_2d, round_up
from .triton_w8a8 import TritonFp8BlockKernel, _triton_error

ALIGN = 16
ROW_ALIGN = 4


class CublasBlockFp8Kernel(LinearKernel):
    name = "cublas_fp8_block"
    backend = "cublas"
    summary = "torch._scaled_mm blockwise FP8 (cuBLASLt, sm_90 only), 1x128 A x 128x128 W; not M=1"

    @classmethod
    def is_supported(cls, platform: Platform) -> Verdict:
        ok, reason = require_cuda_exactly(platform, BLOCKWISE_FP8_CUBLAS, "cuBLASLt blockwise FP8 scaling")
        if not ok:
            return ok, reason
        error = _triton_error()
        return (False, f"activation quantization needs Triton: {error}") if error else OK

    @classmethod
    def can_implement(cls, config: LayerConfig) -> Verdict:
        ok, reason = TritonFp8BlockKernel.can_implement(config)
        if not ok:
            return ok, reason
        if config.min_m <= 1:
            return False, "cuBLASLt blockwise FP8 fails at M=1 (CUBLAS_STATUS_NOT_SUPPORTED)"
        k_blocks = -(-config.in_features // 128)
        if k_blocks % 4:
            return False, (f"K={config.in_features} has {k_blocks} 128-blocks; torch {torch.__version__}'s cuBLASLt "
                           "blockwise path gives wrong results unless that count is a multiple of 4 (PyTorch #166752, "
                           "measured in bench/results/h200_probe_cublas_blockwise.txt)")
        return OK

    def prepare(self, layer) -> None:
        n, k = self.config.out_features, self.config.in_features
        self.n_pad, self.k_pad = round_up(n, ALIGN), round_up(k, ALIGN)
        self.weight_t = pad_2d(layer.weight, self.n_pad, self.k_pad).t()  # [K, N] column-major
        self.scale_t = layer.weight_scale.float().t()  # [K/128, N/128]: the [N/128, K/128] grid transposed

    def apply(self, layer, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        from .triton.act_quant import quantize_per_group

        m = x.shape[0]
        xp = pad_2d(x.contiguous(), round_up(m, ROW_ALIGN), self.k_pad)
        q, s = quantize_per_group(xp, 128, m_major=True)
        y = torch._scaled_mm(q, self.weight_t, scale_a=s, scale_b=self.scale_t, out_dtype=torch.bfloat16)
        y = y[:m, : self.config.out_features]
        if bias is not None:
            y = y + bias.to(y.dtype)
        return y.to(x.dtype)
