"""Programmatic dependent launch (PDL, sm_90+): a decode GEMM starts while the activation
quantization before it is still running.

At decode sizes the quantization kernel and the launch gap before the GEMM cost a few
microseconds on a budget of 10-40 (bench/results/h200_issue3.md). With PDL the quantization
kernel lets its dependent launch early (``griddepcontrol.launch_dependents``); the GEMM's programs
start, ask L2 to fetch the first bytes of their weight rows (which do not depend on the
quantization), and only then wait for the quantized activations (``griddepcontrol.wait``, which
returns once the producer grid has finished and its writes are visible). Without a PDL launch
both instructions are no-ops; CUDA graphs keep the programmatic edge when captured.

The PTX instructions exist on sm_90 and newer only and cannot run under ``TRITON_INTERPRET=1``, so
kernels take a constexpr ``PDL`` from :func:`pdl_enabled`. ``QLINEAR_PDL=0`` turns it off.
Reference: PTX ISA, "griddepcontrol" and "cp.async.bulk.prefetch"; CUDA programming guide,
"Programmatic Dependent Launch and Synchronization".
"""
from __future__ import annotations

import functools
import os

import torch
import triton
import triton.language as tl

from .numerics import INTERPRETED

PDL_MIN_CAPABILITY = (9, 0)
PDL_MAX_M = 64  # decode sizes: the swapped GEMMs that wait for their input; prefill keeps plain launches
# except before the persistent Gluon GEMMs, whose launch and prologue PDL hides (max_m=None)


@functools.cache
def _capable(index: int) -> bool:
    return torch.cuda.get_device_capability(index) >= PDL_MIN_CAPABILITY


def pdl_enabled(device: torch.device, m: int, max_m: int | None = PDL_MAX_M) -> bool:
    """Whether a kernel over ``m`` rows on ``device`` may use PDL: at most ``max_m`` rows (None: any;
    the persistent Gluon GEMMs wait for their quantized input at prefill sizes too), a CUDA sm_90+
    GPU, compiled (not interpreted) kernels, and ``QLINEAR_PDL`` not ``0``."""
    if (max_m is not None and m > max_m) or INTERPRETED or device.type != "cuda":
        return False
    if os.environ.get("QLINEAR_PDL", "1") == "0":
        return False
    return _capable(device.index if device.index is not None else torch.cuda.current_device())


@triton.jit
def release_dependents(PDL: tl.constexpr):
    """Let the next kernel on the stream, if launched with PDL, start now."""
    if PDL:
        tl.inline_asm_elementwise("griddepcontrol.launch_dependents; mov.u32 $0, 0;", "=r", [],
                                  dtype=tl.int32, is_pure=False, pack=1)


@triton.jit
def wait_for_producer(PDL: tl.constexpr):
    """Block until the previous kernel on the stream has finished and its writes are visible."""
    if PDL:
        tl.inline_asm_elementwise("griddepcontrol.wait; mov.u32 $0, 0;", "=r", [],
                                  dtype=tl.int32, is_pure=False, pack=1)


@triton.jit
def prefetch_rows_l2(row_ptrs, nbytes):
    """Ask L2 to fetch ``nbytes`` (a multiple of 16, > 0) from each 16-byte aligned address of
    ``row_ptrs``, one bulk prefetch per row; nothing waits for it."""
    tl.inline_asm_elementwise("cp.async.bulk.prefetch.L2.global [$1], $2; mov.u32 $0, 0;", "=r,l,r",
                              [row_ptrs, nbytes], dtype=tl.int32, is_pure=False, pack=1)


__all__ = ["pdl_enabled", "release_dependents", "wait_for_producer", "prefetch_rows_l2", "PDL_MIN_CAPABILITY",
           "PDL_MAX_M"]
