"""QuantizedLinear under ``torch.compile``: the layer's kernel call is one opaque custom op.

The kernels launch Triton/Gluon programs, cuBLAS calls and host-side tile arithmetic that the
compiler must not trace; the code around the layers (norms, RoPE, activations) is what it should
fuse. So while compiling, :meth:`QuantizedLinear.forward` calls ``torch.ops.qlinear.linear(x,
weight)``: the compiler sees a node of known output shape (``[M, N]`` in x's dtype), and at run time
the op finds the layer through its weight and runs the same dispatch as eager mode, so compiled and
eager outputs are bitwise equal (for the layers below, when the quantization stays in the op).

Where every kernel of the layer's dispatch table starts by quantizing x per token
(:meth:`~qlinear.kernels.base.LinearKernel.takes_quantized_input`: per-channel FP8 and INT8 W8A8),
the layer instead quantizes x in PyTorch ops (:func:`qlinear.formats.quantize`, the format's
reference) and calls ``torch.ops.qlinear.linear_quantized(q, scale, weight, out_dtype)``: the
compiler fuses the quantization into the op that produced x (the RMSNorm before q/k/v, the SiLU-and-
multiply before down_proj) and computes it once for layers that share x. On the CPU the compiled
quantization gives the reference's numbers exactly. Inductor's GPU code computes a token's scale
with its own arithmetic (a division by a constant becomes a multiplication by the constant's
reciprocal, and its division is approximate), so a scale can differ from the eager one in its last
bits, and with it a few outputs (on an H200, 5% of the rows of a 4096x4096 layer at M = 4096 had
an output that differed; ``bench/results/h200_fused_quant.txt``). Scale and elements stay consistent
with each other (the elements are x times the same scale's reciprocal, rounded), and the GPU tests
hold the layer to the float64 reference of the operands the compiled quantization gives.
``QLINEAR_FUSE_ACT_QUANT=0``, read when layers are built, keeps the quantization inside the op, bit
for bit as in eager mode.

The op takes the weight tensor, not the layer's name, because a compiled region guards on Python
constants it reads: with a name per layer, each of a model's identical decoder layers would compile
again (PyTorch's "regional compilation" compiles one layer's code and reuses it for all of them).
vLLM passes a layer name instead, which suits its one whole-model graph.
"""
from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from .linear import QuantizedLinear

_LAYER_REF = "_qlinear_layer"


def bind(layer: QuantizedLinear) -> None:
    """Let the op find ``layer`` from its ``weight`` buffer (again after ``.to()`` replaced it)."""
    setattr(layer.weight, _LAYER_REF, weakref.ref(layer))


def _layer_of(weight: torch.Tensor, op: str) -> QuantizedLinear:
    ref = getattr(weight, _LAYER_REF, None)
    layer = ref() if ref is not None else None
    if layer is None or layer.weight is not weight:
        raise RuntimeError(
            f"{op} got a weight tensor {tuple(weight.shape)} {weight.dtype} that belongs to no live "
            "QuantizedLinear (its buffer was replaced outside nn.Module.to/_apply/load_state_dict, or the layer "
            "was deleted); rebuild the layer"
        )
    return layer


@torch.library.custom_op("qlinear::linear", mutates_args=())
def linear(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``y [M, N]`` = the layer's kernel for M applied to ``x [M, K]`` (x's dtype), bias included.

    ``weight`` is the layer's canonical quantized weight buffer (``[N, K]``, or ``[N, K/2]`` packed
    e2m1), through which the layer is found.

    Raises:
        RuntimeError: ``weight`` is not the weight buffer of a live :class:`QuantizedLinear`.
    """
    return _layer_of(weight, "qlinear::linear").run_kernel(x)


@linear.register_fake
def _(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return x.new_empty((x.shape[0], weight.shape[0]))


@torch.library.custom_op("qlinear::linear_quantized", mutates_args=())
def linear_quantized(q: torch.Tensor, scale: torch.Tensor, weight: torch.Tensor, out_dtype: torch.dtype) -> torch.Tensor:
    """``y [M, N]`` in ``out_dtype`` from x quantized per token to the layer's activation spec:
    ``q [M, K]`` (e4m3 or int8) and ``scale [M, 1]`` fp32 dequant multipliers; bias included.

    Raises:
        RuntimeError: ``weight`` is not the weight buffer of a live :class:`QuantizedLinear`.
    """
    return _layer_of(weight, "qlinear::linear_quantized").run_quantized(q, scale, out_dtype)


@linear_quantized.register_fake
def _(q: torch.Tensor, scale: torch.Tensor, weight: torch.Tensor, out_dtype: torch.dtype) -> torch.Tensor:
    return q.new_empty((q.shape[0], weight.shape[0]), dtype=out_dtype)


def activation_dtype(layer: QuantizedLinear) -> torch.dtype:
    """The torch dtype of ``layer``'s per-token quantized input (int8 or e4m3)."""
    return torch.int8 if layer.scheme.activation.dtype == "int8" else torch.float8_e4m3fn


def silu_mul_quantize_for(layer: QuantizedLinear, gate: torch.Tensor, up: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``silu(gate) * up`` quantized per token to ``layer``'s activation spec: ``(q [M, K], scale
    [M, 1] fp32)``. For bf16/fp16 on CUDA one Triton pass
    (:func:`~qlinear.kernels.triton.act_quant.silu_mul_quantize_per_token`); otherwise (fp32, or not
    CUDA) PyTorch's ops and the format's reference quantization."""
    if gate.is_cuda and gate.dtype in (torch.bfloat16, torch.float16):
        from ..kernels.triton.act_quant import silu_mul_quantize_per_token

        return silu_mul_quantize_per_token(gate, up, activation_dtype(layer))
    from ..formats import quantize

    q = quantize(torch.nn.functional.silu(gate) * up, layer.scheme.activation)
    return q.data, q.scale


@torch.library.custom_op("qlinear::silu_mul_quantize", mutates_args=())
def silu_mul_quantize(gate: torch.Tensor, up: torch.Tensor, weight: torch.Tensor,
                      dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """``silu(gate) * up`` (``[M, K]`` each) quantized per token to the activation spec of the layer
    owning ``weight`` (:func:`silu_mul_quantize_for`): ``(q [M, K] dtype, scale [M, 1] fp32)``;
    ``dtype`` is that spec's (:func:`activation_dtype`), given so the compiler knows it.

    Raises:
        RuntimeError: ``weight`` is not the weight buffer of a live :class:`QuantizedLinear`.
    """
    return silu_mul_quantize_for(_layer_of(weight, "qlinear::silu_mul_quantize"), gate, up)


@silu_mul_quantize.register_fake
def _(gate: torch.Tensor, up: torch.Tensor, weight: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    return gate.new_empty(gate.shape, dtype=dtype), gate.new_empty((gate.shape[0], 1), dtype=torch.float32)
