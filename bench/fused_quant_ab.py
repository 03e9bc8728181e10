"""Compiled decoder layers, activation quantization fused by the compiler vs inside the opaque op.

With every decoder layer compiled, per-channel FP8 and INT8 layers quantize x in PyTorch ops that
Inductor fuses into x's producer (``qlinear::linear_quantized``); ``QLINEAR_FUSE_ACT_QUANT=0`` keeps
the opaque ``qlinear::linear`` (quantization by qlinear's Triton kernel inside the op). Both in one run, next to
bf16 compiled, then the numbers: how often a compiled layer's output differs from eager mode's, with
Inductor's default division and with IEEE division.

    PYTHONPATH=. python3 bench/fused_quant_ab.py [--layers 32] [--schemes fp8_per_channel,int8_per_channel]
"""
from __future__ import annotations

import argparse
import os

import torch

from qlinear.e2e import build_model, compile_decoder_layers, measure, timing_line
from qlinear.layers import QuantizedLinear, quantize


def timed(scheme: str, layers: int, fused: bool, batches=(1, 16)) -> str:
    model = build_model(layers)
    if scheme != "bf16":
        os.environ["QLINEAR_FUSE_ACT_QUANT"] = "1" if fused else "0"  # read as the layers are built
        quantize(model, scheme, progress=False)
    torch._dynamo.reset()
    compile_decoder_layers(model)
    decode, prefill = measure(model, batches)
    del model
    torch.cuda.empty_cache()
    label = scheme if scheme == "bf16" else f"{scheme} {'fused' if fused else 'opaque'}"
    return timing_line(f"{label:28}", decode, prefill)


def division_config():
    cfg = torch._inductor.config
    if hasattr(cfg, "eager_numerics"):
        return cfg.eager_numerics, "division_rounding"
    return cfg, "emulate_divison_rounding"


def layer_differences(scheme: str) -> str:
    holder, name = division_config()
    lines = []
    for exact in (False, True):
        torch._dynamo.reset()
        torch.manual_seed(0)
        layer = QuantizedLinear.from_linear(torch.nn.Linear(4096, 4096, dtype=torch.bfloat16, device="cuda"), scheme)
        setattr(holder, name, exact)
        compiled = torch.compile(layer, dynamic=False, fullgraph=True)
        for m in (1, 16, 300, 4096):
            x = torch.randn(m, 4096, dtype=torch.bfloat16, device="cuda")
            differ = (compiled(x) != layer(x)).any(dim=1).sum().item()
            lines.append(f"{scheme} {name}={exact} M={m}: {differ} of {m} output rows differ from eager")
        setattr(holder, name, False)
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--layers", type=int, default=None)
    p.add_argument("--schemes", default="fp8_per_channel,int8_per_channel")
    p.add_argument("--repeats", type=int, default=1)
    a = p.parse_args()
    schemes = a.schemes.split(",")
    print(division_config()[1], "default", getattr(*division_config()), flush=True)
    for s in schemes:
        print(layer_differences(s), flush=True)
    print(timed("bf16", a.layers, True), flush=True)
    for _ in range(a.repeats):
        for s in schemes:
            print(timed(s, a.layers, True), flush=True)
            print(timed(s, a.layers, False), flush=True)


if __name__ == "__main__":
    main()
