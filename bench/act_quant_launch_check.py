"""Is the fused activation quantization at M=4096, K=4096 bound by the GPU or by launching from Python?

    PYTHONPATH=. python3 bench/act_quant_launch_check.py

Times each quantization kernel eagerly (`do_bench`, as `qlinear bench` does) and as CUDA-graph
replays (`do_bench_cudagraph`: no CPU launch cost between calls), beside a same-size copy
(read half of x, write it: a strided torch copy, slow in torch 2.11, kept only as printed), inputs
rotating beyond L2. Bandwidth = bytes (x read, q and scales written) / time.
"""
import itertools

import torch

from qlinear.bench import ROTATE_BYTES, graph_median_us, measure_ceilings, median_us
from qlinear.kernels.triton.act_quant import quantize_per_group, quantize_per_token


def main():
    ceil = measure_ceilings()
    print(f"{torch.cuda.get_device_name()}; torch {torch.__version__}; copy {ceil.copy_bytes_per_s / 1e12:.2f} TB/s")
    for m, k in ((4096, 4096), (8192, 4096), (4096, 14336)):
        copies = max(2, ROTATE_BYTES // (m * k * 3) + 1)
        xs = [torch.randn(m, k, device="cuda", dtype=torch.bfloat16) for _ in range(copies)]
        half = torch.empty(m, k // 2, device="cuda", dtype=torch.bfloat16)
        cases = (
            ("copy x[:, :K/2] -> half", lambda x: half.copy_(x[:, : k // 2]), 0, m * k * 2),
            ("per-token e4m3", lambda x: quantize_per_token(x), m * 4, m * k * 3),
            ("per-token int8", lambda x: quantize_per_token(x, torch.int8), m * 4, m * k * 3),
            ("1x128 e4m3", lambda x: quantize_per_group(x, 128), m * -(-k // 128) * 4, m * k * 3),
            ("1x128 e4m3 M-major", lambda x: quantize_per_group(x, 128, m_major=True), m * -(-k // 128) * 4, m * k * 3),
        )
        for name, fn, scale_bytes, data_bytes in cases:
            nbytes = data_bytes + scale_bytes
            it = itertools.count()
            eager = median_us(lambda: fn(xs[next(it) % copies]))
            it = itertools.count()
            graph = graph_median_us(lambda: fn(xs[next(it) % copies]))
            print(f"{name:22} M={m:<5} K={k:<6} eager {eager:6.1f} us ({100 * nbytes / eager / 1e-6 / ceil.copy_bytes_per_s:5.1f}% "
                  f"of copy) | graph {graph:6.1f} us ({100 * nbytes / graph / 1e-6 / ceil.copy_bytes_per_s:5.1f}%)", flush=True)


if __name__ == "__main__":
    main()
