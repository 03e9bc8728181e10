"""Does starting the decode GEMM during its activation quantization (PDL) pay? Same run, on and off.

    PYTHONPATH=. python3 bench/pdl_check.py [1,16]

Times each Triton W8A8 decode path (quantization + GEMM, the configs qlinear ships) as CUDA-graph
replays with weights rotating beyond L2, with ``QLINEAR_PDL`` unset and ``=0``, alternating.
"""
import os
import sys

import torch

from qlinear.bench import time_layers
from qlinear.formats import quantize
from qlinear.kernels import TritonFp8BlockKernel, TritonFp8RowwiseKernel, TritonInt8Kernel
from qlinear.schemes import SCHEMES

SHAPES = [(4096, 4096), (14336, 4096), (4096, 14336), (28672, 4096), (7168, 16384)]
KERNELS = [("fp8_per_channel", TritonFp8RowwiseKernel), ("fp8_per_block", TritonFp8BlockKernel),
           ("int8_per_channel", TritonInt8Kernel)]


def main():
    ms = [int(v) for v in sys.argv[1].split(",")] if len(sys.argv) > 1 else [1, 16]
    print(f"{torch.cuda.get_device_name()}; torch {torch.__version__}")
    gen = torch.Generator(device="cuda").manual_seed(0)
    for n, k in SHAPES:
        weights = [torch.randn(n, k, device="cuda", generator=gen, dtype=torch.bfloat16) for _ in range(4)]
        for scheme, kernel in KERNELS:
            qws = [quantize(w, SCHEMES[scheme].weight) for w in weights]
            for m in ms:
                x = torch.randn(m, k, device="cuda", generator=gen, dtype=torch.bfloat16)
                times = {}
                for setting in ("1", "0", "1", "0"):
                    os.environ["QLINEAR_PDL"] = setting
                    times.setdefault(setting, []).append(time_layers(qws, SCHEMES[scheme], kernel, x))
                on, off = min(times["1"]), min(times["0"])
                print(f"{kernel.name:19} M={m:<3} {n}x{k}: PDL {on:6.1f} us, off {off:6.1f} us, "
                      f"off/on {off / on:.3f}", flush=True)
        del weights
        torch.cuda.empty_cache()
    os.environ.pop("QLINEAR_PDL")


if __name__ == "__main__":
    main()
