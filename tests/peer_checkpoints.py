"""Checkpoints written by the peer libraries themselves (llm-compressor, nvidia-modelopt), for the
cross-check tests, from the embedded real model; nothing is downloaded.

    python3 -m tests.peer_checkpoints OUT [--layers 1]    # writes OUT/base, OUT/llmc-<S>, OUT/modelopt-<A>

Each peer directory also gets ``peer_reference.safetensors``: the dequantized weights as the peer
itself computes them (compressed-tensors' decompressor through transformers ``run_compressed=False``
for llm-compressor; ModelOpt's own fake-quantizer for FP8), so tests compare against the peer, not
against qlinear's own reading of the format. ModelOpt's NVFP4 fake-quantizer needs CUDA, so that
directory has none and the test decodes the bytes by hand.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

LLM_COMPRESSOR_SCHEMES = ("FP8_DYNAMIC", "FP8", "FP8_BLOCK", "W8A8", "W8A8_ASYM", "NVFP4", "NVFP4A16", "MXFP4A16",
                          "MXFP8")
# Not a preset of llm-compressor: W8A8 with asymmetric per-token activations, as a config group.
CONFIG_GROUPS = {"W8A8_ASYM": {"group_0": {
    "targets": ["Linear"],
    "weights": {"num_bits": 8, "type": "int", "strategy": "channel", "symmetric": True, "dynamic": False},
    "input_activations": {"num_bits": 8, "type": "int", "strategy": "token", "symmetric": False, "dynamic": True},
}}}
CALIBRATED = ("FP8", "NVFP4")  # static activation scales: need calibration text
# quant_algo written -> the ModelOpt config that writes it
MODELOPT_CONFIGS = {"FP8": "FP8_DEFAULT_CFG", "NVFP4": "NVFP4_DEFAULT_CFG",
                    "FP8_PER_CHANNEL_PER_TOKEN": "FP8_PER_CHANNEL_PER_TOKEN_CFG", "MXFP8": "MXFP8_DEFAULT_CFG",
                    "W4A16_NVFP4": "W4A16_NVFP4_CFG", "FP8_PB_WO": "FP8_2D_BLOCKWISE_WEIGHT_ONLY_CFG"}
MODELOPT_ALGOS = tuple(MODELOPT_CONFIGS)
REFERENCE = "peer_reference.safetensors"


def make_base(out: Path, layers: int | None) -> Path:
    """The embedded SmolLM2 (GGUF, dequantized to bf16), optionally cut to ``layers`` decoder layers,
    saved as a plain transformers directory with its tokenizer."""
    from qlinear.models import load_model

    model, tokenizer = load_model(None)
    if layers is not None:
        model.model.layers = model.model.layers[:layers]
        model.config.num_hidden_layers = layers
    # The GGUF's quantizer and config: these weights are plain bf16 now.
    model.hf_quantizer = None
    if getattr(model.config, "quantization_config", None) is not None:
        del model.config.quantization_config
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    return out


def _calibration(tokenizer, samples: int = 16, length: int = 256):
    from datasets import Dataset

    from qlinear.text import pydoc_text

    ids = tokenizer(pydoc_text(), return_tensors="pt").input_ids[0][: samples * length].reshape(samples, length)
    return Dataset.from_dict({"input_ids": ids.tolist(), "attention_mask": torch.ones_like(ids).tolist()})


def _save_reference(folder: Path, weights: dict[str, torch.Tensor]) -> None:
    from safetensors.torch import save_file

    save_file({k: v.detach().contiguous().cpu() for k, v in weights.items()}, str(folder / REFERENCE))


def llm_compressor(base: Path, out: Path, scheme: str) -> Path:
    """``oneshot(QuantizationModifier(targets="Linear", scheme=scheme, ignore=["lm_head"]))`` (or the
    config groups of :data:`CONFIG_GROUPS`), saved compressed."""
    from llmcompressor import oneshot
    from llmcompressor.modifiers.quantization import QuantizationModifier
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils.quantization_config import CompressedTensorsConfig

    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.bfloat16)
    tokenizer = AutoTokenizer.from_pretrained(str(base))
    extra = {}
    if scheme in CALIBRATED:
        extra = {"dataset": _calibration(tokenizer), "num_calibration_samples": 16, "max_seq_length": 256,
                 "processor": tokenizer}
    if scheme in CONFIG_GROUPS:
        recipe = QuantizationModifier(config_groups=CONFIG_GROUPS[scheme], ignore=["lm_head"])
    else:
        recipe = QuantizationModifier(targets="Linear", scheme=scheme, ignore=["lm_head"])
    oneshot(model=model, recipe=recipe, **extra)
    model.save_pretrained(str(out), save_compressed=True)
    tokenizer.save_pretrained(str(out))
    peer = AutoModelForCausalLM.from_pretrained(
        str(out), quantization_config=CompressedTensorsConfig(run_compressed=False), dtype=torch.bfloat16)
    _save_reference(out, {f"{n}.weight": m.weight for n, m in peer.named_modules()
                          if isinstance(m, torch.nn.Linear) and n != "lm_head"})
    return out


def modelopt(base: Path, out: Path, algo: str) -> Path:
    """``mtq.quantize(model, MODELOPT_CONFIGS[algo])`` calibrated on pydoc text, then ``export_hf_checkpoint``."""
    import modelopt.torch.quantization as mtq
    from modelopt.torch.export import export_hf_checkpoint
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.bfloat16)
    tokenizer = AutoTokenizer.from_pretrained(str(base))
    batches = torch.tensor(_calibration(tokenizer, samples=4)["input_ids"])

    def forward_loop(m):
        with torch.no_grad():
            m(batches)

    mtq.quantize(model, getattr(mtq, MODELOPT_CONFIGS[algo]), forward_loop=forward_loop)
    reference = {}
    if algo == "FP8":
        for name, module in model.named_modules():
            if hasattr(module, "weight_quantizer") and module.weight_quantizer.is_enabled and name != "lm_head":
                with torch.no_grad():
                    reference[f"{name}.weight"] = module.weight_quantizer(module.weight.float())
    export_hf_checkpoint(model, export_dir=str(out))
    tokenizer.save_pretrained(str(out))
    if reference:
        _save_reference(out, reference)
    return out


def make_all(out: Path, layers: int | None = 1, *, llmc=LLM_COMPRESSOR_SCHEMES, algos=MODELOPT_ALGOS) -> dict[str, Path]:
    """Every fixture under ``out``; returns ``{"base": ..., "llmc-FP8": ..., "modelopt-NVFP4": ...}``."""
    out.mkdir(parents=True, exist_ok=True)
    made = {"base": make_base(out / "base", layers)}
    for scheme in llmc:
        made[f"llmc-{scheme}"] = llm_compressor(made["base"], out / f"llmc-{scheme}", scheme)
    for algo in algos:
        made[f"modelopt-{algo}"] = modelopt(made["base"], out / f"modelopt-{algo}", algo)
    (out / "fixtures.json").write_text(json.dumps({k: str(v) for k, v in made.items()}, indent=1))
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--layers", type=int, default=1, help="decoder layers to keep (0: all)")
    args = parser.parse_args()
    made = make_all(args.out, args.layers or None)
    print("\n".join(f"{k}: {v}" for k, v in made.items()))


if __name__ == "__main__":
    main()
