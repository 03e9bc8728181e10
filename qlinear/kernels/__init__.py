"""Kernels: one contract (:mod:`.base`), one selection path (:mod:`.registry`).

Default priority lists are set here, in one place. CUDA (NVIDIA): cuBLAS FP8, then
``torch._int_mm`` INT8, then emulation. CPU: oneDNN FP8 ``_scaled_mm``, ``_int_mm``, emulation.
ROCm and XPU run emulation until kernels are registered for them.
"""
from .base import OK, LayerConfig, LinearKernel, Verdict
from .emulation import EmulationKernel
from .int_mm_int8 import IntMMInt8Kernel
from .registry import (
    NoKernelError,
    Rejection,
    Selection,
    all_kernels,
    candidates,
    register_kernel,
    select_kernel,
)
from .scaled_mm_fp8 import CpuScaledMMFp8Kernel, CublasFp8Kernel

register_kernel(CublasFp8Kernel, ["cuda"])
register_kernel(IntMMInt8Kernel, ["cuda", "cpu"])
register_kernel(CpuScaledMMFp8Kernel, ["cpu"], index=0)

__all__ = [
    "OK",
    "CpuScaledMMFp8Kernel",
    "CublasFp8Kernel",
    "EmulationKernel",
    "IntMMInt8Kernel",
    "LayerConfig",
    "LinearKernel",
    "NoKernelError",
    "Rejection",
    "Selection",
    "Verdict",
    "all_kernels",
    "candidates",
    "register_kernel",
    "select_kernel",
]
