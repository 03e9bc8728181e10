"""``quant_method: "fp8"`` checkpoints: DeepSeek-V3/R1, Qwen3-FP8 (128x128 blocks) and AutoFP8 (per-tensor).

Reference: ``shared/reference/checkpoint-formats.md`` §3.b. Block scales are ``weight_scale_inv``
``[ceil(N/128), ceil(K/128)]`` in f32, bf16, f16 or e8m0 and, despite the name, are the dequant
multiplier (DeepSeek-V3 inference code, transformers' ``Fp8Dequantize``, vLLM's block kernel all
multiply by them). Per-tensor checkpoints store ``weight_scale`` and, when ``activation_scheme`` is
``static``, a calibrated ``input_scale``.
"""
from __future__ import annotations

from ..schemes import SCHEMES
from .compressed_tensors import StoredScheme
from .layout import OnDisk


def scheme_from_fp8_config(qc: dict, source: str) -> StoredScheme:
    """The scheme of a ``quant_method: "fp8"`` config.

    ``weight_block_size: [128, 128]`` means 128x128 weight blocks with dynamic 1x128 activations;
    without it, per-tensor weights with dynamic (``fp8_per_tensor``) or static (``fp8_static``)
    per-tensor activations. Ignored modules come from ``ignored_layers`` or ``modules_to_not_convert``.

    Raises:
        ValueError: a block size other than 128x128, static activations with blocks, or an unknown
            ``activation_scheme``; names ``source``.
    """
    activations = qc.get("activation_scheme", "dynamic")
    if activations not in ("dynamic", "static"):
        raise ValueError(f"{source}: activation_scheme {activations!r} is neither 'dynamic' nor 'static'")
    ignore = list(qc.get("ignored_layers") or qc.get("modules_to_not_convert") or [])
    block = qc.get("weight_block_size")
    if block is None:
        if activations == "static":
            return StoredScheme(SCHEMES["fp8_static"], OnDisk(input_scale="input_scale"), ignore)
        return StoredScheme(SCHEMES["fp8_per_tensor"], OnDisk(), ignore)
    if list(block) != [128, 128]:
        raise ValueError(f"{source}: weight_block_size {block} is not supported (only [128, 128])")
    if activations == "static":
        raise ValueError(f"{source}: static activations with weight_block_size are not supported (block FP8 "
                         "checkpoints use dynamic 1x128 activation groups)")
    return StoredScheme(SCHEMES["fp8_per_block"], OnDisk(scale="weight_scale_inv"), ignore)
