"""Per-token x per-channel W8A8 prefill on Hopper: the Gluon wgmma rowwise GEMM (INT8 and e4m3)
swept over its launch options, against the Triton GEMM, cuBLAS and bf16, in one run (GPU).

    PYTHONPATH=. python3 bench/wgmma_rowwise_check.py [M] [STAGESxGROUP_M[xBLOCK_M],...] [NxK,...]

``triton.testing.do_bench`` medians with operands rotated beyond L2. "alone" times the GEMM on
quantized operands as CUDA-graph replays, per launch config; "layer" times the QuantizedLinear call, the fused per-token quantization of x
included, eagerly and as CUDA-graph replays ("graph": the GPU's time without the host's ~50 us per
Triton launch, which on the GPU machine exceeds the GPU time of the smaller shapes,
``bench/host_overhead_check.py``); "vs bf16" divides by bf16 ``torch.mm``'s faster of the two. The
first shape is timed again at the end (the GPU's clocks ramp during the first). Each launch config's
output is compared with the first config's (max |difference|; INT8 sums are exact, so 0 there);
e4m3 runs the 128-row configs only (``rowwise_gemm`` refuses it 256-row tiles).
"""
from __future__ import annotations

import sys

import torch
import triton

from qlinear.bench import _rotating, graph_median_us, median_us
from qlinear.formats import quantize
from qlinear.kernels import Dispatch, GluonFp8RowwiseKernel, GluonInt8Kernel, TritonFp8RowwiseKernel, TritonInt8Kernel
from qlinear.kernels.triton.act_quant import quantize_per_token
from qlinear.kernels.triton.wgmma_gemm import BLOCK, rowwise_gemm, weight_descriptors
from qlinear.layers import QuantizedLinear
from qlinear.schemes import SCHEMES

SHAPES = [(4096, 4096), (14336, 4096), (4096, 14336), (28672, 4096), (7168, 16384), (4096, 4096)]
L2_BYTES = 60 * 2**20


def timed(fns, graph: bool = False) -> float:
    fn = _rotating(fns)
    return graph_median_us(fn, rep_ms=300) if graph else median_us(fn, warmup_ms=50, rep_ms=300)


def main() -> None:
    m = int(sys.argv[1]) if len(sys.argv) > 1 else 4096
    configs = [tuple([int(v) for v in c.split("x")] + [BLOCK])[:3]  # BLOCK_M defaults to 128
               for c in (sys.argv[2] if len(sys.argv) > 2 else "4x8").split(",")]
    shapes = [tuple(int(v) for v in s.split("x")) for s in sys.argv[3].split(",")] if len(sys.argv) > 3 else SHAPES
    print(f"device: {torch.cuda.get_device_name()}; torch {torch.__version__}; triton {triton.__version__}; M={m}")
    for n, k in shapes:
        copies = max(2, L2_BYTES // (n * k) + 1)
        xs = [torch.randn(m, k, device="cuda", dtype=torch.bfloat16) for _ in range(copies)]
        ws = [torch.randn(n, k, device="cuda", dtype=torch.bfloat16) for _ in range(copies)]
        flops = 2 * m * n * k
        bf16_fns = [lambda x=x, w=w: torch.mm(x, w.T) for x, w in zip(xs, ws)]
        eager, graph = timed(bf16_fns), timed(bf16_fns, graph=True)
        t_bf16 = min(eager, graph)
        line = [f"{n}x{k}: bf16 {eager:7.1f} us, graph {graph:7.1f}"]
        for name, dtype, kernels in (("int8_per_channel", torch.int8, (TritonInt8Kernel, GluonInt8Kernel)),
                                     ("fp8_per_channel", torch.float8_e4m3fn, (TritonFp8RowwiseKernel,
                                                                              GluonFp8RowwiseKernel))):
            scheme = SCHEMES[name]
            qws = [quantize(w, scheme.weight) for w in ws]
            qxs = [quantize_per_token(x, dtype) for x in xs]
            if dtype == torch.float8_e4m3fn:
                t = timed([lambda q=q, w=w: torch._scaled_mm(q[0], w.data.t(), scale_a=q[1], scale_b=w.scale.reshape(1, -1),
                                                           out_dtype=torch.bfloat16) for q, w in zip(qxs, qws)])
                line.append(f"cuBLAS rowwise alone {t:7.1f}")
            t = timed([lambda x=x: quantize_per_token(x, dtype) for x in xs], graph=True)
            line.append(f"{name[:4]} quant {t:5.1f}")
            descs = [weight_descriptors(w.data, None, "rowwise") for w in qws]
            first = None
            for stages, group_m, block_m in configs:
                if block_m != BLOCK and dtype != torch.int8:
                    continue  # e4m3 keeps 128-row tiles (its fp32 sums of K-tiles fill the registers)
                fns = [lambda q=q, w=w, d=d: rowwise_gemm(q[0], q[1], w.data, w.scale.float().reshape(-1),
                                                          stages=stages, group_m=group_m, b_descs=d, block_m=block_m)
                       for q, w, d in zip(qxs, qws, descs)]
                out = fns[0]().float()
                first = out if first is None else first
                t = timed(fns, graph=True)
                line.append(f"{name[:4]} alone s{stages}g{group_m}m{block_m} {t:7.1f} ({flops / t / 1e6:5.0f} T, "
                            f"diff {(out - first).abs().max().item():.3g})")
            for kernel in kernels:
                layers = [QuantizedLinear(w, None, scheme, Dispatch.single(kernel), "bench") for w in qws]
                fns = [lambda lay=lay, x=x: lay(x) for lay, x in zip(layers, xs)]
                t, tg = timed(fns), timed(fns, graph=True)
                line.append(f"{kernel.name} layer {t:7.1f} ({t_bf16 / t:4.2f}x bf16), graph {tg:7.1f} "
                            f"({t_bf16 / tg:4.2f}x bf16)")
            del qws, qxs
        print(" | ".join(line), flush=True)
        del xs, ws
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
