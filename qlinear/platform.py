"""Which hardware a layer runs on, and what that hardware can really compute.

A :class:`Platform` is plain data so that selection can be tested on simulated GPUs
(sm_75, sm_80, sm_89, sm_90, sm_100) on a CPU-only machine.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

# CUDA compute capabilities (major*10 + minor) from NVIDIA's architecture docs.
FP8_TENSOR_CORES = 89  # Ada (sm_89) and Hopper (sm_90) added e4m3/e5m2 MMA
INT8_TENSOR_CORES = 75  # Turing
BLOCKWISE_FP8_CUBLAS = 90  # cuBLASLt 1x128/128x128 scale modes exist only on sm_90
FP4_MX_TENSOR_CORES = 100  # Blackwell: e2m1 and MX block-scaled MMA


@dataclass(frozen=True)
class Platform:
    """A compute platform.

    Attributes:
        kind: ``cpu``, ``cuda``, ``rocm`` or ``xpu`` (the key of the kernel priority lists).
        capability: CUDA compute capability as ``major*10 + minor`` (90 = H100/H200), else None.
        device_name: human-readable name, for messages.
    """

    kind: str
    capability: int | None = None
    device_name: str = ""

    def describe(self) -> str:
        if self.kind == "cuda":
            return f"{self.device_name or 'CUDA GPU'} (sm_{self.capability})"
        return self.device_name or self.kind

    def cuda_at_least(self, capability: int) -> bool:
        return self.kind == "cuda" and self.capability is not None and self.capability >= capability


CPU = Platform("cpu", None, "CPU")


def simulated_cuda(capability: int) -> Platform:
    """A CUDA platform of the given capability, for selection tests and `explain --platform`."""
    return Platform("cuda", capability, "simulated GPU")


def platform_of(device: torch.device | str | None = None) -> Platform:
    """The platform of ``device`` (default: the current CUDA device if any, else the CPU)."""
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        name = torch.cuda.get_device_name(device)
        kind = "rocm" if torch.version.hip else "cuda"
        return Platform(kind, major * 10 + minor, name)
    if device.type == "xpu":
        return Platform("xpu", None, "Intel XPU")
    return CPU
