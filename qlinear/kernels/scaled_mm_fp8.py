"""FP8 W8A8 through ``torch._scaled_mm``: cuBLASLt on CUDA (sm_89+), oneDNN on the CPU.

Covers per-tensor and per-channel e4m3 weights with dynamic per-tensor or per-token e4m3
activations, and static per-tensor activations (the layer's calibrated ``input_scale``).
``_scaled_mm`` wants A row-major, B column-major and K, N multiples of 16
(PyTorch's checks, mirrored by vLLM's CUTLASS path): ``prepare`` pads the weight once (a copy only for ragged shapes) to
``[round_up(N,16), round_up(K,16)]`` (padded rows get scale 1.0), ``apply`` pads x's K per call
and slices the output back to N. Any per-row scale on either side selects the rowwise mode
(scales ``[M,1]`` x ``[1,N]``; bf16 output on CUDA, float32 on the CPU); otherwise the tensorwise mode (scalar scales).

Per-token activations are quantized by the fused Triton pass on CUDA (one read of x); per-tensor
ones, and everything on the CPU, by PyTorch ops.
"""
from __future__ import annotations

import functools

import torch

from ..formats import quantize
from ..platform import FP8_TENSOR_CORES, Platform
from .base import OK, LayerConfig, LinearKernel, Verdict, require_cuda, spec_mismatch
from .padding import pad_2d, round_up
from .triton_w8a8 import _triton_error

ALIGN = 16
_OUT_DTYPES = (torch.bfloat16, torch.float16, torch.float32)


class _ScaledMMFp8(LinearKernel):
    # Output dtype of the rowwise mode: cuBLASLt allows bf16 only; oneDNN also gives float32.
    rowwise_out_dtype = torch.bfloat16

    @classmethod
    def can_implement(cls, config: LayerConfig) -> Verdict:
        w, a = config.scheme.weight, config.scheme.activation
        ok = (
            w.dtype == "e4m3"
            and w.granularity in ("tensor", "channel")
            and w.scale_dtype == "fp32"
            and a is not None
            and a.dtype == "e4m3"
            and (a.granularity == "tensor" or (a.granularity == "token" and a.dynamic))
        )
        return spec_mismatch(
            config, "e4m3 per-tensor/per-channel weights with per-tensor (dynamic or static) or dynamic "
            "per-token e4m3 activations", ok
        )

    def prepare(self, layer) -> None:
        n, k = self.config.out_features, self.config.in_features
        self.n_pad, self.k_pad = round_up(n, ALIGN), round_up(k, ALIGN)
        act = self.config.scheme.activation
        self.rowwise = self.config.scheme.weight.granularity == "channel" or act.granularity == "token"
        scale = layer.weight_scale.float()
        if self.rowwise:
            self.scale_b = pad_2d(scale.expand(n, 1), self.n_pad, 1, value=1.0).reshape(1, self.n_pad)
        else:
            self.scale_b = scale.reshape(())
        self.weight_t = pad_2d(layer.weight, self.n_pad, self.k_pad).t()  # [K, N] column-major view

    def quantize_activation(self, layer, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(e4m3 [M, K], fp32 scale)``: PyTorch ops here; the CUDA kernel uses the fused Triton pass."""
        q = quantize(x, self.config.scheme.activation, scale=layer.input_scale)
        return q.data, q.scale

    def takes_quantized_input(self) -> bool:
        act = self.config.scheme.activation
        return act.granularity == "token" and act.dynamic

    def apply(self, layer, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        data, scale = self.quantize_activation(layer, x)
        return self.apply_quantized(layer, data, scale, bias, x.dtype)

    def apply_quantized(self, layer, q: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None,
                        out_dtype: torch.dtype) -> torch.Tensor:
        m = q.shape[0]
        xq = pad_2d(q, m, self.k_pad)
        if self.rowwise:
            scale_a = scale.expand(m, 1).contiguous()
            mm_dtype = self.rowwise_out_dtype
        else:
            scale_a = scale.reshape(())
            mm_dtype = out_dtype if out_dtype in _OUT_DTYPES else torch.bfloat16
        y = torch._scaled_mm(
            xq, self.weight_t, scale_a=scale_a, scale_b=self.scale_b, out_dtype=mm_dtype
        )[:, : self.config.out_features]
        if bias is not None:
            y = y + bias.to(y.dtype)
        return y.to(out_dtype)


class CublasFp8Kernel(_ScaledMMFp8):
    name = "cublas_fp8"
    backend = "cublas"
    summary = "torch._scaled_mm FP8 (cuBLASLt), per-tensor/per-channel W x per-tensor/per-token A; sm_89+"

    @classmethod
    def is_supported(cls, platform: Platform) -> Verdict:
        ok, reason = require_cuda(platform, FP8_TENSOR_CORES, "FP8 tensor cores")
        if not ok:
            return ok, reason
        if not hasattr(torch, "_scaled_mm"):
            return False, f"torch {torch.__version__} has no torch._scaled_mm"
        return OK

    def quantize_activation(self, layer, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.config.scheme.activation.granularity == "token" and not _triton_error():
            from .triton.act_quant import quantize_per_token

            return quantize_per_token(x.contiguous())
        return super().quantize_activation(layer, x)


@functools.cache
def _cpu_scaled_mm_error() -> str:
    """Empty if this torch build runs FP8 ``_scaled_mm`` on the CPU, else the error it gave."""
    try:
        a = torch.ones(16, 16).to(torch.float8_e4m3fn)
        torch._scaled_mm(a, a.t(), scale_a=torch.ones(16, 1), scale_b=torch.ones(1, 16), out_dtype=torch.bfloat16)
    except (RuntimeError, AttributeError, NotImplementedError) as err:
        return str(err).splitlines()[0]
    return ""


class CpuScaledMMFp8Kernel(_ScaledMMFp8):
    name = "cpu_scaled_mm_fp8"
    backend = "torch"
    summary = "torch._scaled_mm FP8 on the CPU (oneDNN), same layouts as cublas_fp8"
    rowwise_out_dtype = torch.float32

    @classmethod
    def is_supported(cls, platform: Platform) -> Verdict:
        if platform.kind != "cpu":
            return False, f"CPU kernel, platform is {platform.describe()}"
        error = _cpu_scaled_mm_error()
        if error:
            return False, f"torch {torch.__version__} cannot run FP8 _scaled_mm on this CPU: {error}"
        return OK
