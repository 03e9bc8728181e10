"""The compressed-tensors checkpoint format (``quant_method: "compressed-tensors"``), as data.

Written by llm-compressor and read by vLLM and transformers; reference:
``shared/reference/checkpoint-formats.md`` §3.a. Per Linear: ``weight`` (F8_E4M3 or I8, ``[N, K]``)
and ``weight_scale`` (dequant multiplier; ``[1]`` per-tensor, ``[N, 1]`` per-channel,
``[ceil(N/128), ceil(K/128)]`` per 128x128 block). qlinear writes scales in float32 (exact);
llm-compressor writes them in the model's dtype, and the reader takes either.

This module maps schemes to and from ``quantization_config``; it does no I/O.
"""
from __future__ import annotations

from ..schemes import SCHEMES, Scheme

QUANT_METHOD = "compressed-tensors"
# Schemes qlinear writes and reads in this format. NVFP4 and MX are laid out by compressed-tensors
# too, but qlinear does not write them yet (its NVFP4 global scale is a multiplier whose reciprocal
# is not exact in fp32, and neither layout has been checked against compressed-tensors' reader).
_WEIGHTS = {
    "fp8_per_tensor": {"type": "float", "strategy": "tensor"},
    "fp8_per_channel": {"type": "float", "strategy": "channel"},
    "fp8_per_block": {"type": "float", "strategy": "block", "block_structure": [128, 128]},
    "int8_per_channel": {"type": "int", "strategy": "channel"},
    "fp8_a16": {"type": "float", "strategy": "channel"},
}
_INPUTS = {
    "fp8_per_tensor": {"type": "float", "strategy": "tensor"},
    "fp8_per_channel": {"type": "float", "strategy": "token"},
    "fp8_per_block": {"type": "float", "strategy": "group", "group_size": 128},
    "int8_per_channel": {"type": "int", "strategy": "token"},
    "fp8_a16": None,
}


class NotExpressible(ValueError):
    """The scheme has no compressed-tensors form qlinear writes; the message says why."""


def _args(base: dict, dynamic: bool) -> dict:
    return {"num_bits": 8, "symmetric": True, "dynamic": dynamic, "group_size": None, "block_structure": None,
            "actorder": None, "observer": "minmax", "observer_kwargs": {}, **base}


def config_for_scheme(scheme: Scheme, ignore: list[str]) -> dict:
    """``quantization_config`` for ``scheme``, quantizing every ``Linear`` but ``ignore`` (exact names).

    Raises:
        NotExpressible: for schemes this writer does not produce (listed in the message).
    """
    if scheme.name not in _WEIGHTS:
        raise NotExpressible(
            f"qlinear writes compressed-tensors checkpoints for {', '.join(_WEIGHTS)}; {scheme.name} is not one "
            "of them yet (NVFP4/MX layouts are not yet checked against compressed-tensors' own reader)"
        )
    inputs = _INPUTS[scheme.name]
    fmt = "int-quantized" if scheme.weight.dtype == "int8" else "float-quantized"
    group = {
        "targets": ["Linear"],
        "weights": _args(_WEIGHTS[scheme.name], dynamic=False),
        "input_activations": _args(inputs, dynamic=True) if inputs else None,
        "output_activations": None,
        "format": fmt,
    }
    return {
        "quant_method": QUANT_METHOD,
        "format": fmt,
        "quantization_status": "compressed",
        "config_groups": {"group_0": group},
        "ignore": sorted(ignore),
        "kv_cache_scheme": None,
        "producer": "qlinear",
    }


def _matches(args: dict | None, want: dict | None) -> bool:
    if args is None or want is None:
        return args is None and want is None
    return all(args.get(k) == v for k, v in want.items()) and args.get("num_bits") == 8 and args.get("symmetric", True)


def scheme_from_config(qc: dict, source: str) -> tuple[Scheme, list[str], list[str]]:
    """``(scheme, targets, ignore)`` from a compressed-tensors ``quantization_config``.

    Raises:
        ValueError: not compressed-tensors, several config groups, or a combination qlinear does not
            read; the message names ``source`` (the config file).
    """
    if qc.get("quant_method") != QUANT_METHOD:
        raise ValueError(f"{source}: quant_method {qc.get('quant_method')!r} is not {QUANT_METHOD!r}")
    groups = qc.get("config_groups") or {}
    if len(groups) != 1:
        raise ValueError(f"{source}: qlinear reads one config group, found {len(groups)} ({', '.join(groups)})")
    (group,) = groups.values()
    weights, inputs = group.get("weights"), group.get("input_activations")
    if inputs is not None and not inputs.get("dynamic"):
        raise ValueError(f"{source}: static input scales are not supported yet (input_activations.dynamic is false)")
    for name in _WEIGHTS:
        if _matches(weights, _WEIGHTS[name]) and _matches(inputs, _INPUTS[name]):
            return SCHEMES[name], list(group.get("targets", ["Linear"])), list(qc.get("ignore", []))
    raise ValueError(f"{source}: weights {weights} with input_activations {inputs} match no scheme qlinear reads "
                     f"({', '.join(_WEIGHTS)})")


def scheme_from_fp8_config(qc: dict, source: str) -> tuple[Scheme, list[str]]:
    """``(scheme, ignore)`` from a ``quant_method: "fp8"`` config (DeepSeek-V3 / Qwen3-FP8 / AutoFP8).

    ``weight_block_size: [128, 128]`` means 128x128 weight blocks with dynamic 1x128 activations
    (scales in ``weight_scale_inv``, a dequant multiplier despite its name); without it, per-tensor
    weights (``weight_scale``) with dynamic per-tensor activations. Ignored modules come from
    ``ignored_layers`` or ``modules_to_not_convert``.

    Raises:
        ValueError: static activations, or a block size other than 128x128; names ``source``.
    """
    if qc.get("activation_scheme", "dynamic") != "dynamic":
        raise ValueError(f"{source}: activation_scheme {qc.get('activation_scheme')!r}: static input scales are not supported yet")
    ignore = list(qc.get("ignored_layers") or qc.get("modules_to_not_convert") or [])
    block = qc.get("weight_block_size")
    if block is None:
        return SCHEMES["fp8_per_tensor"], ignore
    if list(block) != [128, 128]:
        raise ValueError(f"{source}: weight_block_size {block} is not supported (only [128, 128])")
    return SCHEMES["fp8_per_block"], ignore
