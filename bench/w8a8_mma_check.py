"""W8A8 decode on the Gluon ``mma.sync`` GEMM (:mod:`qlinear.kernels.triton.w8a8_mma`) against the
swapped Triton GEMM the layers run now, bf16 ``torch.mm`` and the byte floor, in one run (GPU).

    PYTHONPATH=. python3 bench/w8a8_mma_check.py [--sweep] [--ms 1,2,4,8,16] [--shapes NxK,...]

For each shape and M: the error of the new kernel against the float64 dequantize-then-matmul
reference (mean |out - ref| / mean |ref|, on the same quantized operands), then CUDA-graph replay
medians (``triton.testing.do_bench_cudagraph``), weights rotated beyond L2, every qlinear time
with its activation quantization: "new" = quantization + ``w8a8_mma`` (picked config, PDL), "triton" =
the ``triton_fp8_rowwise`` / ``triton_fp8_block`` / ``triton_int8`` layer call. %floor = weight
bytes at the measured copy bandwidth over the time. ``--sweep`` also times each launch config of
the new kernel at M = 1 and 16 (per-channel FP8).
"""
from __future__ import annotations

import argparse

import torch
import triton

from qlinear.bench import _rotating, graph_median_us, measure_ceilings
from qlinear.formats import dequantize, quantize
from qlinear.kernels import Dispatch, TritonFp8BlockKernel, TritonFp8RowwiseKernel, TritonInt8Kernel
from qlinear.kernels.triton.act_quant import quantize_per_group, quantize_per_token
from qlinear.kernels.triton.w8a8_mma import W8A8MmaConfig, pick_w8a8_mma_config, w8a8_mma
from qlinear.layers import QuantizedLinear
from qlinear.schemes import SCHEMES

SHAPES = [(4096, 4096), (14336, 4096), (4096, 14336), (28672, 4096), (7168, 16384)]
ROTATE_BYTES = 256 * 2**20
CASES = {  # scheme -> (Triton kernel, quantized dtype, scales)
    "fp8_per_channel": (TritonFp8RowwiseKernel, torch.float8_e4m3fn, "rowwise"),
    "fp8_per_block": (TritonFp8BlockKernel, torch.float8_e4m3fn, "block"),
    "int8_per_channel": (TritonInt8Kernel, torch.int8, "rowwise"),
}


def quantize_x(x: torch.Tensor, dtype: torch.dtype, scales: str):
    return quantize_per_group(x, 128) if scales == "block" else quantize_per_token(x, dtype)


def new_call(x, qw, dtype, scales, config):
    def run():
        q, s = quantize_x(x, dtype, scales)
        return w8a8_mma(q, s, qw.data, qw.scale.float(), scales=scales, config=config, after_producer=True)
    return run


def relative_error(x, qw, dtype, scales, config) -> float:
    q, s = quantize_x(x, dtype, scales)
    out = w8a8_mma(q, s, qw.data, qw.scale.float(), scales=scales, config=config).double()
    if scales == "block":
        xd = (q.double().reshape(q.shape[0], -1, 128) * s.double()[:, :, None]).reshape(q.shape)
    else:
        xd = q.double() * s.double()
    ref = xd @ dequantize(qw).double().T
    return ((out - ref).abs().mean() / ref.abs().mean()).item()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ms", default="1,2,4,8,16")
    ap.add_argument("--shapes", default=",".join(f"{n}x{k}" for n, k in SHAPES))
    ap.add_argument("--schemes", default=",".join(CASES))
    ap.add_argument("--sweep", action="store_true")
    args = ap.parse_args()
    ms = [int(v) for v in args.ms.split(",")]
    shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",")]
    ceil = measure_ceilings()
    print(f"device: {torch.cuda.get_device_name()}; torch {torch.__version__}; triton {triton.__version__}; "
          f"copy {ceil.copy_bytes_per_s / 1e12:.2f} TB/s", flush=True)
    for n, k in shapes:
        copies = max(2, ROTATE_BYTES // (n * k) + 1)
        ws = [torch.randn(n, k, device="cuda", dtype=torch.bfloat16) for _ in range(copies)]
        floor_us = n * k / ceil.copy_bytes_per_s * 1e6
        for name in args.schemes.split(","):
            kernel, dtype, scales = CASES[name]
            scheme = SCHEMES[name]
            qws = [quantize(w, scheme.weight) for w in ws]
            layers = [QuantizedLinear(qw, None, scheme, Dispatch.single(kernel), "bench") for qw in qws]
            for m in ms:
                x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
                config = pick_w8a8_mma_config(n, k, m, scales=scales)
                err = relative_error(x, qws[0], dtype, scales, config)
                t_bf16 = graph_median_us(_rotating([lambda w=w: torch.mm(x, w.T) for w in ws]), rep_ms=200)
                t_tri = graph_median_us(_rotating([lambda lay=lay: lay(x) for lay in layers]), rep_ms=200)
                t_new = graph_median_us(_rotating([new_call(x, qw, dtype, scales, config) for qw in qws]), rep_ms=200)
                print(f"{name:16s} {n}x{k} M={m:2d}: bf16 {t_bf16:6.1f} | {kernel.name} {t_tri:6.1f} "
                      f"({100 * floor_us / t_tri:4.1f}%) | new {config.key()} {t_new:6.1f} ({100 * floor_us / t_new:4.1f}%, "
                      f"{t_bf16 / t_new:4.2f}x bf16, {t_tri / t_new:4.2f}x {kernel.name}) | rel err {err:.2e}", flush=True)
                if args.sweep and m in (1, 4) and name == "fp8_per_channel":
                    row = []
                    for warps in (4,):
                        for chunks in (2, 4):
                            for split in (1, 2, 4, 8, 16):
                                cfg = W8A8MmaConfig(warps, chunks, split)
                                if k // split < 64 * chunks:
                                    continue
                                t = graph_median_us(_rotating([new_call(x, qw, dtype, scales, cfg) for qw in qws]),
                                                    rep_ms=100)
                                row.append((t, cfg.key()))
                    row.sort()
                    print("    sweep: " + ", ".join(f"{key} {t:.1f}" for t, key in row[:8]), flush=True)
            del qws, layers
        del ws
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
