"""Load a pre-quantized checkpoint straight into QuantizedLinear layers (no float copy of them).

Formats: compressed-tensors (FP8/INT8 schemes) and ``quant_method: "fp8"`` (DeepSeek/Qwen blocks).

The model skeleton is built with its parameters on the meta device (buffers real); every
quantized Linear is built from its stored tensors, every other parameter is assigned from the file.
Every tensor is checked (present, dtype, shape, finite scales) before the model is returned; an
error names the file, the tensor and the layer, and no half-loaded model escapes.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open
from torch import nn

from ..formats import QuantizedTensor
from ..kernels import LayerConfig
from ..layers import QuantizedLinear
from ..layers.linear import choose_dispatch
from ..layers.patterns import first_match
from ..platform import platform_of
from .compressed_tensors import QUANT_METHOD, scheme_from_config, scheme_from_fp8_config

READ_METHODS = (QUANT_METHOD, "fp8")


# Scale dtypes found in real checkpoints: f32 (DeepSeek), bf16/f16 (Qwen, llm-compressor), e8m0 (DeepSeek-V4).
SCALE_DTYPES = (torch.float32, torch.bfloat16, torch.float16, torch.float8_e8m0fnu)


class CheckpointError(ValueError):
    """A checkpoint file or tensor is missing, malformed or inconsistent; the message names it."""


def is_quantized_checkpoint(path: str | Path) -> bool:
    """True if ``path`` is a directory whose config.json declares a quantization qlinear reads."""
    config = Path(path) / "config.json"
    if not config.is_file():
        return False
    try:
        return json.loads(config.read_text()).get("quantization_config", {}).get("quant_method") in READ_METHODS
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
    def __init__(self, files: dict[str, Path]):
        self.files = files
        self.used: set[str] = set()

    def get(self, name: str, layer: str) -> torch.Tensor:
        if name not in self.files:
            raise CheckpointError(f"layer {layer}: tensor {name} is missing from the checkpoint")
        self.used.add(name)
        try:
            with safe_open(str(self.files[name]), "pt") as f:
                return f.get_tensor(name)
        except Exception as err:
            raise CheckpointError(f"{self.files[name]}: tensor {name} is unreadable ({err})") from err


def _expect(t: torch.Tensor, name: str, file: Path, shape: tuple[int, ...], dtypes: tuple[torch.dtype, ...]) -> None:
    if tuple(t.shape) != shape:
        raise CheckpointError(f"{file}: tensor {name} has shape {tuple(t.shape)}, expected {shape}")
    if t.dtype not in dtypes:
        raise CheckpointError(f"{file}: tensor {name} has dtype {t.dtype}, expected one of {dtypes}")


def load_quantized(path: str | Path, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.bfloat16):
    """``(model, scheme)`` from a checkpoint directory: compressed-tensors (qlinear, llm-compressor) or
    ``quant_method: "fp8"`` (DeepSeek-V3 / Qwen3-FP8 128x128 blocks in ``weight_scale_inv``; per-tensor).

    Raises:
        CheckpointError: missing/corrupt files or tensors, wrong shapes or dtypes, NaN/Inf scales.
        ValueError: a quantization config qlinear does not read (see :func:`scheme_from_config`).
    """
    from accelerate import init_empty_weights
    from transformers import AutoConfig, AutoModelForCausalLM

    folder = Path(path)
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise CheckpointError(f"{folder}: no config.json")
    qc = json.loads(config_file.read_text()).get("quantization_config") or {}
    if qc.get("quant_method") == "fp8":
        scheme, ignore = scheme_from_fp8_config(qc, str(config_file))
        scale_name = "weight_scale_inv" if scheme.weight.granularity == "block" else "weight_scale"
    else:
        scheme, targets, ignore = scheme_from_config(qc, str(config_file))
        if targets != ["Linear"]:
            raise ValueError(f"{config_file}: qlinear reads config groups that target 'Linear', found {targets}")
        scale_name = "weight_scale"
    config = AutoConfig.from_pretrained(str(folder))
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # qlinear builds the layers itself
    with init_empty_weights():
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    tensors = _Tensors(_tensor_files(folder))
    platform = platform_of(torch.device(device))

    grid = {"tensor": lambda n, k: (1,), "channel": lambda n, k: (n, 1),
            "block": lambda n, k: (-(-n // 128), -(-k // 128))}[scheme.weight.granularity]
    element = torch.int8 if scheme.weight.dtype == "int8" else torch.float8_e4m3fn
    for name, linear in [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]:
        if _ignored(name, ignore):
            continue
        n, k = linear.out_features, linear.in_features
        w = tensors.get(f"{name}.weight", name)
        _expect(w, f"{name}.weight", tensors.files[f"{name}.weight"], (n, k), (element,))
        sname = f"{name}.{scale_name}"
        s = tensors.get(sname, name)
        if scheme.weight.granularity == "tensor" and s.dim() == 0:
            s = s.reshape(1)  # ModelOpt / AutoFP8 store per-tensor scales as 0-d tensors
        _expect(s, sname, tensors.files[sname], grid(n, k), SCALE_DTYPES)
        s = s.float().reshape(1, 1) if scheme.weight.granularity == "tensor" else s.float()
        if not torch.isfinite(s).all():
            raise CheckpointError(f"{tensors.files[sname]}: tensor {sname} has NaN/Inf values")
        bias = tensors.get(f"{name}.bias", name).to(device) if linear.bias is not None else None
        qt = QuantizedTensor(w.to(device), s.to(device), scheme.weight, (n, k))
        layer_config = LayerConfig(scheme, n, k, bias is not None, name)
        model.set_submodule(name, QuantizedLinear(qt, bias, scheme, choose_dispatch(layer_config, platform), name))

    for pname, param in list(model.named_parameters()):
        if pname in tensors.files:
            owner, leaf = pname.rsplit(".", 1) if "." in pname else ("", pname)
            value = tensors.get(pname, owner).to(device=device, dtype=dtype if param.dtype.is_floating_point else None)
            setattr(model.get_submodule(owner), leaf, nn.Parameter(value, requires_grad=False))
    model.tie_weights()
    missing = [n for n, p in model.named_parameters() if p.is_meta]
    if missing:
        raise CheckpointError(f"{folder}: no tensor for {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
    return model.to(device).eval(), scheme
