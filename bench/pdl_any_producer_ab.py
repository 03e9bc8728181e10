"""Decode GEMMs launched with PDL whatever kernel precedes them (GPU): the compiled Llama-3.1-8B-shaped
decoder's decode step with ``QLINEAR_PDL=1`` against ``=0``, alternating on one compiled model
(each timing captures its own CUDA graph, so the switch takes effect), bf16 compiled beside it.

With the per-token quantization fused by the compiler (the default), the GEMM before this change
followed an Inductor kernel with a plain launch; launched with PDL it may start on SMs the previous
kernel has left, prefetch its first weight bytes into L2, and wait there for that kernel's writes.

    PYTHONPATH=. python3 bench/pdl_any_producer_ab.py [--layers 32] [--schemes fp8_per_channel] [--repeats 3]
"""
from __future__ import annotations

import argparse
import os

import torch

from qlinear.e2e import build_model, compile_decoder_layers, decode_step_ms
from qlinear.layers import quantize


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=32)
    ap.add_argument("--schemes", default="fp8_per_channel")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    batches = (1, 16)
    model = build_model(args.layers)
    torch._dynamo.reset()
    compile_decoder_layers(model)
    bf16 = {b: [decode_step_ms(model, b) for _ in range(2)] for b in batches}
    print("bf16 compiled " + "  ".join(f"b={b}: {' '.join(f'{t:.3f}' for t in ts)} ms" for b, ts in bf16.items()),
          flush=True)
    del model
    torch.cuda.empty_cache()
    for scheme in args.schemes.split(","):
        model = build_model(args.layers)
        quantize(model, scheme, progress=False)
        torch._dynamo.reset()
        compile_decoder_layers(model)
        times = {(b, pdl): [] for b in batches for pdl in ("1", "0")}
        for _ in range(args.repeats):
            for b in batches:
                for pdl in ("1", "0"):
                    os.environ["QLINEAR_PDL"] = pdl
                    times[(b, pdl)].append(decode_step_ms(model, b))
        os.environ.pop("QLINEAR_PDL")
        for b in batches:
            on, off = times[(b, "1")], times[(b, "0")]
            best_bf16 = min(bf16[b])
            print(f"{scheme} compiled b={b}: PDL on {' '.join(f'{t:.3f}' for t in on)} ms ({best_bf16 / min(on):.3f}x "
                  f"bf16), off {' '.join(f'{t:.3f}' for t in off)} ms ({best_bf16 / min(off):.3f}x bf16)", flush=True)
        del model
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
