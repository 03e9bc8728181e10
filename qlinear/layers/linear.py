"""The quantized Linear module: quantized weight buffers plus the kernel chosen for them."""
from __future__ import annotations

import torch
from torch import nn

from ..formats import QuantizedTensor, quantize
from ..kernels import Dispatch, LayerConfig, select_dispatch
from ..platform import Platform, platform_of
from ..schemes import Scheme, get_scheme
from ..tuning import tuned_choices
from . import compiled


class SchemeNotApplicable(ValueError):
    """The scheme cannot represent this layer (e.g. MX needs in_features % 32 == 0)."""


class QuantizedLinear(nn.Module):
    """``y = x @ W.T + b`` with W quantized, computed by the kernels selected when the layer was built.

    The layer holds a dispatch table (M range -> kernel, see :mod:`qlinear.kernels.dispatch`); a call
    looks up its row count and runs that kernel, nothing else.

    Buffers, in the canonical layout of :class:`~qlinear.formats.QuantizedTensor` (kernels derive
    their own layouts from them in ``prepare`` and never replace them):
        weight: quantized elements ``[N, K]`` (``[N, K/2]`` uint8 for e2m1).
        weight_scale: dequant multipliers on the spec's tile grid.
        weight_global_scale: NVFP4 fp32 decode multiplier (0-d), if the format has one.
        input_scale: fp32 0-d static activation multiplier, for schemes with static activations
            (``fp8_static``; from a calibrated checkpoint); None when activations are dynamic.

    The layer is bound to the platform it was built for: build it on the device it runs on
    (``qlinear.quantize(model, scheme, device=...)``).

    Accepts ``x [..., K]`` of any leading shape in bf16, fp16 or fp32; returns ``[..., N]`` in x's dtype.

    Under ``torch.compile`` the kernel call is one opaque op (:mod:`qlinear.layers.compiled`), so the
    code around the layer is compiled and the layer runs as in eager mode; per-token activation
    quantization, where the kernels allow, is left to the compiler to fuse into x's producer.

    Attributes:
        compiler_quantizes_input: True when, under ``torch.compile``, x is quantized by the compiler
            (:meth:`~qlinear.kernels.dispatch.Dispatch.quantizes_input_outside`).
    """

    def __init__(
        self,
        qweight: QuantizedTensor,
        bias: torch.Tensor | None,
        scheme: Scheme,
        dispatch: Dispatch,
        name: str = "",
        input_scale: torch.Tensor | None = None,
    ):
        """Raises:
            ValueError: a static-activation scheme without ``input_scale`` (or a dynamic one with it),
                or an ``input_scale`` that is not one finite positive number; names the layer.
        """
        super().__init__()
        _check_input_scale(name, scheme, input_scale)
        self.out_features, self.in_features = qweight.shape
        self.scheme = scheme
        self.layer_name = name
        self.dispatch = dispatch
        self.register_buffer("weight", qweight.data)
        self.register_buffer("weight_scale", qweight.scale)
        self.register_buffer("weight_global_scale", qweight.global_scale)
        self.register_buffer("input_scale", None if input_scale is None else input_scale.float().reshape(()))
        self.bias = nn.Parameter(bias.detach().clone(), requires_grad=False) if bias is not None else None
        kernels = {}
        for k in dispatch.kernels():
            kernels[k.name] = k(self.config)
            kernels[k.name].prepare(self)
        self._routes = [(r.max_m if r.max_m is not None else float("inf"), kernels[r.selection.kernel.name])
                        for r in dispatch.routes]
        self.compiler_quantizes_input = dispatch.quantizes_input_outside(self.config)
        compiled.bind(self)

    # The compiled path finds the layer through its weight buffer; rebind when that buffer is replaced.
    def _apply(self, fn, recurse=True):
        module = super()._apply(fn, recurse)
        compiled.bind(self)
        return module

    def __setstate__(self, state):  # copy.deepcopy and pickle
        super().__setstate__(state)
        compiled.bind(self)

    def _load_from_state_dict(self, *args, **kwargs):  # load_state_dict(..., assign=True)
        super()._load_from_state_dict(*args, **kwargs)
        compiled.bind(self)

    @property
    def kernel(self):
        """The kernel of the first route (for single-kernel layers and messages)."""
        return self._routes[0][1]

    def kernel_for(self, m: int):
        for max_m, kernel in self._routes:
            if m <= max_m:
                return kernel
        raise AssertionError("dispatch table does not cover every M")

    @property
    def config(self) -> LayerConfig:
        return LayerConfig(self.scheme, self.out_features, self.in_features, self.bias is not None, self.layer_name)

    @classmethod
    def from_linear(
        cls,
        linear: nn.Linear,
        scheme: Scheme | str,
        *,
        name: str = "",
        platform: Platform | None = None,
        backend: str | None = None,
        disabled: tuple[str, ...] = (),
    ) -> QuantizedLinear:
        """Quantize ``linear`` online (on its current device) and select its kernel.

        Raises:
            SchemeNotApplicable: in_features is not a multiple of the scheme's group.
            ValueError: the weight holds NaN or Inf (the count is given).
            NoKernelError: no kernel (or not the forced one) can run the layer.
        """
        scheme = get_scheme(scheme)
        weight = linear.weight.detach()
        check_online(name, scheme)
        check_applicable(name, weight.shape, scheme)
        check_finite(name, weight)
        config = LayerConfig(scheme, weight.shape[0], weight.shape[1], linear.bias is not None, name)
        dispatch = choose_dispatch(config, platform or platform_of(weight.device), backend=backend, disabled=disabled)
        return cls(quantize(weight, scheme.weight), linear.bias, scheme, dispatch, name)

    def quantized_weight(self) -> QuantizedTensor:
        """The weight as a :class:`QuantizedTensor` (valid for kernels that keep the canonical layout)."""
        return QuantizedTensor(
            self.weight, self.weight_scale, self.scheme.weight, (self.out_features, self.in_features),
            global_scale=self.weight_global_scale,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.in_features:
            raise ValueError(
                f"{self.layer_name or 'QuantizedLinear'}: input has {x.shape[-1]} features, expected {self.in_features}"
            )
        lead = x.shape[:-1]
        x2 = x.reshape(-1, self.in_features)
        if not torch.compiler.is_compiling():
            y = self.run_kernel(x2)
        elif self.compiler_quantizes_input:  # the compiler fuses this into x's producer
            q = quantize(x2, self.scheme.activation)
            y = compiled.linear_quantized(q.data, q.scale, self.weight, x.dtype)
        else:
            y = compiled.linear(x2, self.weight)
        return y.reshape(*lead, self.out_features)

    def forward_silu_mul(self, gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
        """This layer applied to ``silu(gate) * up``, that product computed inside the per-token
        quantization of the layer's input (:mod:`qlinear.layers.gated_mlp`); for layers whose
        :attr:`compiler_quantizes_input` is True.

        Accepts ``gate, up [..., K]`` of one shape and float dtype; returns ``[..., N]`` in their dtype.

        Raises:
            ValueError: gate and up differ in shape or dtype, or do not have ``in_features`` features.
        """
        if gate.shape != up.shape or gate.dtype != up.dtype or gate.shape[-1] != self.in_features:
            raise ValueError(f"{self.layer_name or 'QuantizedLinear'}: gate {tuple(gate.shape)} {gate.dtype} and up "
                             f"{tuple(up.shape)} {up.dtype} must have one shape and dtype with {self.in_features} features")
        lead = gate.shape[:-1]
        g2, u2 = gate.reshape(-1, self.in_features), up.reshape(-1, self.in_features)
        if torch.compiler.is_compiling():
            q, scale = compiled.silu_mul_quantize(g2, u2, self.weight, compiled.activation_dtype(self))
            y = compiled.linear_quantized(q, scale, self.weight, gate.dtype)
        else:
            q, scale = compiled.silu_mul_quantize_for(self, g2, u2)
            y = self.run_quantized(q, scale, gate.dtype)
        return y.reshape(*lead, self.out_features)

    def run_kernel(self, x: torch.Tensor) -> torch.Tensor:
        """``x [M, K] -> [M, N]`` through the kernel of M's route, bias included."""
        return self.kernel_for(x.shape[0]).apply(self, x, self.bias)

    def run_quantized(self, q: torch.Tensor, scale: torch.Tensor, out_dtype: torch.dtype) -> torch.Tensor:
        """``[M, N]`` in ``out_dtype`` from x already quantized per token (``q [M, K]``, ``scale [M, 1]``
        fp32), through the GEMM of M's route, bias included; for layers whose kernels all
        :meth:`take quantized input <qlinear.kernels.base.LinearKernel.takes_quantized_input>`."""
        return self.kernel_for(q.shape[0]).apply_quantized(self, q, scale, self.bias, out_dtype)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"scheme={self.scheme.name}, kernels={self.dispatch.kernel_names()}, bias={self.bias is not None}"
        )


def choose_dispatch(config: LayerConfig, platform: Platform, *, backend: str | None = None,
                    disabled: tuple[str, ...] | list[str] = ()) -> Dispatch:
    """The one way a layer gets its kernels: per-bucket selection, measured choices tried first."""
    return select_dispatch(config, platform, backend=backend, disabled=disabled,
                           preferred=tuned_choices(platform, config))


def _check_input_scale(name: str, scheme: Scheme, input_scale: torch.Tensor | None) -> None:
    where = f"layer {name or '<unnamed>'}"
    if scheme.static_activation != (input_scale is not None):
        need = "needs an input_scale (static activations)" if scheme.static_activation else "has dynamic activations; an input_scale was given"
        raise ValueError(f"{where}: {scheme.name} {need}")
    if input_scale is not None and (input_scale.numel() != 1 or not bool(torch.isfinite(input_scale).all())
                                    or float(input_scale.reshape(())) <= 0):
        raise ValueError(f"{where}: input_scale must be one finite positive number, got {input_scale.tolist()}")


def check_online(name: str, scheme: Scheme) -> None:
    """Online quantization computes weight scales only; static activation scales need calibration."""
    if scheme.static_activation:
        raise ValueError(
            f"layer {name or '<unnamed>'}: {scheme.name} uses calibrated static input scales, which online "
            "quantization does not compute; use fp8_per_tensor (dynamic activations), or load a checkpoint "
            "that stores input_scale (qlinear ... --model DIR)"
        )


def check_applicable(name: str, shape: torch.Size | tuple[int, int], scheme: Scheme) -> None:
    k = shape[1]
    if k % scheme.k_multiple:
        raise SchemeNotApplicable(
            f"layer {name or '<unnamed>'} [{shape[0]}x{k}]: {scheme.name} needs in_features divisible by "
            f"{scheme.k_multiple}, got {k}"
        )


def check_finite(name: str, weight: torch.Tensor) -> None:
    bad = int((~torch.isfinite(weight)).sum())
    if bad:
        raise ValueError(f"layer {name or '<unnamed>'}: weight has {bad} NaN/Inf values of {weight.numel()}")
