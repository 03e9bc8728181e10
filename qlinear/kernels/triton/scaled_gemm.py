"""One scaled GEMM for every W8A8 scheme: ``C = (A * a_scale) @ (B * b_scale)^T (+ bias)``.

``A [M, K]`` is e4m3 or int8 (or bf16/fp16 with ``quant_a``), ``B [N, K]`` the weight as stored
(K contiguous, so the tile loaded as ``[BLOCK_K, BLOCK_N]`` is the K-major operand Hopper's
FP8 MMA wants). Scale modes, per operand:

====  =================  ==========================================================
mode  A                  B
====  =================  ==========================================================
0     per-tensor ``[]``   per-tensor ``[]``
1     per-token ``[M]``   per-channel ``[N]``
2     1 x BLOCK_K groups  ``SCALE_BLOCK_N x BLOCK_K`` blocks ``[ceil(N/128), ceil(K/128)]``
3     e8m0 per 1 x 32     e8m0 per 1 x 32 ``[N, K/32]`` uint8 (OCP MX; ``BLOCK_K == 32``)
====  =================  ==========================================================

Modes 0/1 on both sides scale once in the epilogue (e4m3 products still join the fp32 sum every
:data:`PROMOTE_EVERY` of K on the CUDA cores: Hopper's FP8 MMA accumulates with fewer bits, see
:mod:`.wgmma_gemm`); a mode-2 or -3 side (the DeepSeek-V3 recipe) needs ``BLOCK_K == 128`` and
scales each K-tile's partial product before accumulating. With ``quant_a``
the kernel quantizes each 1 x 128 group of a bf16 A in registers (decode: no separate pass over x),
with the same rounding as :mod:`qlinear.formats`. ``split_k > 1`` is reduced in the same launch by the K slice
that arrives last, in slice order (:mod:`.split_k`; the config depends on M, so not batch-invariant).
Ragged M, N and K are masked.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl
from triton.tools.tensor_descriptor import TensorDescriptor

from ...formats.fp8 import AMAX_FLOOR, E4M3_MAX
from .numerics import INTERPRETED, to_e4m3
from .pdl import pdl_enabled, prefetch_rows_l2, wait_for_producer
from .split_k import reduce_slices, split_k_buffers

# e4m3 products join the fp32 sum on the CUDA cores every this many of K (at most once per K-tile; None:
# summed on the tensor cores alone, which over K = 14336 missed the 1e-3 error bound). With the decode
# configs re-swept under it, decode on the issue shapes runs 0-3% behind no promotion at M = 1..64;
# every 128 instead ran up to 19% behind (bench/results/h200_issue3_accum_precision.txt, sections 8-9).
PROMOTE_EVERY = 256
_AMAX_FLOOR = tl.constexpr(AMAX_FLOOR)
_E4M3_MAX = tl.constexpr(E4M3_MAX)


@dataclass(frozen=True)
class GemmConfig:
    """Launch configuration of :func:`scaled_gemm`."""

    block_m: int
    block_n: int
    block_k: int = 128
    group_m: int = 8
    split_k: int = 1
    num_warps: int = 4
    num_stages: int = 3
    tma: bool = False  # load the weight through a TMA descriptor (decode, swapped operands)

    def key(self) -> str:
        return (f"m{self.block_m}n{self.block_n}k{self.block_k}g{self.group_m}s{self.split_k}"
                f"w{self.num_warps}p{self.num_stages}" + ("t" if self.tma else ""))


@triton.jit
def _scale_vector(ptr, idx, kt, stride_r, stride_k, MODE: tl.constexpr, ROWS: tl.constexpr, n: tl.constexpr):
    """Per-K-tile scales of one operand: mode 2 reads row ``idx // ROWS`` of K-tile ``kt`` (fp32),
    mode 3 the e8m0 byte of row ``idx`` (its value ``2**(e - 127)`` is the fp32 with exponent field e;
    e = 0 gives 0, which only all-zero groups carry); else ones."""
    if MODE == 2:
        return tl.load(ptr + (idx // ROWS) * stride_r + kt * stride_k)
    if MODE == 3:
        return (tl.load(ptr + idx * stride_r + kt * stride_k).to(tl.int32) << 23).to(tl.float32, bitcast=True)
    return tl.full((n,), 1.0, tl.float32)


@triton.jit
def _quantize_tile(t, axis: tl.constexpr, EXPLICIT: tl.constexpr):
    """Dynamic e4m3 quantization of a tile along ``axis`` (one 1 x BLOCK_K group); returns (q, scale)."""
    tf = t.to(tl.float32)
    scale = tl.math.div_rn(tl.maximum(tl.max(tl.abs(tf), axis=axis), _AMAX_FLOOR), _E4M3_MAX)
    inverse = tl.math.div_rn(1.0, scale)
    if axis == 1:
        q = to_e4m3(tf * inverse[:, None], EXPLICIT)
    else:
        q = to_e4m3(tf * inverse[None, :], EXPLICIT)
    return q, scale


@triton.jit
def _scaled_gemm_kernel(
    a_ptr, b_ptr, c_ptr, as_ptr, bs_ptr, bias_ptr, ws_ptr, cnt_ptr,
    M, N, K, prefetch_bytes,
    stride_am, stride_bn, stride_cm, stride_cn, stride_asm, stride_ask, stride_bsn, stride_bsk,
    A_SCALE: tl.constexpr, A_SCALE_ROWS: tl.constexpr, B_SCALE: tl.constexpr, B_SCALE_ROWS: tl.constexpr,
    QUANT: tl.constexpr, BIAS: tl.constexpr, ACC_INT: tl.constexpr, EVEN_K: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    GROUP_M: tl.constexpr, SPLIT_K: tl.constexpr, EXPLICIT_ROUNDING: tl.constexpr, PDL: tl.constexpr,
    A_TMA: tl.constexpr, PROMOTE_K: tl.constexpr,
):
    """C[M, N] = sum_k A[M, k] B[N, k] * scales. Scale modes per operand: 0 one value, 1 one per row,
    2 one per (row // ROWS, K-tile). QUANT: 1 quantizes A, 2 quantizes B per 1 x BLOCK_K group in
    registers. BIAS: 0 none, 1 per column of C, 2 per row of C. PDL: A is the weight; prefetch
    ``prefetch_bytes`` of each of its rows into L2, then wait for the kernel that wrote B.
    A_TMA: ``a_ptr`` is a tensor descriptor of A with block ``[BLOCK_M, BLOCK_K]`` (Hopper's TMA
    copies each tile to shared memory: no per-thread address arithmetic or masks)."""
    pid = tl.program_id(0)
    pid_k = tl.program_id(1)
    # Grouped tile order: GROUP_M row-tiles share each column-tile of B while it is in L2.
    num_pid_m = tl.cdiv(M, BLOCK_M)
    num_pid_n = tl.cdiv(N, BLOCK_N)
    per_group = GROUP_M * num_pid_n
    first_m = (pid // per_group) * GROUP_M
    group_rows = min(num_pid_m - first_m, GROUP_M)
    pid_m = first_m + (pid % per_group) % group_rows
    pid_n = (pid % per_group) // group_rows

    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    rows = offs_m % M  # out-of-range rows/cols re-read valid ones; their results are masked at the store
    cols = offs_n % N
    offs_k = tl.arange(0, BLOCK_K)
    if not A_TMA:
        a_ptrs = a_ptr + rows[:, None] * stride_am + offs_k[None, :]
    b_ptrs = b_ptr + cols[None, :] * stride_bn + offs_k[:, None]

    k_tiles = tl.cdiv(K, BLOCK_K)
    per_split = tl.cdiv(k_tiles, SPLIT_K)
    k_first = pid_k * per_split
    k_last = tl.minimum(k_first + per_split, k_tiles)
    PER_K: tl.constexpr = (A_SCALE >= 2) or (B_SCALE >= 2) or (QUANT != 0)
    ACC: tl.constexpr = tl.int32 if ACC_INT else tl.float32
    if PDL:  # A's elements are bytes here; the prefetch stays inside this program's K range
        if not A_TMA:
            nbytes = tl.minimum(tl.minimum(prefetch_bytes, (k_last - k_first) * BLOCK_K), K - k_first * BLOCK_K)
            nbytes = nbytes // 16 * 16
            if nbytes > 0:
                prefetch_rows_l2(a_ptr + rows * stride_am + k_first * BLOCK_K, nbytes)
        wait_for_producer(PDL)

    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=ACC)
    for kt in range(k_first, k_last):
        k0 = kt * BLOCK_K
        if A_TMA:  # rows and K past the edge read as zeros
            a = a_ptr.load([pid_m * BLOCK_M, k0])
        elif EVEN_K:
            a = tl.load(a_ptrs + k0)
        else:
            a = tl.load(a_ptrs + k0, mask=(offs_k < K - k0)[None, :], other=0.0)
        if EVEN_K:
            b = tl.load(b_ptrs + k0)
        else:
            b = tl.load(b_ptrs + k0, mask=(offs_k < K - k0)[:, None], other=0.0)
        if PER_K:
            if QUANT == 1:
                a, sa = _quantize_tile(a, 1, EXPLICIT_ROUNDING)
            else:
                sa = _scale_vector(as_ptr, rows, kt, stride_asm, stride_ask, A_SCALE, A_SCALE_ROWS, BLOCK_M)
            if QUANT == 2:
                b, sb = _quantize_tile(b, 0, EXPLICIT_ROUNDING)
            else:
                sb = _scale_vector(bs_ptr, cols, kt, stride_bsn, stride_bsk, B_SCALE, B_SCALE_ROWS, BLOCK_N)
            acc += tl.dot(a, b) * (sa[:, None] * sb[None, :])
        else:  # e4m3 products join acc in fp32 every PROMOTE_K of K (int8: 0, its int32 sums are exact)
            acc = tl.dot(a, b, acc, out_dtype=ACC, max_num_imprecise_acc=PROMOTE_K)

    out = acc.to(tl.float32)
    if A_SCALE == 0:
        out = out * tl.load(as_ptr)
    elif A_SCALE == 1:
        out = out * tl.load(as_ptr + rows * stride_asm)[:, None]
    if B_SCALE == 0:
        out = out * tl.load(bs_ptr)
    elif B_SCALE == 1:
        out = out * tl.load(bs_ptr + cols * stride_bsn)[None, :]
    c_ptrs = c_ptr + offs_m[:, None] * stride_cm + offs_n[None, :] * stride_cn
    cmask = (offs_m[:, None] < M) & (offs_n[None, :] < N)
    if SPLIT_K == 1:
        tl.store(c_ptrs, _add_bias(out, bias_ptr, rows, cols, BIAS).to(c_ptr.dtype.element_ty), mask=cmask)
    else:
        total, last = reduce_slices(out, ws_ptr, cnt_ptr, offs_m[:, None] * N + offs_n[None, :], cmask, M * N,
                                    pid, pid_k, SPLIT_K)
        if last:
            tl.store(c_ptrs, _add_bias(total, bias_ptr, rows, cols, BIAS).to(c_ptr.dtype.element_ty), mask=cmask)


@triton.jit
def _add_bias(out, bias_ptr, rows, cols, BIAS: tl.constexpr):
    if BIAS == 1:
        out += tl.load(bias_ptr + cols)[None, :].to(tl.float32)
    elif BIAS == 2:
        out += tl.load(bias_ptr + rows)[:, None].to(tl.float32)
    return out


def _strides(t: torch.Tensor) -> tuple[int, int]:
    """Row and column strides of a scale tensor, 0 for missing dimensions."""
    return (tuple(t.stride()) + (0, 0))[:2]


PREFETCH_TILES = 2  # K-tiles of each weight row a PDL-launched program asks L2 for before it waits
_MODES = {"tensor": 0, "token": 1, "channel": 1, "group": 2, "block": 2, "mx": 3}


def scaled_gemm(
    a: torch.Tensor,
    b: torch.Tensor,
    a_scale: torch.Tensor | None,
    b_scale: torch.Tensor,
    *,
    a_mode: str,
    b_mode: str,
    config: GemmConfig,
    out_dtype: torch.dtype = torch.bfloat16,
    bias: torch.Tensor | None = None,
    quant_a: bool = False,
    swap_ab: bool = False,
    after_producer: bool = False,
) -> torch.Tensor:
    """``[M, N]`` of ``out_dtype``: the scaled product of activations ``a [M, K]`` and weight ``b [N, K]``.

    Args:
        a: e4m3 or int8 ``[M, K]`` with unit stride along K; bf16/fp16/fp32 when ``quant_a``.
        b: e4m3 or int8 ``[N, K]``, unit stride along K.
        a_scale: fp32 scales of ``a`` for ``a_mode`` (``tensor`` 1 value, ``token`` ``[M, 1]``,
            ``group`` ``[M, ceil(K/128)]`` any strides); ignored with ``quant_a``.
        b_scale: fp32 scales of ``b`` for ``b_mode`` (``tensor``, ``channel`` ``[N, 1]``,
            ``block`` ``[ceil(N/128), ceil(K/128)]``).
        config: tile sizes, in the kernel's frame (with ``swap_ab`` its M is the weight's N);
            ``block_k`` must be 128 for group/block modes. ``tma`` takes effect with ``swap_ab``
            and a weight whose base and row stride are 16-byte aligned.
        quant_a: quantize ``a`` per 1 x 128 group to e4m3 inside the kernel (implies ``a_mode='group'``).
        swap_ab: compute ``C^T = b @ a^T`` (decode: the weight's rows fill the MMA's large M side,
            the few tokens its small N side, so Hopper's wgmma applies even at M=1).
        after_producer: ``a`` and ``a_scale`` were written by the kernel just before on this stream,
            which releases its dependents early (:mod:`.act_quant` does). With ``swap_ab`` on an
            sm_90+ GPU the GEMM is then launched with PDL (:mod:`.pdl`): its programs prefetch their
            first weight bytes into L2 while that kernel runs. Ignored otherwise.

    Raises:
        ValueError: a config that cannot implement the modes.
    """
    m, k = a.shape
    n = b.shape[0]
    if quant_a:
        a_mode = "group"
    am, bm = _MODES[a_mode], _MODES[b_mode]
    if (am == 2 or bm == 2) and config.block_k != 128:
        raise ValueError(f"group/block scales need block_k == 128, config has {config.block_k}")
    if (am == 3 or bm == 3) and config.block_k != 32:
        raise ValueError(f"MX e8m0 scales (one per 32) need block_k == 32, config has {config.block_k}")
    is_int = b.dtype == torch.int8
    # Triton 3.6's CPU interpreter truncates fp32 -> bf16 in stores instead of rounding; under it the
    # product is stored in float32 and rounded by PyTorch (compiled kernels round in the store).
    c = torch.empty((m, n), device=a.device, dtype=torch.float32 if INTERPRETED else out_dtype)
    sa = a_scale if a_scale is not None else b_scale  # a placeholder pointer under quant_a
    x_side = dict(ptr=a, scale=sa, mode=am, rows=1, rows_n=m)
    w_side = dict(ptr=b, scale=b_scale, mode=bm, rows=128, rows_n=n)
    first, second = (w_side, x_side) if swap_ab else (x_side, w_side)
    kernel_m, kernel_n = first["rows_n"], second["rows_n"]
    c_strides = (c.stride(1), c.stride(0)) if swap_ab else (c.stride(0), c.stride(1))
    quant = 0 if not quant_a else (2 if swap_ab else 1)
    bias_mode = 0 if bias is None else (2 if swap_ab else 1)
    tiles = triton.cdiv(kernel_m, config.block_m) * triton.cdiv(kernel_n, config.block_n)
    grid = (tiles, config.split_k)
    ws, counters = split_k_buffers(a.device, config.split_k, m * n, tiles) if config.split_k > 1 else (c, c)
    # PDL: the weight (A in the swapped frame) is streamed from the start; x only after the wait.
    use_pdl = after_producer and swap_ab and pdl_enabled(a.device, m)
    aligned = b.data_ptr() % 16 == 0 and (b.stride(0) * b.element_size()) % 16 == 0 and b.stride(1) == 1
    prefetch = PREFETCH_TILES * config.block_k if use_pdl and aligned else 0
    a_arg = first["ptr"]
    tma = config.tma and swap_ab and aligned
    if tma:
        a_arg = TensorDescriptor(b, list(b.shape), list(b.stride()), [config.block_m, config.block_k])
    _scaled_gemm_kernel[grid](
        a_arg, second["ptr"], c, first["scale"], second["scale"], bias if bias is not None else c,
        ws, counters, kernel_m, kernel_n, k, prefetch,
        first["ptr"].stride(0), second["ptr"].stride(0), *c_strides,
        *_strides(first["scale"]), *_strides(second["scale"]),
        A_SCALE=first["mode"], A_SCALE_ROWS=first["rows"], B_SCALE=second["mode"], B_SCALE_ROWS=second["rows"],
        QUANT=quant, BIAS=bias_mode, ACC_INT=is_int, EVEN_K=k % config.block_k == 0,
        BLOCK_M=config.block_m, BLOCK_N=config.block_n, BLOCK_K=config.block_k,
        GROUP_M=config.group_m, SPLIT_K=config.split_k, EXPLICIT_ROUNDING=INTERPRETED, PDL=use_pdl, A_TMA=tma,
        PROMOTE_K=0 if is_int else (min(PROMOTE_EVERY, config.block_k) if PROMOTE_EVERY else None),
        num_warps=config.num_warps, num_stages=config.num_stages, launch_pdl=use_pdl,
    )
    return c if c.dtype == out_dtype else c.to(out_dtype)
