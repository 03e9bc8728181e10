"""Write a qlinear-quantized model as a compressed-tensors checkpoint (config.json + safetensors)."""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from ..layers import QuantizedLinear
from .compressed_tensors import config_for_scheme


def save_compressed_tensors(model: nn.Module, out_dir: str | Path, tokenizer=None) -> Path:
    """Save ``model`` (quantized in place by :func:`qlinear.quantize`) to ``out_dir``.

    Files: ``config.json`` (the model's config plus ``quantization_config``), ``model.safetensors``
    (quantized Linears as ``weight`` + float32 ``weight_scale``, everything else as is; a tensor
    shared by tied weights is stored once) and the tokenizer's files when ``tokenizer`` is given.

    Raises:
        ValueError: the model has no quantized layer, or layers of different schemes.
        NotExpressible: the scheme has no compressed-tensors form this writer produces.
    """
    quantized = {n: m for n, m in model.named_modules() if isinstance(m, QuantizedLinear)}
    schemes = {m.scheme.name for m in quantized.values()}
    if len(schemes) != 1:
        raise ValueError(f"save_compressed_tensors needs one scheme across quantized layers, found {sorted(schemes) or 'none'}")
    scheme = quantized[next(iter(quantized))].scheme
    ignore = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    qc = config_for_scheme(scheme, ignore)

    tensors: dict[str, torch.Tensor] = {}
    seen: set[tuple[int, int]] = set()
    skip = {f"{n}.{b}" for n in quantized for b in ("weight", "weight_scale", "weight_global_scale")}
    for name, t in model.state_dict().items():
        key = (t.data_ptr(), t.numel())
        if name in skip or key in seen:
            continue
        seen.add(key)
        tensors[name] = t.detach().contiguous().cpu()
    for name, layer in quantized.items():
        tensors[f"{name}.weight"] = layer.weight.detach().contiguous().cpu()
        scale = layer.weight_scale.detach().float().cpu()
        tensors[f"{name}.weight_scale"] = (scale.reshape(1) if scheme.weight.granularity == "tensor" else scale).contiguous()

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt", "producer": "qlinear"})
    config = model.config.to_dict()
    config["quantization_config"] = qc
    (out / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True, default=str))
    if tokenizer is not None:
        tokenizer.save_pretrained(str(out))
    return out
