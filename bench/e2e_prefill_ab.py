"""The e2e prefill (Llama-3.1-8B shape, 4096 tokens, ``qlinear.e2e.prefill_ms``) of one quantized
model under launch variants of its Gluon GEMMs, interleaved so clock drift shows (GPU):

    PYTHONPATH=. python3 bench/e2e_prefill_ab.py [scheme,...] [rounds]

Variants: as shipped (tile height per shape, PDL after the quantization); ``QLINEAR_PDL=0``; the
rowwise GEMM held at 128-row tiles. bf16 is timed before and after.
"""
from __future__ import annotations

import os
import sys

import torch
import triton

from qlinear.e2e import build_model, prefill_ms
from qlinear.kernels.triton import wgmma_gemm
from qlinear.layers import quantize

SHIPPED_BLOCK_M = wgmma_gemm.rowwise_block_m


def variant(name: str) -> None:
    os.environ["QLINEAR_PDL"] = "0" if name == "no PDL" else "1"
    wgmma_gemm.rowwise_block_m = (lambda m, n, programs: 128) if name == "128-row tiles" else SHIPPED_BLOCK_M


def main() -> None:
    schemes = sys.argv[1].split(",") if len(sys.argv) > 1 else ["int8_per_channel", "fp8_per_channel"]
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    print(f"device: {torch.cuda.get_device_name()}; torch {torch.__version__}; triton {triton.__version__}")
    model = build_model()
    bf16 = [prefill_ms(model)]
    print(f"bf16 prefill 4096: {bf16[0]:.2f} ms", flush=True)
    del model
    torch.cuda.empty_cache()
    for scheme in schemes:
        model = build_model()
        quantize(model, scheme, progress=False)
        for r in range(rounds):
            for name in ("shipped", "no PDL", "128-row tiles"):
                variant(name)
                ms = prefill_ms(model)
                print(f"{scheme} round {r} {name:14}: {ms:7.2f} ms ({bf16[0] / ms:.3f}x bf16)", flush=True)
        variant("shipped")
        del model
        torch.cuda.empty_cache()
    model = build_model()
    print(f"bf16 prefill 4096, again: {prefill_ms(model):.2f} ms", flush=True)


if __name__ == "__main__":
    main()
