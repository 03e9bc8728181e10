"""Load a pre-quantized checkpoint straight into QuantizedLinear layers (no float copy of them).

Formats: compressed-tensors (llm-compressor, qlinear), ``quant_method: "fp8"`` (DeepSeek/Qwen blocks,
AutoFP8 per-tensor) and ModelOpt (``hf_quant_config.json``). Single ``model.safetensors`` or shards
listed in ``model.safetensors.index.json``.

The model skeleton is built with its parameters on the meta device (buffers real); every quantized
Linear is built from its stored tensors, one layer at a time (tensors are read from the memory-mapped
files as they are needed), every other parameter is assigned from the file. Every tensor is checked
(present, dtype, shape, finite scales) as it is read; an error names the file, the tensor and the
layer, and no half-loaded model escapes.
"""
from __future__ import annotations

import json
import warnings
from contextlib import ExitStack
from pathlib import Path

import torch
from safetensors import safe_open
from torch import nn
from tqdm.auto import tqdm

from ..formats import requantize
from ..kernels import LayerConfig
from ..layers import QuantizedLinear, fuse_gated_mlps
from ..layers.linear import check_applicable, choose_dispatch
from ..layers.patterns import first_match
from ..platform import platform_of
from ..schemes import Scheme, get_scheme
from .compressed_tensors import QUANT_METHOD, StoredScheme, scheme_from_config
from .fp8_config import scheme_from_fp8_config
from .layout import CheckpointError, read_linear
from .modelopt import modelopt_quantization, scheme_from_modelopt

READ_METHODS = (QUANT_METHOD, "fp8", "modelopt")
HF_QUANT_CONFIG = "hf_quant_config.json"


def _json(file: Path) -> dict:
    try:
        return json.loads(file.read_text())
    except ValueError as err:
        raise CheckpointError(f"{file}: not valid JSON ({err})") from err


def stored_scheme(folder: str | Path) -> StoredScheme:
    """The scheme a checkpoint directory declares (config.json, or ModelOpt's hf_quant_config.json).

    Raises:
        CheckpointError: no config.json, or unreadable JSON.
        ValueError: no quantization, or one qlinear does not read; names the file.
    """
    folder = Path(folder)
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise CheckpointError(f"{folder}: no config.json")
    config = _json(config_file)
    hf_file = folder / HF_QUANT_CONFIG
    modelopt = modelopt_quantization(config, _json(hf_file) if hf_file.is_file() else None)
    if modelopt is not None:
        return scheme_from_modelopt(modelopt, str(hf_file if hf_file.is_file() else config_file))
    qc = config.get("quantization_config") or {}
    method = qc.get("quant_method")
    if method == "fp8":
        return scheme_from_fp8_config(qc, str(config_file))
    if method == QUANT_METHOD:
        return scheme_from_config(qc, str(config_file))
    raise ValueError(f"{config_file}: quantization_config.quant_method {method!r} is not one qlinear reads "
                     f"({', '.join(READ_METHODS)})")


def is_quantized_checkpoint(path: str | Path) -> bool:
    """True if ``path`` is a directory whose config declares a quantization (of any method): such a
    directory is read by :func:`load_quantized`, which names the method if qlinear does not read it."""
    folder = Path(path)
    if (folder / HF_QUANT_CONFIG).is_file():
        return True
    config = folder / "config.json"
    if not config.is_file():
        return False
    try:
        return bool(json.loads(config.read_text()).get("quantization_config"))
    except ValueError:
        return False


def _ignored(name: str, ignore: list[str]) -> bool:
    """Ignore entries are names, dotted suffixes, globs or ``re:`` patterns; a module prefix covers its children."""
    return first_match(name, ignore) is not None or any(name.startswith(p + ".") for p in ignore)


def _tensor_files(folder: Path) -> dict[str, Path]:
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        weight_map = json.loads(index.read_text())["weight_map"]
        files = {name: folder / shard for name, shard in weight_map.items()}
        for shard in sorted(set(files.values())):
            if not shard.is_file():
                raise CheckpointError(f"{index}: shard {shard.name} is listed but missing")
        return files
    single = folder / "model.safetensors"
    if not single.is_file():
        raise CheckpointError(f"{folder}: no model.safetensors or model.safetensors.index.json")
    try:
        with safe_open(str(single), "pt") as f:
            return {name: single for name in f.keys()}
    except Exception as err:  # safetensors raises its own error types for bad headers
        raise CheckpointError(f"{single}: unreadable safetensors file ({err})") from err


class _Tensors:
    """Tensors by name across the checkpoint's files, each file opened (memory-mapped) once."""

    def __init__(self, files: dict[str, Path], stack: ExitStack):
        self.files = files
        self.stack = stack
        self.handles: dict[Path, object] = {}

    def get(self, name: str, layer: str) -> tuple[torch.Tensor, Path]:
        if name not in self.files:
            raise CheckpointError(f"layer {layer}: tensor {name} is missing from the checkpoint")
        file = self.files[name]
        try:
            if file not in self.handles:
                self.handles[file] = self.stack.enter_context(safe_open(str(file), "pt"))
            return self.handles[file].get_tensor(name), file
        except Exception as err:  # safetensors raises its own error types for bad headers and data
            raise CheckpointError(f"{file}: tensor {name} is unreadable ({err})") from err


def load_quantized(path: str | Path, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.bfloat16,
                   progress: bool = False, convert_to: Scheme | str | None = None):
    """``(model, scheme)`` from a checkpoint directory: compressed-tensors (qlinear, llm-compressor),
    ``quant_method: "fp8"`` (DeepSeek-V3 / Qwen3-FP8 128x128 blocks in ``weight_scale_inv``; AutoFP8
    per-tensor, static or dynamic) or ModelOpt (FP8, FP8_PER_CHANNEL_PER_TOKEN, FP8_PB_WO, NVFP4,
    W4A16_NVFP4, MXFP8).

    Where qlinear runs the checkpoint differently from its recipe (e.g. NVFP4 W4A4 activation global
    scales), a ``UserWarning`` says how.

    ``convert_to``: a scheme to convert every weight to as it is read (e.g. NVFP4 -> ``fp8_per_block``
    so prefill runs on FP8 tensor cores on GPUs without FP4 ones); the layers then run, and the
    returned scheme is, that scheme. See :func:`qlinear.formats.requantize`.

    Gated SiLU MLPs whose ``down_proj`` takes per-token quantized input are then fused as
    :func:`qlinear.quantize` fuses them (:func:`qlinear.layers.fuse_gated_mlps`).

    Raises:
        CheckpointError: missing/corrupt files or tensors, wrong shapes or dtypes, NaN/Inf scales.
        ValueError: a quantization config qlinear does not read (see :func:`stored_scheme`), or a
            ``convert_to`` with static activations, or from a checkpoint with static activations.
    """
    from accelerate import init_empty_weights
    from transformers import AutoConfig, AutoModelForCausalLM

    folder = Path(path)
    stored = stored_scheme(folder)
    scheme = get_scheme(convert_to) if convert_to is not None else stored.scheme
    if scheme is not stored.scheme and (scheme.static_activation or stored.scheme.static_activation):
        raise ValueError(f"{folder}: cannot convert {stored.scheme.name} to {scheme.name}: static activation "
                         "scales do not carry over between schemes")
    if stored.note:
        warnings.warn(f"{folder}: {stored.note}", stacklevel=2)
    config = AutoConfig.from_pretrained(str(folder))
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # qlinear builds the layers itself
    with init_empty_weights():
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    platform = platform_of(torch.device(device))
    linears = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear) and not _ignored(n, stored.ignore)]
    with ExitStack() as stack:
        tensors = _Tensors(_tensor_files(folder), stack)
        for name, linear in tqdm(linears, desc=f"load {scheme.name}", disable=not progress, leave=False):
            n, k = linear.out_features, linear.in_features
            qt, input_scale = read_linear(lambda t, layer=name: tensors.get(t, layer), name, stored.scheme,
                                          stored.on_disk, n, k)
            if scheme is not stored.scheme:
                check_applicable(name, (n, k), scheme)
                qt, _ = requantize(qt, scheme.weight)
            bias = tensors.get(f"{name}.bias", name)[0].to(device) if linear.bias is not None else None
            layer_config = LayerConfig(scheme, n, k, bias is not None, name)
            model.set_submodule(name, QuantizedLinear(qt.to(device), bias, scheme, choose_dispatch(layer_config, platform), name,
                                                      input_scale=None if input_scale is None else input_scale.to(device)))
        for pname, param in list(model.named_parameters()):
            if pname in tensors.files:
                owner, leaf = pname.rsplit(".", 1) if "." in pname else ("", pname)
                value = tensors.get(pname, owner)[0].to(device=device, dtype=dtype if param.dtype.is_floating_point else None)
                setattr(model.get_submodule(owner), leaf, nn.Parameter(value, requires_grad=False))
    model.tie_weights()
    missing = [n for n, p in model.named_parameters() if p.is_meta]
    if missing:
        raise CheckpointError(f"{folder}: no tensor for {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
    model = model.to(device).eval()
    fuse_gated_mlps(model)  # as qlinear.quantize does: SiLU-and-multiply inside down_proj's activation quantization
    return model, scheme
