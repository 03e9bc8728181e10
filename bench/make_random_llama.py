"""Save a Llama with SmolLM2-135M's layer shapes and random weights (no download), for GPU runs.

    python bench/make_random_llama.py OUT_DIR [--layers N] [--preset smollm2|llama3-8b]
"""
import argparse

import torch
from transformers import LlamaConfig, LlamaForCausalLM

PRESETS = {
    "smollm2": dict(hidden_size=576, intermediate_size=1536, num_attention_heads=9, num_key_value_heads=3, vocab_size=49152),
    "llama3-8b": dict(hidden_size=4096, intermediate_size=14336, num_attention_heads=32, num_key_value_heads=8, vocab_size=128256),
}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--preset", choices=PRESETS, default="smollm2")
    args = p.parse_args()
    torch.manual_seed(0)
    config = LlamaConfig(num_hidden_layers=args.layers, tie_word_embeddings=True, **PRESETS[args.preset])
    LlamaForCausalLM(config).to(torch.bfloat16).save_pretrained(args.out)


if __name__ == "__main__":
    main()
