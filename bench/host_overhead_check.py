"""Host time per call against GPU time per call for W8A8 prefill layers (GPU).

    PYTHONPATH=. python3 bench/host_overhead_check.py [M] [NxK]

For each kernel: the eager median (``do_bench``), the CUDA-graph replay median (no host work),
and the host time per call (``perf_counter`` over 200 calls enqueued without synchronizing, the
GPU then drained): when the host time exceeds the graph time, eager calls are host-bound.
"""
from __future__ import annotations

import sys
import time

import torch

from qlinear.bench import graph_median_us, median_us
from qlinear.formats import quantize
from qlinear.kernels import Dispatch, GluonFp8RowwiseKernel, GluonInt8Kernel, TritonFp8RowwiseKernel, TritonInt8Kernel
from qlinear.kernels.triton.act_quant import quantize_per_token
from qlinear.layers import QuantizedLinear
from qlinear.schemes import SCHEMES


def host_us(fn, calls: int = 200) -> float:
    fn()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    host = (time.perf_counter() - start) / calls * 1e6
    torch.cuda.synchronize()
    return host


def main() -> None:
    m = int(sys.argv[1]) if len(sys.argv) > 1 else 4096
    n, k = (int(v) for v in (sys.argv[2] if len(sys.argv) > 2 else "4096x4096").split("x"))
    x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
    w = torch.randn(n, k, device="cuda", dtype=torch.bfloat16)
    print(f"{torch.cuda.get_device_name()} M={m} N={n} K={k}")
    for label, fn in (("bf16 torch.mm", lambda: x @ w.T),
                      ("quantize_per_token int8", lambda: quantize_per_token(x, torch.int8))):
        print(f"{label:28} eager {median_us(fn):7.1f} us  graph {graph_median_us(fn):7.1f} us  host {host_us(fn):6.1f} us")
    for name, kernels in (("int8_per_channel", (TritonInt8Kernel, GluonInt8Kernel)),
                          ("fp8_per_channel", (TritonFp8RowwiseKernel, GluonFp8RowwiseKernel))):
        qw = quantize(w, SCHEMES[name].weight)
        for kernel in kernels:
            layer = QuantizedLinear(qw, None, SCHEMES[name], Dispatch.single(kernel), "host")
            fn = lambda: layer(x)  # noqa: E731
            print(f"{kernel.name:28} eager {median_us(fn):7.1f} us  graph {graph_median_us(fn):7.1f} us  "
                  f"host {host_us(fn):6.1f} us")


if __name__ == "__main__":
    main()
