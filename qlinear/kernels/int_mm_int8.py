"""INT8 W8A8 through ``torch._int_mm`` (int8 x int8 -> int32), then both scales in float32.

Per-channel symmetric int8 weights, dynamic per-token int8 activations, symmetric or asymmetric.
With a per-token zero point z, ``sum_k (q_x - z) q_w = (q_x @ q_w^T) - z * sum_k q_w``: the weight's
row sums are computed once in ``prepare`` and the correction is one int32 multiply-add per output
(the azp scheme of vLLM's CUTLASS W8A8 kernels).
PyTorch's CUDA ``_int_mm`` needs M > 16 and K, N multiples of 8: ``prepare`` pads the weight
once; ``apply`` pads K per call and, on CUDA, pads M up to 17 rows for decode-sized inputs
(the extra rows are zeros and are sliced off), which is correct but spends a 17-row GEMM.
"""
from __future__ import annotations

import torch

from ..formats import quantize
from ..platform import INT8_TENSOR_CORES, Platform
from .base import OK, LayerConfig, LinearKernel, Verdict, require_cuda, spec_mismatch
from .padding import pad_2d, round_up

ALIGN = 8
MIN_CUDA_ROWS = 17


class IntMMInt8Kernel(LinearKernel):
    name = "torch_int_mm"
    backend = "torch"
    summary = "torch._int_mm INT8 W8A8 (cuBLASLt on CUDA sm_75+, CPU); per-channel W x per-token A"

    @classmethod
    def is_supported(cls, platform: Platform) -> Verdict:
        if platform.kind == "cpu":
            return OK
        return require_cuda(platform, INT8_TENSOR_CORES, "INT8 tensor cores")

    @classmethod
    def can_implement(cls, config: LayerConfig) -> Verdict:
        w, a = config.scheme.weight, config.scheme.activation
        ok = (
            w.dtype == "int8"
            and w.granularity == "channel"
            and w.symmetric
            and a is not None
            and a.dtype == "int8"
            and a.granularity == "token"
            and a.dynamic
        )
        return spec_mismatch(config, "symmetric int8 per-channel weights with dynamic per-token int8 activations "
                             "(symmetric or asymmetric)", ok)

    def prepare(self, layer) -> None:
        n, k = self.config.out_features, self.config.in_features
        self.n_pad, self.k_pad = round_up(n, ALIGN), round_up(k, ALIGN)
        self.scale_w = pad_2d(layer.weight_scale.float(), self.n_pad, 1, value=1.0).reshape(1, self.n_pad)
        self.weight_t = pad_2d(layer.weight, self.n_pad, self.k_pad).t()  # copies only for ragged shapes
        self.weight_row_sums = None
        if not self.config.scheme.activation.symmetric:
            self.weight_row_sums = self.weight_t.sum(dim=0, dtype=torch.int32).reshape(1, self.n_pad)

    def takes_quantized_input(self) -> bool:
        return self.config.scheme.activation.symmetric  # asymmetric ones carry a zero point too

    def apply(self, layer, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        q = quantize(x, self.config.scheme.activation)
        return self._gemm(q.data, q.scale, q.zero_point, bias, x.dtype)

    def apply_quantized(self, layer, q, scale, bias, out_dtype):
        return self._gemm(q, scale, None, bias, out_dtype)

    def _gemm(self, q, scale, zero_point, bias, out_dtype):
        m = q.shape[0]
        rows = max(m, MIN_CUDA_ROWS) if q.is_cuda else m
        acc = torch._int_mm(pad_2d(q, rows, self.k_pad), self.weight_t)
        n = self.config.out_features
        acc = acc[:m, :n]
        if self.weight_row_sums is not None:
            acc = acc - zero_point * self.weight_row_sums[:, :n]
        y = acc.float() * scale * self.scale_w[:, :n]
        if bias is not None:
            y = y + bias.float()
        return y.to(out_dtype)
