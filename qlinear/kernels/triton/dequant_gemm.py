"""Weight-only GEMM: ``C = X @ dequant(W)^T (+ bias)`` with W dequantized to bf16 in registers.

The product is computed transposed, ``C^T [N, M] = W [N, K] @ X^T``: the weight's rows fill the
MMA's M side (on Hopper, wgmma takes this register operand directly) and the tokens its N side, so
one kernel serves decode (M >= 2; one token runs on :mod:`.gemv`, which spends fewer instructions
per weight) and prefill. Weight formats (constexpr ``WFMT``):

====  ============================  =========================================================
WFMT  elements ``w [N, K']``         scales applied in the K loop
====  ============================  =========================================================
0     e2m1 packed, uint8 ``[N, K/2]``  e4m3 ``[N, K/GROUP]`` (NVFP4; GROUP 16)
1     e2m1 packed, uint8 ``[N, K/2]``  e8m0 uint8 ``[N, K/GROUP]`` (MXFP4; GROUP 32)
2     e4m3 ``[N, K]``                 e8m0 uint8 ``[N, K/GROUP]`` (MXFP8 weights; GROUP 32)
3     e4m3 ``[N, K]``                 none; fp32 per-channel ``[N]`` in the epilogue (W8A16)
====  ============================  =========================================================

The epilogue multiplies by ``post_scale`` (fp32, one value): the NVFP4 global scale and the
power of two that keeps the in-loop bf16 products in range (see :mod:`.dequant`).

Split-K (``split_k > 1``, decode) is reduced in the same launch by the slice that arrives last
(:mod:`.split_k`), which then applies the epilogue.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from .dequant import E2M1_BIT_EXPONENT, dequant_e2m1, group_scale_factors
from .numerics import INTERPRETED
from .split_k import reduce_slices, split_k_buffers

NVFP4, MXFP4, MXFP8, FP8_CHANNEL = 0, 1, 2, 3
NVFP4_SCALE_SHIFT = 8  # in-loop NVFP4 products are e2m1 * s * 2**-8; the epilogue restores 2**8
# e4m3 block scale times 2**(126 - 8): e2m1 bit patterns carry 2**-126, the epilogue 2**8.
_NVFP4_SCALE_MUL = tl.constexpr(2.0 ** (E2M1_BIT_EXPONENT - NVFP4_SCALE_SHIFT))


@dataclass(frozen=True)
class DequantConfig:
    """Tiles of :func:`dequant_gemm` in the kernel's (transposed) frame: ``block_n`` weight rows by
    ``block_m`` tokens, ``block_k`` elements of K per step."""

    block_n: int
    block_m: int
    block_k: int = 128
    split_k: int = 1
    num_warps: int = 4
    num_stages: int = 4

    def key(self) -> str:
        return f"n{self.block_n}m{self.block_m}k{self.block_k}s{self.split_k}w{self.num_warps}p{self.num_stages}"


@triton.jit
def _group_scales(s_ptr, rows, kt, stride_s, bias,
                  WFMT: tl.constexpr, GROUP: tl.constexpr, BLOCK_N: tl.constexpr, WIDTH: tl.constexpr,
                  BLOCK_K: tl.constexpr, GATHER: tl.constexpr, EXPLICIT: tl.constexpr):
    """fp32 in-loop scales of one K-tile, one per element of the loaded weight tile ``[BLOCK_N, WIDTH]``.

    ``GATHER``: each element loads its group's scale byte (repeats served by L1) and decodes it;
    else the per-group vector is decoded once and broadcast. Measured on an H200
    (bench/results/h200_issue4.md): broadcasting is 3x faster in the GEMM/GEMV loops, gathering
    is faster in the stand-alone dequantization pass.
    """
    GROUPS: tl.constexpr = BLOCK_K // GROUP
    PER: tl.constexpr = WIDTH // GROUPS
    if GATHER:
        g = kt * GROUPS + tl.arange(0, WIDTH) // PER
        raw = tl.load(s_ptr + rows[:, None] * stride_s + g[None, :])
    else:
        g = kt * GROUPS + tl.arange(0, GROUPS)
        raw = tl.load(s_ptr + rows[:, None] * stride_s + g[None, :])
    s = group_scale_factors(raw, bias, WFMT == 0, EXPLICIT)
    if WFMT == 0:
        s = s * _NVFP4_SCALE_MUL
    if not GATHER:
        s = tl.reshape(tl.broadcast_to(s[:, :, None], (BLOCK_N, GROUPS, PER)), (BLOCK_N, WIDTH))
    return s


@triton.jit
def _dequant_gemm_kernel(
    w_ptr, s_ptr, x_ptr, c_ptr, post_ptr, chan_ptr, bias_ptr, ws_ptr, cnt_ptr,
    N, M, K, stride_w, stride_s, stride_x, stride_cm, scale_bias,
    WFMT: tl.constexpr, GROUP: tl.constexpr, HAS_BIAS: tl.constexpr, EVEN_K: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr, SPLIT_K: tl.constexpr,
    EXPLICIT: tl.constexpr,
):
    pid_n = tl.program_id(0)
    pid_m = tl.program_id(1)
    pid_k = tl.program_id(2)
    rows = (pid_n * BLOCK_N + tl.arange(0, BLOCK_N)) % N  # weight rows; out-of-range ones re-read row 0..
    toks = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    toks_r = toks % M

    k_tiles = tl.cdiv(K, BLOCK_K)
    per_split = tl.cdiv(k_tiles, SPLIT_K)
    k_first = pid_k * per_split
    k_last = tl.minimum(k_first + per_split, k_tiles)

    # bf16 MMAs; the interpreter's bf16 is not arithmetic, so there the (bf16-exact) operands stay fp32.
    DOT: tl.constexpr = tl.float32 if EXPLICIT else tl.bfloat16
    acc = tl.zeros((BLOCK_N, BLOCK_M), dtype=tl.float32)
    if WFMT <= 1:
        HALF: tl.constexpr = BLOCK_K // 2
        j = tl.arange(0, HALF)
        for kt in range(k_first, k_last):
            k0 = kt * BLOCK_K
            packed = tl.load(w_ptr + rows[:, None] * stride_w + (k0 // 2 + j)[None, :])
            scale = _group_scales(s_ptr, rows, kt, stride_s, scale_bias, WFMT, GROUP, BLOCK_N, HALF, BLOCK_K, False, EXPLICIT)
            even, odd = dequant_e2m1(packed, scale, EXPLICIT)
            # x rows read contiguously (vector loads), then split into the even and odd K columns
            xt = tl.load(x_ptr + toks_r[:, None] * stride_x + (k0 + tl.arange(0, BLOCK_K))[None, :])
            x_even, x_odd = tl.split(tl.reshape(xt, (BLOCK_M, HALF, 2)))
            acc = tl.dot(even, tl.trans(x_even).to(DOT), acc)
            acc = tl.dot(odd, tl.trans(x_odd).to(DOT), acc)
    else:
        kk = tl.arange(0, BLOCK_K)
        for kt in range(k_first, k_last):
            k0 = kt * BLOCK_K
            # x rows read contiguously (vector loads) and transposed in registers
            if EVEN_K:
                q = tl.load(w_ptr + rows[:, None] * stride_w + (k0 + kk)[None, :])
                xr = tl.load(x_ptr + toks_r[:, None] * stride_x + (k0 + kk)[None, :])
            else:
                kmask = (k0 + kk) < K
                q = tl.load(w_ptr + rows[:, None] * stride_w + (k0 + kk)[None, :], mask=kmask[None, :], other=0.0)
                xr = tl.load(x_ptr + toks_r[:, None] * stride_x + (k0 + kk)[None, :], mask=kmask[None, :], other=0.0)
            if WFMT == 2:
                scale = _group_scales(s_ptr, rows, kt, stride_s, scale_bias, WFMT, GROUP, BLOCK_N, BLOCK_K, BLOCK_K, False, EXPLICIT)
                w = (q.to(tl.float32) * scale).to(DOT)
            else:
                w = q.to(tl.float32).to(DOT)
            acc = tl.dot(w, tl.trans(xr).to(DOT), acc)

    n_idx = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    finish_tile(acc, c_ptr, post_ptr, chan_ptr, bias_ptr, ws_ptr, cnt_ptr, n_idx, toks, N, M, stride_cm,
                pid_n * tl.num_programs(1) + pid_m, pid_k, WFMT, HAS_BIAS, SPLIT_K)


@triton.jit
def finish_tile(acc, c_ptr, post_ptr, chan_ptr, bias_ptr, ws_ptr, cnt_ptr, n_idx, toks, N, M, stride_cm, tile, pid_k,
                WFMT: tl.constexpr, HAS_BIAS: tl.constexpr, SPLIT_K: tl.constexpr):
    """Store the fp32 tile ``acc [rows n_idx, tokens toks]`` through the epilogue, or, with split-K,
    write it to the workspace and let the slice that arrives last at counter ``tile`` reduce."""
    tok_ok = toks < M
    cmask = (n_idx[:, None] < N) & tok_ok[None, :]
    if SPLIT_K > 1:
        total, last = reduce_slices(acc, ws_ptr, cnt_ptr, n_idx[:, None] + toks[None, :] * N, cmask, N * M,
                                    tile, pid_k, SPLIT_K)
        if last:
            _epilogue(total, c_ptr, post_ptr, chan_ptr, bias_ptr, n_idx, toks, N, cmask, stride_cm, WFMT, HAS_BIAS)
    else:
        _epilogue(acc, c_ptr, post_ptr, chan_ptr, bias_ptr, n_idx, toks, N, cmask, stride_cm, WFMT, HAS_BIAS)


@triton.jit
def _epilogue(acc, c_ptr, post_ptr, chan_ptr, bias_ptr, n_idx, toks, N, cmask, stride_cm,
              WFMT: tl.constexpr, HAS_BIAS: tl.constexpr):
    out = acc * tl.load(post_ptr)
    n_ok = n_idx < N
    if WFMT == 3:
        out = out * tl.load(chan_ptr + n_idx, mask=n_ok, other=1.0)[:, None]
    if HAS_BIAS:
        out += tl.load(bias_ptr + n_idx, mask=n_ok, other=0.0)[:, None].to(tl.float32)
    tl.store(c_ptr + toks[None, :] * stride_cm + n_idx[:, None], out.to(c_ptr.dtype.element_ty), mask=cmask)


@triton.jit
def _dequant_kernel(w_ptr, s_ptr, out_ptr, N, K, stride_w, stride_s, stride_o, scale_bias,
                    WFMT: tl.constexpr, GROUP: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                    EXPLICIT: tl.constexpr):
    """``out [N, K]`` bf16 = the in-loop weight values of :func:`_dequant_gemm_kernel` (exact)."""
    pid_n = tl.program_id(0)
    kt = tl.program_id(1)
    n_idx = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    rows = n_idx % N
    ok = (n_idx < N)[:, None]
    k0 = kt * BLOCK_K
    out_ty = out_ptr.dtype.element_ty
    if WFMT <= 1:
        HALF: tl.constexpr = BLOCK_K // 2
        j = tl.arange(0, HALF)
        packed = tl.load(w_ptr + rows[:, None] * stride_w + (k0 // 2 + j)[None, :])
        scale = _group_scales(s_ptr, rows, kt, stride_s, scale_bias, WFMT, GROUP, BLOCK_N, HALF, BLOCK_K, True, EXPLICIT)
        even, odd = dequant_e2m1(packed, scale, EXPLICIT)
        # interleave (element 2j from the low nibble, 2j+1 from the high one) for one contiguous store
        w = tl.reshape(tl.join(even, odd), (BLOCK_N, BLOCK_K))
        kk = tl.arange(0, BLOCK_K)
        tl.store(out_ptr + n_idx[:, None] * stride_o + (k0 + kk)[None, :], w.to(out_ty), mask=ok)
    else:
        kk = tl.arange(0, BLOCK_K)
        kmask = ok & ((k0 + kk) < K)[None, :]
        q = tl.load(w_ptr + rows[:, None] * stride_w + (k0 + kk)[None, :], mask=kmask, other=0.0).to(tl.float32)
        if WFMT == 2:
            q = q * _group_scales(s_ptr, rows, kt, stride_s, scale_bias, WFMT, GROUP, BLOCK_N, BLOCK_K, BLOCK_K, True, EXPLICIT)
        tl.store(out_ptr + n_idx[:, None] * stride_o + (k0 + kk)[None, :], q.to(out_ty), mask=kmask)


def _scale_bytes(scales: torch.Tensor | None) -> torch.Tensor | None:
    """e4m3 scales as their bytes: the kernels decode them by bit arithmetic (any sm_80+ GPU)."""
    if scales is not None and scales.dtype == torch.float8_e4m3fn:
        return scales.view(torch.uint8)
    return scales


def dequantize_weight(w: torch.Tensor, scales: torch.Tensor | None, k: int, *, wfmt: int, group: int,
                      scale_bias: int = 0) -> torch.Tensor:
    """The weight as bf16 ``[N, K]`` holding exactly the values :func:`dequant_gemm` multiplies in its
    loop (the ``post_scale`` and per-channel scales not applied). Float32 under the interpreter."""
    n = w.shape[0]
    block_k = 128 if wfmt >= MXFP8 else (64 if k % 64 == 0 else 32)
    out = torch.empty((n, k), device=w.device, dtype=torch.float32 if INTERPRETED else torch.bfloat16)
    scales = _scale_bytes(scales)
    grid = (triton.cdiv(n, 64), triton.cdiv(k, block_k))
    _dequant_kernel[grid](w, scales if scales is not None else out, out, n, k, w.stride(0),
                          scales.stride(0) if scales is not None else 0, out.stride(0), scale_bias,
                          WFMT=wfmt, GROUP=group, BLOCK_N=64, BLOCK_K=block_k, EXPLICIT=INTERPRETED, num_warps=4)
    return out


def dequant_gemm(
    x: torch.Tensor,
    w: torch.Tensor,
    scales: torch.Tensor | None,
    post_scale: torch.Tensor,
    *,
    wfmt: int,
    group: int,
    config: DequantConfig,
    channel_scale: torch.Tensor | None = None,
    scale_bias: int = 0,
    bias: torch.Tensor | None = None,
    out_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """``[M, N]``: ``x [M, K]`` (bf16/fp16/fp32, unit stride along K) times the dequantized weight.

    Args:
        w: the weight as stored by :mod:`qlinear.formats` (packed e2m1 ``uint8 [N, K/2]`` or e4m3 ``[N, K]``).
        scales: per-group scales ``[N, K/group]`` (e4m3 or e8m0 uint8) for ``wfmt`` 0-2, else None.
        post_scale: fp32 one-element tensor multiplied into every output.
        wfmt: one of ``NVFP4``, ``MXFP4``, ``MXFP8``, ``FP8_CHANNEL``.
        group: elements per scale along K (16 or 32); ``config.block_k`` must be a multiple.
        channel_scale: fp32 ``[N]`` or ``[N, 1]`` per-channel scales for ``FP8_CHANNEL``.
        scale_bias: integer added to e8m0 exponents (the power of two moved to ``post_scale``).
        bias: ``[N]`` added to every row.

    Raises:
        ValueError: ``block_k`` not a multiple of ``group``, or K not a multiple of ``block_k``
            for a grouped format (MX and NVFP4 need whole groups; ragged K is masked for FP8_CHANNEL);
            ``block_m`` below 16, the smallest bf16 MMA (one token: :func:`.gemv.weight_only_gemv`).
    """
    m, k = x.shape
    n = w.shape[0]
    if wfmt != FP8_CHANNEL and (config.block_k % group or k % config.block_k):
        raise ValueError(f"block_k={config.block_k} must divide K={k} and be a multiple of group={group}")
    if config.block_m < 16:
        raise ValueError(f"block_m={config.block_m}: the MMA needs 16 token columns; one token runs on "
                         "gemv.weight_only_gemv")
    out_dtype = out_dtype or x.dtype
    c = torch.empty((m, n), device=x.device, dtype=torch.float32 if INTERPRETED else out_dtype)
    grid = (triton.cdiv(n, config.block_n), triton.cdiv(m, config.block_m), config.split_k)
    if config.split_k > 1:
        ws, counters = split_k_buffers(x.device, config.split_k, m * n, grid[0] * grid[1])
    else:
        ws = counters = c
    placeholder = post_scale
    scales = _scale_bytes(scales)
    _dequant_gemm_kernel[grid](
        w, scales if scales is not None else placeholder, x, c, post_scale,
        channel_scale if channel_scale is not None else placeholder,
        bias if bias is not None else placeholder, ws, counters,
        n, m, k, w.stride(0), scales.stride(0) if scales is not None else 0, x.stride(0), c.stride(0), scale_bias,
        WFMT=wfmt, GROUP=group, HAS_BIAS=bias is not None, EVEN_K=k % config.block_k == 0,
        BLOCK_N=config.block_n, BLOCK_M=config.block_m, BLOCK_K=config.block_k, SPLIT_K=config.split_k,
        EXPLICIT=INTERPRETED, num_warps=config.num_warps, num_stages=config.num_stages,
    )
    return c if c.dtype == out_dtype else c.to(out_dtype)


__all__ = ["DequantConfig", "dequant_gemm", "finish_tile", "dequantize_weight", "E2M1_BIT_EXPONENT",
           "NVFP4", "MXFP4", "MXFP8", "FP8_CHANNEL", "NVFP4_SCALE_SHIFT"]
