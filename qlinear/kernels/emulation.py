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


class EmulationKernel(LinearKernel):
    name = "emulation"
    backend = "emulation"
    fallback = True
    summary = "dequantize + float32 matmul; every scheme, every platform (slow fallback)"

    @classmethod
    def is_supported(cls, platform: Platform) -> Verdict:
        return OK

    @classmethod
    def can_implement(cls, config: LayerConfig) -> Verdict:
        return OK

    def apply(self, layer, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        act = self.config.scheme.activation
        xq = fake_quantize(x, act) if act is not None else x.float()
        y = xq @ dequantize(layer.quantized_weight()).t()
        if bias is not None:
            y = y + bias.float()
        return y.to(x.dtype)
