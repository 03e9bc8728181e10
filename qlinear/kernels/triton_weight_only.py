"""Weight-only Triton kernels: the decode GEMV (:mod:`.triton.gemv`, one token) and the dequantizing
bf16-MMA GEMM (:mod:`.triton.dequant_gemm`, M >= 2).

* ``triton_w4a16``: NVFP4 (e2m1, e4m3 scale per 16, fp32 global) and MXFP4 (e2m1, e8m0 per 32)
  weights, bf16 activations; CUDA-core GEMV at M = 1, bf16 tensor-core MMAs above. Any sm_80+
  GPU: the e2m1 and e4m3 bits are decoded by integer arithmetic, not by FP4/FP8 units. Also runs the W4A4 ``nvfp4`` scheme on GPUs
  without FP4 tensor cores, skipping its activation quantization (``deviation`` says so).
* ``triton_w8a16``: e4m3 weights with e8m0 scales per 32 (MXFP8) or a per-channel fp32 scale
  (``fp8_a16``), bf16 activations; sm_89+ (Triton's e4m3 type; the GEMV's e4m3 conversion).
  Also offered for the W8A8 ``mxfp8`` scheme, where it skips the activation quantization; ``qlinear tune`` and the shipped
  priorities decide per M bucket against the FP8 tensor-core kernel.
* ``dequant_cublas``: prefill (M > 64) of all of the above: an exact bf16 copy of the weight for
  the call, then cuBLAS bf16.

Weights stay in the canonical layout (packed ``[N, K/2]`` or ``[N, K]``, K contiguous); ``prepare``
only derives the fp32 epilogue multiplier and the power-of-two shift that keeps every in-register
bf16 product exact (see :mod:`.triton.dequant`), and the GEMV's launch config.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..formats.e8m0 import E8M0_BIAS
from ..platform import FP8_TENSOR_CORES, Platform
from .base import LayerConfig, LinearKernel, Verdict, spec_mismatch
from .dispatch import DECODE_MAX_M
from .modes import batch_invariant_mode
from .triton_w8a8 import _cuda_triton

BF16_MMA = 80  # bf16 tensor-core MMA (Ampere and newer)
BF16_MIN_NORMAL_EXP = -126
# log2 of the smallest non-zero element of each format (e2m1 0.5; e4m3 subnormal 2**-9).
_MIN_ELEMENT_EXP = {"e2m1": -1, "e4m3": -9}


def _skipped_activation(config: LayerConfig) -> str:
    act = config.scheme.activation
    if act is None:
        return ""
    bits = {"e2m1": "4", "e4m3": "8"}
    return (f"activations stay 16-bit: this kernel runs {config.scheme.name} weight-only, skipping the scheme's "
            f"{act.describe()} activation quantization (no tensor cores for it here), so results are closer "
            f"to the unquantized layer than the W{bits[config.scheme.weight.dtype]}A{bits[act.dtype]} reference")


def _e8m0_shift(scales: torch.Tensor, nonzero_groups: torch.Tensor, element: str, top: int, layer_name: str) -> int:
    """The shift ``c`` of the in-loop scale factors ``2**(s - 127 - c)``: the largest group scale
    becomes ``2**top``, and the smallest non-zero product must stay bf16-normal.

    Groups whose elements are all zero do not constrain ``c``.

    Raises:
        ValueError: the scales of non-zero groups span more binades than one shift covers.
    """
    used = scales[nonzero_groups] if bool(nonzero_groups.any()) else scales.new_zeros(1)
    hi, lo = int(used.max()), int(used.min())
    span = _MIN_ELEMENT_EXP[element] + top - BF16_MIN_NORMAL_EXP
    if hi - lo > span:
        raise ValueError(
            f"layer {layer_name or '<unnamed>'}: weight_scale (e8m0) spans 2**{lo - E8M0_BIAS}..2**{hi - E8M0_BIAS}: "
            f"more than the {span} binades a bf16 "
            f"dequantization holds exactly; run this layer on the emulation kernel (QLINEAR_BACKEND=emulation)")
    return hi - E8M0_BIAS - top


def _nonzero_groups(data: torch.Tensor, packed: bool, group: int) -> torch.Tensor:
    """``[N, K/group]`` bool: the groups holding a non-zero element (e2m1 codes 0 and 8 are ±0)."""
    if packed:
        nonzero = (data & 0x77) != 0  # either nibble has magnitude bits
        per_group = group // 2
    else:
        nonzero = (data.view(torch.uint8) & 0x7F) != 0
        per_group = group
    return nonzero.reshape(data.shape[0], -1, per_group).any(dim=2)


@dataclass(frozen=True)
class WeightOnlyLayout:
    """What the weight-only kernels derive from a layer in ``prepare``.

    Attributes:
        wfmt: the :mod:`.triton.dequant_gemm` format id.
        group: elements per in-loop scale (1 for per-channel).
        scale_bias: integer added to e8m0 exponents in the kernel.
        post_scale: fp32 ``[1]``, multiplied into every output (NVFP4 global scale, the shift ``2**c``).
    """

    wfmt: int
    group: int
    scale_bias: int
    post_scale: torch.Tensor


def weight_only_layout(layer) -> WeightOnlyLayout:
    """Derive the :class:`WeightOnlyLayout` of ``layer``'s weight (NVFP4, MXFP4, MXFP8 or per-channel e4m3).

    Raises:
        ValueError: MX scales spanning more binades than one bf16 shift covers.
    """
    from .triton.dequant import E2M1_BIT_EXPONENT
    from .triton.dequant_gemm import FP8_CHANNEL, MXFP4, MXFP8, NVFP4, NVFP4_SCALE_SHIFT

    w = layer.scheme.weight
    device = layer.weight.device
    if w.granularity == "channel":
        return WeightOnlyLayout(FP8_CHANNEL, 1, 0, torch.ones(1, device=device))
    if w.scale_dtype == "e4m3":
        post = (layer.weight_global_scale.float() * 2.0**NVFP4_SCALE_SHIFT).reshape(1)
        return WeightOnlyLayout(NVFP4, w.group_size, 0, post)
    nonzero = _nonzero_groups(layer.weight, w.dtype == "e2m1", w.group_size)
    if w.dtype == "e2m1":
        # The bf16 scale factor 2**(s - 1 - c) carries the e2m1 bit patterns' 2**126 and must stay
        # <= 2**127: top = 1 (in-loop products then peak at 6 * 2 = 12).
        shift = _e8m0_shift(layer.weight_scale, nonzero, "e2m1", top=1, layer_name=layer.layer_name)
        return WeightOnlyLayout(MXFP4, w.group_size, E2M1_BIT_EXPONENT - shift,
                                torch.tensor([2.0**shift], device=device))
    # e4m3 up to 448 < 2**9: in-loop products q * 2**(s - 127 - c) stay below 2**(9 + 8).
    shift = _e8m0_shift(layer.weight_scale, nonzero, "e4m3", top=8, layer_name=layer.layer_name)
    return WeightOnlyLayout(MXFP8, w.group_size, -shift, torch.tensor([2.0**shift], device=device))


def _runs_as_w4a16(scheme) -> bool:
    """NVFP4 or MXFP4 weights, activations none or e2m1 (W4A4 is run weight-only)."""
    w, a = scheme.weight, scheme.activation
    nvfp4 = w.scale_dtype == "e4m3" and w.group_size == 16 and w.global_scale == "tensor"
    mxfp4 = w.scale_dtype == "e8m0" and w.group_size == 32
    return w.dtype == "e2m1" and w.granularity == "group" and (nvfp4 or mxfp4) and (a is None or a.dtype == "e2m1")


def _runs_as_w8a16(scheme) -> bool:
    """MXFP8 weights (activations none or e4m3, W8A8 run weight-only) or per-channel e4m3 weight-only."""
    w, a = scheme.weight, scheme.activation
    mx = w.granularity == "group" and w.scale_dtype == "e8m0" and w.group_size == 32
    channel = w.granularity == "channel" and w.scale_dtype == "fp32"
    return w.dtype == "e4m3" and ((mx and (a is None or a.dtype == "e4m3")) or (channel and a is None))


def _weight_only_verdict(config: LayerConfig, ok: bool, accepted: str) -> Verdict:
    """The scheme check, then K: grouped formats step through K 32 elements (one bf16 MMA step) at a time."""
    verdict = spec_mismatch(config, accepted, ok)
    if verdict[0] and config.scheme.weight.granularity == "group" and config.in_features % 32:
        return False, f"needs in_features divisible by 32 (one bf16 MMA step), got {config.in_features}"
    return verdict


class _WeightOnly(LinearKernel):
    """What every weight-only kernel shares: the layout derived in ``prepare`` and the note that a
    W4A4/W8A8 scheme runs without its activation quantization."""

    backend = "triton"

    @classmethod
    def deviation(cls, config: LayerConfig) -> str:
        return _skipped_activation(config)

    def prepare(self, layer) -> None:
        self.layout = weight_only_layout(layer)


class _TritonWeightOnly(_WeightOnly):
    batch_invariant = True  # with the fixed config used under QLINEAR_BATCH_INVARIANT=1 (no split-K)
    element: str

    def config_for(self, m: int):
        from .triton.dequant_configs import BATCH_INVARIANT, fit_block_k, pick_dequant_config

        if batch_invariant_mode():
            return fit_block_k(BATCH_INVARIANT, self.config.in_features)
        return pick_dequant_config(m, self.config.out_features, self.config.in_features, self.element)

    def prepare(self, layer) -> None:
        from .triton.dequant_configs import pick_gemv_config

        super().prepare(layer)
        self.gemv_config = pick_gemv_config(self.config.out_features, self.config.in_features, self.layout.wfmt)

    def apply(self, layer, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        from .triton.dequant_gemm import FP8_CHANNEL, dequant_gemm
        from .triton.gemv import weight_only_gemv

        lay = self.layout
        per_channel = lay.wfmt == FP8_CHANNEL
        scales = None if per_channel else layer.weight_scale
        channel = layer.weight_scale if per_channel else None
        if x.shape[0] == 1 and not batch_invariant_mode():
            return weight_only_gemv(x, layer.weight, scales, lay.post_scale, wfmt=lay.wfmt, config=self.gemv_config,
                                    scale_bias=lay.scale_bias, channel_scale=channel, bias=bias)
        return dequant_gemm(x.contiguous(), layer.weight, scales, lay.post_scale, wfmt=lay.wfmt, group=lay.group,
                            config=self.config_for(x.shape[0]), channel_scale=channel, scale_bias=lay.scale_bias,
                            bias=bias)


class TritonW4A16Kernel(_TritonWeightOnly):
    name = "triton_w4a16"
    element = "e2m1"
    summary = ("Triton W4A16: NVFP4/MXFP4 e2m1 weights; at M=1 a GEMV decoding codes straight to fp32 "
               "by integer instructions, above it dequantized to bf16 in registers for bf16 MMAs; "
               "split-K reduced in the same launch (sm_80+)")

    @classmethod
    def is_supported(cls, platform: Platform) -> Verdict:
        return _cuda_triton(platform, BF16_MMA, "bf16 tensor cores")

    @classmethod
    def can_implement(cls, config: LayerConfig) -> Verdict:
        return _weight_only_verdict(config, _runs_as_w4a16(config.scheme),
                                    "NVFP4 or MXFP4 e2m1 weights (W4A16; W4A4 runs as W4A16)")


class TritonW8A16Kernel(_TritonWeightOnly):
    name = "triton_w8a16"
    element = "e4m3"
    summary = ("Triton W8A16: e4m3 weights (MXFP8 e8m0 per 32, or per-channel); at M=1 a GEMV decoding bytes "
               "to fp32 by the e4m3 conversion instruction (cvt.rn.f16x2.e4m3x2), above it bf16 MMAs (sm_89+)")

    @classmethod
    def is_supported(cls, platform: Platform) -> Verdict:
        return _cuda_triton(platform, FP8_TENSOR_CORES, "Triton's e4m3 type")

    @classmethod
    def can_implement(cls, config: LayerConfig) -> Verdict:
        return _weight_only_verdict(config, _runs_as_w8a16(config.scheme),
                                    "MXFP8 or per-channel e4m3 weights (W8A16; MXFP8 W8A8 runs as W8A16)")


PREFILL_MIN_M = DECODE_MAX_M + 1


class DequantMMKernel(_WeightOnly):
    """Prefill of weight-only formats: one Triton pass writes the weight as bf16 (exactly the values
    the in-register kernels use), then cuBLAS bf16 GEMM with fp32 output; the scale factors left out
    of the bf16 values are applied to the fp32 product. The bf16 copy lives for the call only."""

    name = "dequant_cublas"
    summary = ("prefill of NVFP4/MXFP4/MXFP8/per-channel-e4m3 weight-only layers: Triton dequantization to "
               "bf16, then cuBLAS bf16 GEMM (M > 64)")

    @classmethod
    def is_supported(cls, platform: Platform) -> Verdict:
        return _cuda_triton(platform, FP8_TENSOR_CORES, "Triton's e4m3 type and bf16 cuBLAS")

    @classmethod
    def can_implement(cls, config: LayerConfig) -> Verdict:
        ok = _runs_as_w4a16(config.scheme) or _runs_as_w8a16(config.scheme)
        verdict = _weight_only_verdict(config, ok, "NVFP4/MXFP4/MXFP8/per-channel e4m3 weights, run weight-only")
        if verdict[0] and config.min_m < PREFILL_MIN_M:
            return False, (f"prefill only (M >= {PREFILL_MIN_M}): writing a bf16 copy of the weight costs more "
                           "than decode's whole GEMM")
        return verdict

    def apply(self, layer, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        from .triton.dequant_gemm import FP8_CHANNEL, dequantize_weight

        lay = self.layout
        per_channel = lay.wfmt == FP8_CHANNEL
        w = dequantize_weight(layer.weight, None if per_channel else layer.weight_scale, self.config.in_features,
                              wfmt=lay.wfmt, group=lay.group, scale_bias=lay.scale_bias)
        if x.is_cuda:
            y = torch.mm(x.to(torch.bfloat16), w.t(), out_dtype=torch.float32)
        else:  # the CPU has no bf16 -> fp32 mm; the values are the same in fp32
            y = x.float() @ w.float().t()
        y = y * lay.post_scale
        if per_channel:
            y = y * layer.weight_scale.reshape(1, -1)
        if bias is not None:
            y = y + bias.float()
        return y.to(x.dtype)
