"""Why do decode kernels stream the weight slower than a pure read? Launches, one after another, a
pure read of the weight (``read_pattern_probe``'s kernel) and qlinear's one-token decode kernels on
the same shape, so Nsight Compute can profile them side by side (GPU).

    PYTHONPATH=. python3 bench/decode_ncu_probe.py [--shape 4096x14336] [--time]
    ncu --clock-control none --kernel-name regex:'_read|_gemv|_e2m1|_scaled_gemm|_quant' \\
        --section SpeedOfLight --section WarpStateStats ... python3 bench/decode_ncu_probe.py

Kernels, one token (M = 1), launched ``--launches`` times each (the first compiles):

* ``read fp8 R/BW/split``: loads the ``[N, K]`` e4m3 bytes in R-row x BW-word steps and XORs them;
* ``read e2m1 R/BW/split``: the packed NVFP4 codes and their e4m3 scales, likewise;
* ``triton_w8a16``: the CUDA-core GEMV on an e4m3 per-channel weight and the bf16 token;
* ``triton_fp8_rowwise``: per-token FP8 quantization, then the swapped tensor-core decode GEMM;
* ``triton_w4a16`` / ``gluon_w4a16``: NVFP4 on the CUDA-core GEMV / the bf16-MMA decode GEMM.

``--time``: CUDA-graph replay medians of each over weight copies rotated beyond L2 instead (the
times the ncu counters are to be read against).
"""
from __future__ import annotations

import argparse

import torch

from qlinear.bench import _copies, _rotating, graph_median_us, measure_ceilings
from qlinear.formats import quantize
from qlinear.kernels import Dispatch, GluonW4A16Kernel
from qlinear.kernels.triton_w8a8 import TritonFp8RowwiseKernel
from qlinear.kernels.triton_weight_only import TritonW4A16Kernel, TritonW8A16Kernel
from qlinear.layers import QuantizedLinear
from qlinear.schemes import SCHEMES

from read_pattern_probe import read

KERNELS = {"triton_w8a16": ("fp8_a16", TritonW8A16Kernel),
           "triton_fp8_rowwise": ("fp8_per_channel", TritonFp8RowwiseKernel),
           "triton_w4a16": ("nvfp4_a16", TritonW4A16Kernel),
           "gluon_w4a16": ("nvfp4_a16", GluonW4A16Kernel)}
READS = [("fp8", 64, 64, 1), ("fp8", 16, 32, 4), ("fp8", 64, 32, 4), ("e2m1", 64, 32, 4), ("e2m1", 16, 64, 4)]


def read_fns(kind, n, k, r, bw, split, copies):
    kw = k // 4 if kind == "fp8" else k // 8
    ws = [torch.randint(-2**31, 2**31 - 1, (n, kw), device="cuda", dtype=torch.int32) for _ in range(copies)]
    ss = [torch.randint(-2**31, 2**31 - 1, (n, kw // 8), device="cuda", dtype=torch.int32) if kind == "e2m1" else None
          for _ in range(copies)]
    out = torch.empty(n * 64, device="cuda", dtype=torch.int32)
    return [lambda w=w, s=s: read(w, s, out, n, kw, r, bw, split, False, kind == "e2m1", 4) for w, s in zip(ws, ss)]


def layer_fns(scheme_name, kernel, n, x, copies):
    scheme = SCHEMES[scheme_name]
    gen = torch.Generator(device="cuda").manual_seed(0)
    layers = []
    for _ in range(copies):
        w = torch.randn(n, x.shape[1], device="cuda", generator=gen, dtype=torch.bfloat16)
        layers.append(QuantizedLinear(quantize(w, scheme.weight), None, scheme, Dispatch.single(kernel), kernel.name))
    return [lambda L=L: L(x) for L in layers]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", default="4096x14336")
    ap.add_argument("--launches", type=int, default=2)
    ap.add_argument("--time", action="store_true", help="graph-replay medians instead of single launches")
    args = ap.parse_args()
    n, k = (int(v) for v in args.shape.split("x"))
    x = torch.randn(1, k, device="cuda", dtype=torch.bfloat16)
    copies = _copies(n * k) if args.time else 1
    if args.time:
        ceil = measure_ceilings()
        print(f"copy {ceil.copy_bytes_per_s / 1e12:.2f} TB/s; {n}x{k} M=1; FP8 floor "
              f"{1e6 * n * k / ceil.copy_bytes_per_s:.1f} us, NVFP4 floor "
              f"{1e6 * n * k * (0.5 + 1 / 16) / ceil.copy_bytes_per_s:.1f} us", flush=True)
    cases = {f"read {kind} R={r} BW={bw}w split={split}": read_fns(kind, n, k, r, bw, split, copies)
             for kind, r, bw, split in READS}
    cases.update({name: layer_fns(scheme, kernel, n, x, copies) for name, (scheme, kernel) in KERNELS.items()})
    for name, fns in cases.items():
        if args.time:
            print(f"{name:32} {graph_median_us(_rotating(fns)):7.1f} us", flush=True)
        else:
            for _ in range(args.launches):
                fns[0]()
            torch.cuda.synchronize()
            print(f"launched {name}", flush=True)


if __name__ == "__main__":
    main()
