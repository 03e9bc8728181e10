"""Emulation: dequantize, then matmul in float32. Runs every scheme on every platform.

This is the last resort, not a fast path: the weight is dequantized on every call (so its
memory stays quantized), activations are quantized and dequantized per the scheme
(``fake_quantize``), and the product accumulates in float32. Its numbers are the reference
the fast kernels are measured against.
"""
from __future__ import annotations

import torch

from ..formats import dequantize, fake_quantize
from ..platform import Platform
from .base import OK, LayerConfig, LinearKernel, Verdict
from .modes import batch_invariant_mode


class EmulationKernel(LinearKernel):
    name = "emulation"
    backend = "emulation"
    fallback = True
    batch_invariant = True  # row by row in batch-invariant mode
    summary = "dequantize + float32 matmul; every scheme, every platform (slow fallback)"

    @classmethod
    def is_supported(cls, platform: Platform) -> Verdict:
        return OK

    @classmethod
    def can_implement(cls, config: LayerConfig) -> Verdict:
        return OK

    def apply(self, layer, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        act = self.config.scheme.activation
        xq = fake_quantize(x, act, scale=layer.input_scale) if act is not None else x.float()
        w = dequantize(layer.quantized_weight()).t()
        if batch_invariant_mode():
            # BLAS picks its algorithm by M; one row at a time makes every row's arithmetic the same.
            y = torch.cat([xq[i : i + 1] @ w for i in range(xq.shape[0])])
        else:
            y = xq @ w
        if bias is not None:
            y = y + bias.float()
        return y.to(x.dtype)
