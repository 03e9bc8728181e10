"""A/B: fp8_per_channel decode on the Triton GEMM with e4m3 products joining the fp32 sum
every 128 or 256 of K, or never (summed on the tensor cores alone), beside cuBLAS; prefill on the
Gluon GEMM (promoted every K-tile) beside cuBLAS. One run, CUDA-graph replays.

    PYTHONPATH=. python3 bench/fp8_promotion_ab.py
"""
from __future__ import annotations

import torch

import qlinear.kernels.triton.scaled_gemm as sg
from qlinear.bench import _copies, _rotating, reference_us, time_layers
from qlinear.formats import quantize
from qlinear.kernels import CublasFp8Kernel, GluonFp8RowwiseKernel, TritonFp8RowwiseKernel
from qlinear.schemes import SCHEMES

SHAPES = [(4096, 4096), (14336, 4096), (4096, 14336), (28672, 4096), (7168, 16384)]


def main():
    print(f"device: {torch.cuda.get_device_name()}; torch {torch.__version__}")
    scheme = SCHEMES["fp8_per_channel"]
    for n, k in SHAPES:
        gen = torch.Generator(device="cuda").manual_seed(n + k)
        ws = [torch.randn(n, k, device="cuda", generator=gen, dtype=torch.bfloat16) for _ in range(4)]
        qws = [quantize(w, scheme.weight) for w in ws]
        copies = _copies(n * k * 2)
        for m in (1, 4, 16, 64, 512, 1024, 4096):
            x = torch.randn(m, k, device="cuda", generator=gen, dtype=torch.bfloat16)
            bf = (ws * (copies // len(ws) + 1))[:copies]
            fn = _rotating([lambda w=w: torch.mm(x, w.t()) for w in bf])
            t_bf16 = reference_us(fn, m, graph=True)  # graph replays; above M=64 also eager, the faster
            parts = [f"bf16 {t_bf16:7.1f}"]
            if m <= 64:
                for every in (128, 256, None):
                    sg.PROMOTE_EVERY = every
                    t = time_layers(qws, scheme, TritonFp8RowwiseKernel, x, graph=True)
                    parts.append(f"triton promote {every}: {t:6.1f} ({t_bf16 / t:.2f}x)")
                sg.PROMOTE_EVERY = 128
                kernels = [CublasFp8Kernel]
            else:
                kernels = [GluonFp8RowwiseKernel, CublasFp8Kernel]
            for kernel in kernels:
                t = time_layers(qws, scheme, kernel, x, graph=True)
                parts.append(f"{kernel.name} {t:7.1f} ({t_bf16 / t:.2f}x)")
            print(f"{n}x{k} M={m}: " + " | ".join(parts), flush=True)


if __name__ == "__main__":
    main()
