"""Issue 4, item 3: NVFP4 weights converted to FP8 at load, timed against bf16 and NVFP4 W4A16 at prefill.

    PYTHONPATH=. python3 bench/convert_speed.py [M]      # on a CUDA GPU; default M = 4096

Each layer is built as qlinear builds it (``qlinear.quantize(..., convert_to=...)``) with the kernels
its dispatch table selects for M, and called as a model calls it (activation quantization included).
``triton.testing.do_bench`` medians of eager calls and of CUDA-graph replays ("graph": the GPU's
time without the host's launch overhead, which on our GPU machine is ~50 us per Triton launch and
~230 us per eager Gluon launch, ``bench/results/h200_issue3.md``); each ratio is bf16 ``torch.mm``
time over the layer's time, both measured in this run the same way. Also prints each conversion's
weight SQNR against the float original.
"""
import sys

import torch

import qlinear
from qlinear.bench import graph_median_us, median_us
from qlinear.formats import dequantize, sqnr_db

SHAPES = [(4096, 4096), (14336, 4096), (4096, 14336), (28672, 4096)]
VARIANTS = [("nvfp4_a16", None), ("nvfp4_a16", "fp8_per_block"), ("nvfp4_a16", "fp8_per_channel"),
            ("mxfp4_a16", "fp8_per_block"), ("fp8_per_block", None)]


def main():
    m = int(sys.argv[1]) if len(sys.argv) > 1 else 4096
    print(f"device {torch.cuda.get_device_name()}, torch {torch.__version__}, M={m}")
    print(f"{'N x K':>12} {'variant':32} {'kernel':22} {'us':>9} {'vs bf16':>8} {'graph us':>9} {'vs bf16':>8} "
          f"{'SQNR dB':>8}")
    for n, k in SHAPES:
        torch.manual_seed(0)
        w = torch.randn(n, k, device="cuda", dtype=torch.bfloat16) * 0.02
        x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
        bf16_us = median_us(lambda: x @ w.t())
        bf16_graph = graph_median_us(lambda: x @ w.t())
        print(f"{n:>6}x{k:<5} {'bf16 torch.mm':32} {'cublas':22} {bf16_us:9.1f} {1.0:8.2f} {bf16_graph:9.1f} {1.0:8.2f}")
        for scheme, target in VARIANTS:
            model = torch.nn.Sequential(torch.nn.Linear(k, n, bias=False, device="cuda", dtype=torch.bfloat16))
            model[0].weight.data.copy_(w)
            report = qlinear.quantize(model, scheme, convert_to=target, ignore=(), progress=False)
            layer = model[0]
            us = median_us(lambda: layer(x))
            graph = graph_median_us(lambda: layer(x))
            db = sqnr_db(w.float(), dequantize(layer.quantized_weight()))
            print(f"{n:>6}x{k:<5} {report.scheme:32} {layer.kernel_for(m).name:22} {us:9.1f} {bf16_us / us:8.2f} "
                  f"{graph:9.1f} {bf16_graph / graph:8.2f} {db:8.2f}")
            del model, layer
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
