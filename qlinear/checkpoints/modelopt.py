"""NVIDIA ModelOpt checkpoints (``export_hf_checkpoint``): ``hf_quant_config.json``, or
``quant_method: "modelopt"`` in config.json's ``quantization_config``.

Reference: ``shared/reference/checkpoint-formats.md`` §3.c (layouts verified against
nvidia-modelopt 0.47). Every scale is a multiplier: ``weight_scale`` (0-d per tensor, ``[N]`` or
``[N, 1]`` per channel, ``[ceil(N/128), 1, ceil(K/128), 1]`` per block (FP8_PB_WO), e4m3 ``[N, K/16]`` or e8m0
``[N, K/32]`` per group), NVFP4's ``weight_scale_2`` (``amax / 2688``) and ``input_scale``.
NVFP4 weights are the packed uint8 ``weight`` ``[N, K/2]`` (not ``weight_packed``).
"""
from __future__ import annotations

from ..schemes import SCHEMES
from .compressed_tensors import StoredScheme
from .layout import OnDisk

QUANT_METHOD = "modelopt"
_NVFP4 = OnDisk(global_scale="weight_scale_2")
_NVFP4_NOTE = ("the checkpoint's static input_scale (NVFP4 activation global) is not used: activations get a "
               "per-token global scale computed at run time (on GPUs without FP4 tensor cores they are not "
               "quantized at all)")
_PB_WO_NOTE = ("FP8_PB_WO is weight-only in ModelOpt; qlinear runs it as W8A8 with dynamic 1x128 activation "
               "groups, as vLLM does, so it uses the FP8 tensor cores")

# quant_algo -> (scheme, tensor names, note)
ALGOS = {
    "FP8": ("fp8_static", OnDisk(input_scale="input_scale"), ""),
    "FP8_PER_CHANNEL_PER_TOKEN": ("fp8_per_channel", OnDisk(), ""),
    "FP8_PB_WO": ("fp8_per_block", OnDisk(), _PB_WO_NOTE),
    "NVFP4": ("nvfp4", _NVFP4, _NVFP4_NOTE),
    "W4A16_NVFP4": ("nvfp4_a16", _NVFP4, ""),
    "MXFP8": ("mxfp8", OnDisk(), ""),
}


def modelopt_quantization(config: dict, hf_quant_config: dict | None) -> dict | None:
    """The ``quantization`` section (``quant_algo``, ``exclude_modules``, ...) if the checkpoint is
    ModelOpt's: from hf_quant_config.json, else from a ``quant_method: "modelopt"`` quantization_config."""
    if hf_quant_config is not None and "quantization" in hf_quant_config:
        return hf_quant_config["quantization"]
    qc = config.get("quantization_config") or {}
    if qc.get("quant_method") == QUANT_METHOD:
        return {"quant_algo": qc.get("quant_algo"), "exclude_modules": qc.get("ignore", qc.get("exclude_modules", [])),
                "group_size": qc.get("group_size")}
    return None


def scheme_from_modelopt(quantization: dict, source: str) -> StoredScheme:
    """The scheme of a ModelOpt ``quantization`` section.

    Raises:
        ValueError: a ``quant_algo`` qlinear does not read (the message lists those it does), or a
            group size other than the format's; names ``source``.
    """
    algo = str(quantization.get("quant_algo")).upper()  # ModelOpt 0.47 writes FP8_PB_WO as "fp8_pb_wo"
    if algo not in ALGOS:
        raise ValueError(f"{source}: ModelOpt quant_algo {algo!r} is not supported; qlinear reads {', '.join(ALGOS)}")
    name, on_disk, note = ALGOS[algo]
    scheme = SCHEMES[name]
    group = quantization.get("group_size")
    if group is not None and scheme.weight.granularity == "group" and group != scheme.weight.group_size:
        raise ValueError(f"{source}: {algo} with group_size {group}; the format defines {scheme.weight.group_size}")
    return StoredScheme(scheme, on_disk, list(quantization.get("exclude_modules") or []), note)
