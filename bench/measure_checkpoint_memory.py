"""Peak resident memory while loading a checkpoint with qlinear's reader (CPU).

    python3 bench/measure_checkpoint_memory.py DIR    # any checkpoint qlinear reads (single file or shards)

A thread samples the process's resident size (/proc/self/statm) every millisecond during
`load_quantized`; the peak minus the resident size just before is compared with the checkpoint's
tensor bytes plus its largest tensor held in bf16. Library code is imported before the baseline so
that the growth counts data, not modules.
"""
import gc
import os
import sys
import threading
from pathlib import Path

import accelerate  # noqa: F401  (modules the reader imports, loaded before the baseline)
import torch
import transformers.models.llama.modeling_llama  # noqa: F401
from safetensors import safe_open

from qlinear.checkpoints import load_quantized
from qlinear.checkpoints.reader import _tensor_files

PAGE = os.sysconf("SC_PAGE_SIZE")


def resident() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def main():
    folder = Path(sys.argv[1])
    itemsize = {"F8_E4M3": 1, "I8": 1, "BF16": 2, "F16": 2, "F32": 4, "U8": 1, "F8_E8M0": 1}
    total, largest = 0, 0
    for file in sorted(set(_tensor_files(folder).values())):
        with safe_open(str(file), "pt") as f:
            for name in f.keys():
                t = f.get_slice(name)
                numel = 1
                for d in t.get_shape():
                    numel *= d
                total += numel * itemsize[t.get_dtype()]
                largest = max(largest, numel)
    gc.collect()
    before = resident()
    peak = [before]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], resident())
            done.wait(0.001)

    sampler = threading.Thread(target=sample)
    sampler.start()
    model, scheme = load_quantized(folder)
    done.set()
    sampler.join()
    peak[0] = max(peak[0], resident())
    after_load = resident()
    with torch.no_grad():
        model(torch.tensor([[1, 2, 3]]))
    print(f"checkpoint {folder} ({scheme.name}): tensors {total / 1e6:.1f} MB, largest tensor as bf16 "
          f"{largest * 2 / 1e6:.1f} MB; peak resident growth while loading {(peak[0] - before) / 1e6:.1f} MB, "
          f"resident after {(after_load - before) / 1e6:.1f} MB (bound: {(total + largest * 2) / 1e6:.1f} MB); "
          f"after one forward pass {(resident() - before) / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
