"""Fused dynamic activation quantization: one pass over x, writing q and its scales.

* per-token FP8 e4m3: ``scale[m] = max(amax_row, 1e-12) / 448``
* per-token INT8 (symmetric): ``scale[m] = max(amax_row, 1e-12) / 127``, round half to even
* 1xG group FP8 e4m3 (G = 128 for the block recipe): one scale per G elements of a row,
  ragged last group allowed (its scale covers only real elements).
* MXFP8 (OCP MX v1.0): e4m3 with one e8m0 scale per 32 elements, the exponent rounded up so
  nothing clips (the rule of :mod:`qlinear.formats.e8m0`); scales written as uint8.

The numbers are bit-identical to :func:`qlinear.formats.quantize` (same fp32 operations: IEEE
``scale = amax / qmax``, one rounded reciprocal, one multiply per element); the tests check that on
the GPU and under the CPU interpreter. Scales can be written row-major ``[M, G]`` or M-major
(``[G, M]`` storage viewed as ``[M, G]``, what cuBLASLt blockwise wants). At decode sizes on sm_90+
each kernel lets the GEMM after it start early (:mod:`.pdl`); that GEMM waits for these writes.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from ...formats.fp8 import AMAX_FLOOR, E4M3_MAX
from ...formats.int8 import INT8_SYMMETRIC_MAX
from ..padding import round_up
from .numerics import INTERPRETED, round_to, to_e4m3, to_int8
from .pdl import PDL_MAX_M, pdl_enabled, release_dependents


@triton.jit
def _pow2(e):
    """``2**e`` as fp32 for integer ``e`` in [-127, 127], built from its bits (exact, no exp2)."""
    return tl.where(e >= -126, (e + 127) << 23, 1 << 22).to(tl.float32, bitcast=True)


@triton.jit
def _e8m0_exponent(amax, QMAX: tl.constexpr):
    """The smallest X in [-127, 127] with ``amax / 2**X <= QMAX`` (:func:`qlinear.formats.e8m0.exponent_for`)."""
    v = tl.math.div_rn(amax, QMAX)
    bits = v.to(tl.int32, bitcast=True)
    field = (bits >> 23) & 0xFF
    mantissa = bits & 0x7FFFFF
    x = tl.where(mantissa == 0, field - 127, field - 126)  # ceil(log2 v) for a normal v
    x = tl.where(field == 0, tl.where(mantissa > (1 << 22), -126, -127), x)
    x = tl.minimum(x, 127)
    x = tl.where(amax > QMAX * _pow2(x), x + 1, x)  # the division rounded v down across a power of two
    return tl.where(v > 0, tl.minimum(x, 127), -127)


@triton.jit
def _quant_groups_kernel(
    x_ptr, q_ptr, s_ptr, M, K,
    stride_xm, stride_qm, stride_sm, stride_sg,
    GROUP: tl.constexpr, GROUPS_PER_BLOCK: tl.constexpr, BLOCK_M: tl.constexpr,
    QMAX: tl.constexpr, FLOOR: tl.constexpr, E8M0: tl.constexpr, EXPLICIT: tl.constexpr, PDL: tl.constexpr,
):
    release_dependents(PDL)
    pid_m = tl.program_id(0)
    pid_k = tl.program_id(1)
    rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    groups = pid_k * GROUPS_PER_BLOCK + tl.arange(0, GROUPS_PER_BLOCK)
    cols = groups[:, None] * GROUP + tl.arange(0, GROUP)[None, :]  # [G, GROUP]
    mask = (rows[:, None, None] < M) & (cols[None, :, :] < K)
    x = tl.load(x_ptr + rows[:, None, None] * stride_xm + cols[None, :, :], mask=mask, other=0.0).to(tl.float32)
    amax = tl.max(tl.abs(x), axis=2)  # [BLOCK_M, G]
    if E8M0:
        exponent = _e8m0_exponent(amax, QMAX)
        inverse = _pow2(-exponent)
        scale = (exponent + 127).to(tl.uint8)
    else:
        scale = tl.math.div_rn(tl.maximum(amax, FLOOR), QMAX)
        inverse = tl.math.div_rn(1.0, scale)
    q = to_e4m3(x * inverse[:, :, None], EXPLICIT)
    tl.store(q_ptr + rows[:, None, None] * stride_qm + cols[None, :, :], q, mask=mask)
    smask = (rows[:, None] < M) & (groups[None, :] * GROUP < K)
    tl.store(s_ptr + rows[:, None] * stride_sm + groups[None, :] * stride_sg, scale, mask=smask)


LOG2E = tl.constexpr(1.4426950408889634)


@triton.jit
def _silu_mul(gate, up, EXPLICIT: tl.constexpr):
    """``silu(gate) * up`` for bf16/fp16 tensors, rounded where PyTorch's eager ops round: silu in
    fp32, rounded to the input dtype, then the product in fp32, rounded again. Returns fp32 holding
    the rounded values.

    silu is ``g / (1 + 2**(-g * log2(e)))`` with the hardware's fast exp2 and division (relative
    error near 2**-21, against a bf16 rounding step of 2**-8). PyTorch's eager silu uses an
    accurate exp and an IEEE division, which made this kernel ALU-bound at twice its memory time
    (``bench/results/h200_silu_mul_quant.txt``); its bf16 value differs from this one only where the
    exact silu lies within a few fp32 units of a bf16 rounding tie (none of 58.7 M quantized
    elements differed there)."""
    g = gate.to(tl.float32)
    silu = round_to(g / (1.0 + tl.exp2(g * -LOG2E)), gate.dtype, EXPLICIT)
    return round_to(silu * up.to(tl.float32), gate.dtype, EXPLICIT)


@triton.jit
def _load_row_tile(x_ptr, up_ptr, rows, cols, mask, stride_xm, stride_um, GATED: tl.constexpr,
                   EXPLICIT: tl.constexpr):
    """A tile of the rows to quantize as fp32: x itself, or with ``GATED`` ``silu(x) * up``."""
    x = tl.load(x_ptr + rows[:, None] * stride_xm + cols[None, :], mask=mask, other=0.0)
    if GATED:
        up = tl.load(up_ptr + rows[:, None] * stride_um + cols[None, :], mask=mask, other=0.0)
        return _silu_mul(x, up, EXPLICIT)
    return x.to(tl.float32)


@triton.jit
def _quant_rows_kernel(
    x_ptr, up_ptr, q_ptr, s_ptr, M, K, stride_xm, stride_um, stride_qm,
    BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr, QMAX: tl.constexpr, FLOOR: tl.constexpr,
    IS_INT: tl.constexpr, ONE_PASS: tl.constexpr, GATED: tl.constexpr, EXPLICIT: tl.constexpr, PDL: tl.constexpr,
):
    release_dependents(PDL)
    pid = tl.program_id(0)
    rows = pid * BLOCK_M + tl.arange(0, BLOCK_M)
    rmask = rows < M
    if ONE_PASS:  # the whole row is one tile: x (or gate and up) is read once
        cols = tl.arange(0, BLOCK_K)
        m = rmask[:, None] & (cols[None, :] < K)
        x = _load_row_tile(x_ptr, up_ptr, rows, cols, m, stride_xm, stride_um, GATED, EXPLICIT)
        scale = tl.math.div_rn(tl.maximum(tl.max(tl.abs(x), axis=1), FLOOR), QMAX)
        v = x * tl.math.div_rn(1.0, scale)[:, None]
        if IS_INT:
            q = to_int8(v, QMAX)
        else:
            q = to_e4m3(v, EXPLICIT)
        tl.store(q_ptr + rows[:, None] * stride_qm + cols[None, :], q, mask=m)
    else:  # rows longer than one tile: pass 1 finds the amax, pass 2 re-reads (from L2) and quantizes
        amax = tl.zeros([BLOCK_M], dtype=tl.float32)
        for k0 in range(0, K, BLOCK_K):
            cols = k0 + tl.arange(0, BLOCK_K)
            m = rmask[:, None] & (cols[None, :] < K)
            x = _load_row_tile(x_ptr, up_ptr, rows, cols, m, stride_xm, stride_um, GATED, EXPLICIT)
            amax = tl.maximum(amax, tl.max(tl.abs(x), axis=1))
        scale = tl.math.div_rn(tl.maximum(amax, FLOOR), QMAX)
        inverse = tl.math.div_rn(1.0, scale)
        for k0 in range(0, K, BLOCK_K):
            cols = k0 + tl.arange(0, BLOCK_K)
            m = rmask[:, None] & (cols[None, :] < K)
            v = _load_row_tile(x_ptr, up_ptr, rows, cols, m, stride_xm, stride_um, GATED, EXPLICIT) * inverse[:, None]
            if IS_INT:
                q = to_int8(v, QMAX)
            else:
                q = to_e4m3(v, EXPLICIT)
            tl.store(q_ptr + rows[:, None] * stride_qm + cols[None, :], q, mask=m)
    tl.store(s_ptr + rows, scale, mask=rmask)


ONE_PASS_MAX_K = 16384  # a 16384-wide fp32 row is 64 registers per thread at 8 warps


def quantize_per_token(x: torch.Tensor, dtype: torch.dtype = torch.float8_e4m3fn, *,
                       pdl_any_m: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """``x [M, K]`` (bf16/fp16/fp32, unit stride along K) -> ``(q [M, K] dtype, scale [M, 1] fp32)``.

    ``dtype`` is ``torch.float8_e4m3fn`` or ``torch.int8`` (symmetric). ``pdl_any_m``: let a PDL
    launch after this kernel start early at prefill sizes too (the Gluon GEMMs wait for it there).
    """
    return _quantize_rows(x, None, dtype, pdl_any_m)


def silu_mul_quantize_per_token(gate: torch.Tensor, up: torch.Tensor, dtype: torch.dtype = torch.float8_e4m3fn,
                                ) -> tuple[torch.Tensor, torch.Tensor]:
    """``h = silu(gate) * up`` quantized per token in one pass: gate and up are read once, h is never
    written. ``gate, up [M, K]`` bf16/fp16 of one dtype (copied first if not of unit stride along K)
    -> ``(q [M, K] dtype, scale [M, 1] fp32)``, ``dtype`` as in :func:`quantize_per_token`.

    h is rounded where PyTorch's eager ``F.silu(gate) * up`` rounds it, with a fast exp2 and division
    inside silu (:func:`_silu_mul`: the same bf16 h but for values within a few fp32 units of a
    rounding tie), then quantized as :func:`quantize_per_token` quantizes. This is the
    SiLU-and-multiply of gated MLPs (Llama, Qwen, Mistral) feeding a down projection that takes
    per-token quantized input.

    Raises:
        ValueError: gate and up differ in shape or dtype, or are not 16-bit floats.
    """
    if gate.shape != up.shape or gate.dtype != up.dtype or gate.dtype not in (torch.bfloat16, torch.float16):
        raise ValueError(f"silu_mul_quantize_per_token: gate {tuple(gate.shape)} {gate.dtype} and up "
                         f"{tuple(up.shape)} {up.dtype} must be bf16 or fp16 tensors of one shape and dtype")
    gate, up = (t if t.stride(1) == 1 else t.contiguous() for t in (gate, up))
    return _quantize_rows(gate, up, dtype, False)


def _quantize_rows(x: torch.Tensor, up: torch.Tensor | None, dtype: torch.dtype,
                   pdl_any_m: bool) -> tuple[torch.Tensor, torch.Tensor]:
    m, k = x.shape
    is_int = dtype == torch.int8
    q = torch.empty((m, k), device=x.device, dtype=dtype)
    s = torch.empty((m, 1), device=x.device, dtype=torch.float32)
    one_pass = k <= ONE_PASS_MAX_K
    block_k = triton.next_power_of_2(k) if one_pass else 4096
    block_m = max(1, min(8, 4096 // block_k)) if one_pass else 1  # >= 4096 elements per program
    gated = up is not None
    _quant_rows_kernel[(triton.cdiv(m, block_m),)](
        x, up if gated else x, q, s, m, k, x.stride(0), up.stride(0) if gated else 0, q.stride(0),
        BLOCK_M=block_m, BLOCK_K=block_k, QMAX=INT8_SYMMETRIC_MAX if is_int else E4M3_MAX, FLOOR=AMAX_FLOOR,
        IS_INT=is_int, ONE_PASS=one_pass, GATED=gated, EXPLICIT=INTERPRETED,
        PDL=pdl_enabled(x.device, m, None if pdl_any_m else PDL_MAX_M),
        num_warps=_rows_warps(block_m * block_k, gated),
    )
    return q, s


def _rows_warps(elements: int, gated: bool) -> int:
    if gated:  # two inputs per element: a 16384-wide row is 32 values of each per thread at 16 warps
        return 16 if elements >= 16384 else 8 if elements >= 4096 else 4
    return 8 if elements >= 8192 else 4


def quantize_per_group(x: torch.Tensor, group: int = 128, *, m_major: bool = False, tma_aligned: bool = False,
                       e8m0: bool = False, pdl_any_m: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """``x [M, K]`` -> ``(q [M, K] e4m3, scale [M, ceil(K/group)])``, one scale per 1 x ``group``.

    Scales are fp32 dequant multipliers, or with ``e8m0=True`` (MXFP8, ``group=32``) uint8 e8m0
    exponents. ``m_major=True`` stores the scales M-major (``scale.stride() == (1, M)``);
    ``tma_aligned=True`` with it rounds that stride up to 16 bytes, so TMA can load the scales of
    a row tile (``scale.stride() == (1, M rounded up)``, the padding left unwritten).
    ``pdl_any_m`` as in :func:`quantize_per_token`.

    Raises:
        ValueError: ``tma_aligned`` without ``m_major``.
    """
    if tma_aligned and not m_major:
        raise ValueError("tma_aligned pads the stride of M-major scales: pass m_major=True with it")
    m, k = x.shape
    groups = triton.cdiv(k, group)
    q = torch.empty((m, k), device=x.device, dtype=torch.float8_e4m3fn)
    sdtype = torch.uint8 if e8m0 else torch.float32
    if m_major:
        stride = round_up(m, 16 // sdtype.itemsize) if tma_aligned else m
        s = torch.empty((groups, stride), device=x.device, dtype=sdtype)[:, :m].t()
    else:
        s = torch.empty((m, groups), device=x.device, dtype=sdtype)
    gpb = min(16, triton.next_power_of_2(groups))
    block_m = max(1, min(16, 8192 // (gpb * group)))  # about 8192 elements (16 KB of bf16) per program
    grid = (triton.cdiv(m, block_m), triton.cdiv(groups, gpb))
    _quant_groups_kernel[grid](
        x, q, s, m, k, x.stride(0), q.stride(0), s.stride(0), s.stride(1),
        GROUP=group, GROUPS_PER_BLOCK=gpb, BLOCK_M=block_m, QMAX=E4M3_MAX, FLOOR=AMAX_FLOOR, E8M0=e8m0,
        EXPLICIT=INTERPRETED, PDL=pdl_enabled(x.device, m, None if pdl_any_m else PDL_MAX_M), num_warps=8,
    )
    return q, s
