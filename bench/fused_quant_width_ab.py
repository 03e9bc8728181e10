"""Which layers should leave activation quantization to the compiler: compiled 32-layer prefill of
4096 tokens, per-channel FP8, with the quantization fused for every layer, for layers of K <= 8192
only (down_proj, K = 14336, keeps qlinear's kernel inside the op), and for none; bf16 alongside.

    PYTHONPATH=. python3 bench/fused_quant_width_ab.py [--repeats 2]
"""
from __future__ import annotations

import argparse
import os

import torch

from qlinear.e2e import build_model, compile_decoder_layers, prefill_ms
from qlinear.layers import quantize


def prefill(scheme: str, fuse: str, max_k: str) -> float:
    os.environ["QLINEAR_FUSE_ACT_QUANT"] = fuse
    os.environ["QLINEAR_FUSE_ACT_QUANT_MAX_K"] = max_k
    model = build_model(None)
    if scheme != "bf16":
        quantize(model, scheme, progress=False)
    torch._dynamo.reset()
    compile_decoder_layers(model)
    ms = prefill_ms(model, 4096)
    del model
    torch.cuda.empty_cache()
    return ms


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=2)
    a = p.parse_args()
    bf16 = prefill("bf16", "1", "")
    print(f"bf16 compiled prefill 4096: {bf16:.2f} ms", flush=True)
    for _ in range(a.repeats):
        for label, fuse, max_k in (("fused, every layer", "1", ""), ("fused, K <= 8192", "1", "8192"),
                                   ("inside the op", "0", "")):
            ms = prefill("fp8_per_channel", fuse, max_k)
            print(f"fp8_per_channel {label:20} prefill 4096: {ms:7.2f} ms  {bf16 / ms:5.3f}x bf16", flush=True)


if __name__ == "__main__":
    main()
