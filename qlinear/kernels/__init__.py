"""Kernels: one contract (:mod:`.base`), one selection path (:mod:`.registry`, per M bucket in
:mod:`.dispatch`).

Default priority lists are set here, in one place; a kernel only ever serves the schemes its
``can_implement`` accepts, so one list per platform orders all schemes. ROCm and XPU run emulation
until kernels are registered for them.
"""
from .base import OK, LayerConfig, LinearKernel, Verdict
from .cublas_block_fp8 import CublasBlockFp8Kernel
from .dispatch import M_BUCKETS, Dispatch, Route, select_dispatch
from .emulation import EmulationKernel
from .gluon_w4a16 import GluonW4A16Kernel
from .gluon_wgmma import GluonFp8BlockKernel, GluonFp8RowwiseKernel, GluonInt8Kernel, GluonMxfp8Kernel
from .int_mm_int8 import IntMMInt8Kernel
from .registry import (
    NoKernelError,
    Rejection,
    Selection,
    all_kernels,
    candidates,
    fast_candidates,
    register_kernel,
    select_kernel,
)
from .scaled_mm_blockscaled import CublasMxfp8Kernel, CublasNvfp4Kernel
from .scaled_mm_fp8 import CpuScaledMMFp8Kernel, CublasFp8Kernel
from .triton_w8a8 import TritonFp8BlockKernel, TritonFp8RowwiseKernel, TritonInt8Kernel, TritonMxfp8Kernel
from .triton_weight_only import DequantMMKernel, TritonW4A16Kernel, TritonW8A16Kernel

# CUDA order from bench/results/h200_bench_issue*.txt: cuBLAS blockwise wins block FP8 prefill wherever
# it is correct (not M=1, K/128 % 4 == 0), the Gluon wgmma GEMM takes the other prefill shapes (about
# twice Triton's rate, h200_issue3.md), Triton the rest (and decode M=2..64 on the H200, by
# qlinear.tuning.DEFAULTS). Per-channel FP8 and INT8: the Gluon wgmma GEMM (prefill only, M > 64)
# ran faster than the Triton GEMM on all 5 issue shapes at M=4096 and on 3-4 of 5 at M=1024, the
# rest within 1% (CUDA-graph replays, h200_issue3.md, 2026-12-01); since per-channel FP8 sums each
# K-tile's product in fp32 (accuracy over long K), cuBLAS rowwise runs its prefill 0-6% faster on the
# H200, where qlinear.tuning.DEFAULTS sends it there (h200_issue3_accum_precision.txt; cuBLAS is
# 1.3-2.4x slower at decode, so it stays behind Triton here); Triton rowwise FP8 and INT8 win
# decode; torch._int_mm trails Triton INT8 at every M measured. Weight-only formats (issue 4,
# bench/results/h200_issue4.md): dequantize + cuBLAS bf16 wins prefill, the in-register kernels win
# decode; for MXFP8 both beat the W8A8 FP8-tensor-core kernels (per-32 scaling per K step; the Gluon one is
# 1.7x the Triton one at M=4096) at every M measured. The Gluon W4A16 decode kernel follows the Triton
# one here (the Triton MMA kernel was faster at 17..64, and the order is per kernel, not per M); on
# the H200, qlinear.tuning.DEFAULTS sends M=1..16 to it (faster on every issue shape, h200_issue4.md).
# The sm_100 block-scaled kernels come first for their schemes: where they can run (Blackwell), native
# FP4/MX tensor cores are the point; everywhere else is_supported rejects them.
for _kernel in (
    CublasNvfp4Kernel,
    CublasMxfp8Kernel,
    CublasBlockFp8Kernel,
    GluonFp8BlockKernel,
    TritonFp8BlockKernel,
    GluonFp8RowwiseKernel,
    TritonFp8RowwiseKernel,
    CublasFp8Kernel,
    GluonInt8Kernel,
    TritonInt8Kernel,
    IntMMInt8Kernel,
    DequantMMKernel,
    TritonW8A16Kernel,
    TritonW4A16Kernel,
    GluonW4A16Kernel,
    GluonMxfp8Kernel,
    TritonMxfp8Kernel,
):
    register_kernel(_kernel, ["cuda"])
register_kernel(CpuScaledMMFp8Kernel, ["cpu"])
register_kernel(IntMMInt8Kernel, ["cpu"])

__all__ = [
    "M_BUCKETS",
    "OK",
    "CublasBlockFp8Kernel",
    "CublasMxfp8Kernel",
    "CublasNvfp4Kernel",
    "Dispatch",
    "GluonFp8BlockKernel",
    "GluonFp8RowwiseKernel",
    "GluonInt8Kernel",
    "GluonW4A16Kernel",
    "GluonMxfp8Kernel",
    "Route",
    "TritonFp8BlockKernel",
    "TritonFp8RowwiseKernel",
    "TritonInt8Kernel",
    "TritonMxfp8Kernel",
    "DequantMMKernel",
    "TritonW4A16Kernel",
    "TritonW8A16Kernel",
    "select_dispatch",
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
    "fast_candidates",
    "candidates",
    "register_kernel",
    "select_kernel",
]
