"""Write a qlinear-quantized model as a compressed-tensors checkpoint: config.json with its
``quantization_config``, safetensors shards (with ``model.safetensors.index.json`` when there is more
than one) and the tokenizer's files. vLLM, transformers and compressed-tensors read the result."""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from ..layers import QuantizedLinear
from .compressed_tensors import config_for_scheme, writable_form
from .layout import linear_tensors

DEFAULT_SHARD_BYTES = 5 * 2**30  # transformers' default max_shard_size
_LAYER_BUFFERS = ("weight", "weight_scale", "weight_global_scale", "input_scale")


def _shards(tensors: dict[str, torch.Tensor], max_bytes: int) -> list[dict[str, torch.Tensor]]:
    """Tensors in order, cut into groups of at most ``max_bytes`` (a larger tensor gets a shard alone)."""
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for name, t in tensors.items():
        nbytes = t.numel() * t.element_size()
        if shards[-1] and size + nbytes > max_bytes:
            shards.append({})
            size = 0
        shards[-1][name] = t
        size += nbytes
    return shards


def save_compressed_tensors(model: nn.Module, out_dir: str | Path, tokenizer=None, *,
                            max_shard_bytes: int = DEFAULT_SHARD_BYTES) -> Path:
    """Save ``model`` (quantized by :func:`qlinear.quantize` or read by :func:`load_quantized`) to ``out_dir``.

    Files: ``config.json`` (the model's config plus ``quantization_config``), ``model.safetensors``
    or ``model-0000i-of-0000n.safetensors`` shards of at most ``max_shard_bytes`` with
    ``model.safetensors.index.json`` (quantized Linears as compressed-tensors names them, float
    scales in float32; everything else as is; a tensor shared by tied weights is stored once) and
    the tokenizer's files when ``tokenizer`` is given.

    Raises:
        ValueError: the model has no quantized layer, or layers of different schemes.
        NotExpressible: the scheme has no compressed-tensors form this writer produces (the message
            says why); raised before anything is written.
    """
    quantized = {n: m for n, m in model.named_modules() if isinstance(m, QuantizedLinear)}
    schemes = {m.scheme.name for m in quantized.values()}
    if len(schemes) != 1:
        raise ValueError(f"save_compressed_tensors needs one scheme across quantized layers, found {sorted(schemes) or 'none'}")
    scheme = next(iter(quantized.values())).scheme
    on_disk = writable_form(scheme).on_disk
    qc = config_for_scheme(scheme, [n for n, m in model.named_modules() if isinstance(m, nn.Linear)])

    tensors: dict[str, torch.Tensor] = {}
    seen: set[tuple[int, int]] = set()
    skip = {f"{n}.{b}" for n in quantized for b in _LAYER_BUFFERS}
    for name, t in model.state_dict().items():
        key = (t.data_ptr(), t.numel())
        if name in skip or key in seen:
            continue
        seen.add(key)
        tensors[name] = t.detach().contiguous().cpu()
    for name, layer in quantized.items():
        tensors.update(linear_tensors(name, layer.quantized_weight(), layer.input_scale, on_disk))

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    shards = _shards(tensors, max_shard_bytes)
    metadata = {"format": "pt", "producer": "qlinear"}
    if len(shards) == 1:
        save_file(shards[0], str(out / "model.safetensors"), metadata=metadata)
    else:
        weight_map = {}
        for i, shard in enumerate(shards, 1):
            file = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
            save_file(shard, str(out / file), metadata=metadata)
            weight_map.update({name: file for name in shard})
        total = sum(t.numel() * t.element_size() for t in tensors.values())
        index = {"metadata": {"total_size": total}, "weight_map": weight_map}
        (out / "model.safetensors.index.json").write_text(json.dumps(index, indent=2, sort_keys=True))
    config = model.config.to_dict()
    config["quantization_config"] = qc
    (out / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True, default=str))
    if tokenizer is not None:
        tokenizer.save_pretrained(str(out))
    return out
