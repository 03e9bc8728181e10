"""Named quantization schemes: a weight spec plus an activation spec (None = weight-only).

=================  ==========================================  ==================================================
name               weight                                      activation
=================  ==========================================  ==================================================
fp8_per_tensor     e4m3, per-tensor fp32 scale, static          e4m3, per-tensor, dynamic
fp8_static         e4m3, per-tensor fp32 scale, static          e4m3, per-tensor, static (calibrated input_scale)
fp8_per_channel    e4m3, per-channel fp32 scale, static         e4m3, per-token, dynamic
fp8_per_block      e4m3, 128x128 blocks, fp32 scales, static    e4m3, 1x128 groups, dynamic
int8_per_channel   int8 symmetric, per-channel, static          int8 symmetric, per-token, dynamic (W8A8)
int8_asym_act      int8 symmetric, per-channel, static          int8 asymmetric (zero point), per-token, dynamic
mxfp8              e4m3, e8m0 scale per 32 (OCP MX)             e4m3, e8m0 per 32, dynamic
nvfp4              e2m1, e4m3 per 16 + fp32 global (W4A4)       e2m1, e4m3 per 16 + per-token fp32 global, dynamic
nvfp4_a16          as nvfp4 (W4A16)                             none (bf16/fp16)
mxfp4_a16          e2m1, e8m0 scale per 32 (W4A16)              none
fp8_a16            e4m3, per-channel fp32 scale (W8A16)         none
mxfp8_a16          e4m3, e8m0 scale per 32 (W8A16)              none
=================  ==========================================  ==================================================

Static activation scales (``fp8_static``) come from calibration, so that scheme is read from
checkpoints (llm-compressor ``FP8``, ModelOpt ``FP8``, AutoFP8) and not produced by online quantization.

Sources: FP8 recipes as in vLLM/DeepSeek-V3 (128x128 weight blocks, 1x128 activation groups);
MX from the OCP Microscaling Formats v1.0 spec; NVFP4 as produced by NVIDIA ModelOpt.
"""
from __future__ import annotations

from dataclasses import dataclass

from .spec import TensorSpec


@dataclass(frozen=True)
class Scheme:
    """A quantization scheme: how weights are stored and how activations are quantized.

    ``activation is None`` means weight-only: activations stay in their float dtype.
    """

    name: str
    weight: TensorSpec
    activation: TensorSpec | None

    @property
    def weight_only(self) -> bool:
        return self.activation is None

    @property
    def static_activation(self) -> bool:
        """Activations use a stored (calibrated) scale, the layer's ``input_scale``."""
        return self.activation is not None and not self.activation.dynamic

    @property
    def k_multiple(self) -> int:
        """in_features must be a multiple of this for the scheme to apply."""
        a = self.activation.k_multiple if self.activation else 1
        return max(self.weight.k_multiple, a)

    def describe(self) -> str:
        act = self.activation.describe() if self.activation else "none (weight-only)"
        return f"weight: {self.weight.describe()}; activation: {act}"


_E4M3_TENSOR = TensorSpec("e4m3", "tensor")
_E4M3_CHANNEL = TensorSpec("e4m3", "channel")
_MX8 = TensorSpec("e4m3", "group", group_size=32, scale_dtype="e8m0")
_MX4 = TensorSpec("e2m1", "group", group_size=32, scale_dtype="e8m0")
_NV4 = TensorSpec("e2m1", "group", group_size=16, scale_dtype="e4m3", global_scale="tensor")

SCHEMES: dict[str, Scheme] = {
    s.name: s
    for s in (
        Scheme("fp8_per_tensor", _E4M3_TENSOR, TensorSpec("e4m3", "tensor", dynamic=True)),
        Scheme("fp8_static", _E4M3_TENSOR, TensorSpec("e4m3", "tensor", dynamic=False)),
        Scheme("fp8_per_channel", _E4M3_CHANNEL, TensorSpec("e4m3", "token", dynamic=True)),
        Scheme(
            "fp8_per_block",
            TensorSpec("e4m3", "block", block_size=(128, 128)),
            TensorSpec("e4m3", "group", group_size=128, dynamic=True),
        ),
        Scheme(
            "int8_per_channel",
            TensorSpec("int8", "channel"),
            TensorSpec("int8", "token", dynamic=True),
        ),
        Scheme(
            "int8_asym_act",
            TensorSpec("int8", "channel"),
            TensorSpec("int8", "token", dynamic=True, symmetric=False),
        ),
        Scheme("mxfp8", _MX8, TensorSpec("e4m3", "group", group_size=32, scale_dtype="e8m0", dynamic=True)),
        Scheme(
            "nvfp4",
            _NV4,
            TensorSpec("e2m1", "group", group_size=16, scale_dtype="e4m3", global_scale="token", dynamic=True),
        ),
        Scheme("nvfp4_a16", _NV4, None),
        Scheme("mxfp4_a16", _MX4, None),
        Scheme("fp8_a16", _E4M3_CHANNEL, None),
        Scheme("mxfp8_a16", _MX8, None),
    )
}


# Schemes online quantization produces (static activation scales need calibration; see fp8_static).
ONLINE_SCHEMES: tuple[str, ...] = tuple(n for n, s in SCHEMES.items() if not s.static_activation)


def get_scheme(name: str | Scheme) -> Scheme:
    """Look up a scheme by name.

    Raises:
        ValueError: unknown name; the message lists the valid names.
    """
    if isinstance(name, Scheme):
        return name
    try:
        return SCHEMES[name]
    except KeyError:
        raise ValueError(f"unknown scheme {name!r}; valid schemes: {', '.join(SCHEMES)}") from None
