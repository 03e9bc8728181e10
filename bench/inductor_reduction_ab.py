"""Compiled decoder, Inductor's reductions looped (default) vs persistent: does holding a whole row
on chip make the compiler-fused per-token quantization (one read of the producer's inputs instead of
two) faster end to end?

``triton.multi_kernel``: 0 = Inductor's default (persistent only up to 1024 elements per row);
1 = persistent up to 16384 and looped, the faster picked by timing at the first call; 2 = persistent
up to 16384 forced. The same option for bf16 and the quantized model. First the kernel time of one
compiled 4-layer prefill (reductions listed), then the 32-layer decoder timed, variants alternating.

    PYTHONPATH=. python3 bench/inductor_reduction_ab.py [--variants 0,1,2] [--schemes fp8_per_channel] [--repeats 1]
"""
from __future__ import annotations

import argparse

import torch

from qlinear.e2e import build_model, compile_decoder_layers, measure, timing_line
from qlinear.layers import quantize

import profile_e2e_prefill


def model_for(scheme: str, layers: int | None, variant: int):
    torch._dynamo.reset()
    model = build_model(layers)
    if scheme != "bf16":
        quantize(model, scheme, progress=False)
    compile_decoder_layers(model, {"triton.multi_kernel": variant})
    return model


def profile(scheme: str, variant: int, tokens: int = 4096) -> None:
    model = model_for(scheme, 4, variant)
    ids = torch.randint(0, model.config.vocab_size, (1, tokens), device="cuda")
    times = profile_e2e_prefill.kernel_times_ms(model, ids)
    print(f"\n## {scheme}, multi_kernel={variant}, 4 layers, {tokens} tokens: {sum(times.values()):.3f} ms of kernels")
    for name, ms in sorted(times.items(), key=lambda kv: -kv[1])[:12]:
        print(f"{ms:8.3f} ms  {name}")
    del model
    torch.cuda.empty_cache()


def timed(scheme: str, variant: int, layers: int | None) -> str:
    model = model_for(scheme, layers, variant)
    decode, prefill = measure(model)
    del model
    torch.cuda.empty_cache()
    return timing_line(f"{scheme:16} multi_kernel={variant}", decode, prefill)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--variants", default="0,1,2")
    p.add_argument("--schemes", default="fp8_per_channel")
    p.add_argument("--layers", type=int, default=None)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--no-profile", action="store_true")
    a = p.parse_args()
    variants = [int(v) for v in a.variants.split(",")]
    schemes = ["bf16", *a.schemes.split(",")]
    if not a.no_profile:
        for s in schemes:
            for v in variants:
                profile(s, v)
    for _ in range(a.repeats):
        for v in variants:
            for s in schemes:
                print(timed(s, v, a.layers), flush=True)


if __name__ == "__main__":
    main()
