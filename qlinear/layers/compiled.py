"""QuantizedLinear under ``torch.compile``: the layer's kernel call is one opaque custom op.

The kernels launch Triton/Gluon programs, cuBLAS calls and host-side tile arithmetic that the
compiler must not trace; the code around the layers (norms, RoPE, activations) is what it should
fuse. So while compiling, :meth:`QuantizedLinear.forward` calls ``torch.ops.qlinear.linear(x,
weight)``: the compiler sees a node of known output shape (``[M, N]`` in x's dtype), and at run time
the op finds the layer through its weight and runs the same dispatch as eager mode, so compiled and
eager outputs are bitwise equal.

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


def _layer_of(weight: torch.Tensor) -> QuantizedLinear:
    ref = getattr(weight, _LAYER_REF, None)
    layer = ref() if ref is not None else None
    if layer is None or layer.weight is not weight:
        raise RuntimeError(
            f"qlinear::linear got a weight tensor {tuple(weight.shape)} {weight.dtype} that belongs to no live "
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
    return _layer_of(weight).run_kernel(x)


@linear.register_fake
def _(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return x.new_empty((x.shape[0], weight.shape[0]))
