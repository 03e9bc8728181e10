"""Decode GEMV for weight-only formats: ``y [1, N] = x [1, K] @ dequant(W)^T`` at one token.

At M = 1 a weight-only layer moves 0.5 (e2m1) or 1 (e4m3) byte per weight and does one
multiply-add with it. An H200's memory delivers ~32 e2m1 or ~16 e4m3 weights per clock per SM
(4.2 TB/s over 132 SMs at 1.98 GHz) and an SM issues 128 thread-instructions per clock, so above
4 (e2m1) or 8 (e4m3) instructions per weight the kernel is bound by instruction issue, not bytes
(the MMA kernel of :mod:`.dequant_gemm` reached ~1 TB/s at M = 1, ``bench/results/h200_issue4.md``).
Here the decode and the multiply-add take 3.6 (e2m1) or 2.5 (e4m3) per weight:

* the weight is read as int32 words (8 e2m1 codes or 4 e4m3 bytes; code ``i`` of word ``j`` is
  element ``8j + i`` / ``4j + i``, the canonical layout of :mod:`qlinear.formats` read little-endian);
* e2m1: each code becomes an fp32 bit pattern worth its value times ``2**-126`` by integer
  instructions, 2.6 per code: one mask isolates two codes (``i`` and ``i + 4``); per code one
  multiply by ``2**a + 2**(a-6)`` writes a copy with the sign bit at bit 31 and one with the
  magnitude bits at 22..24 (exponent field 0..3, mantissa bit 1/2: code 1 = 0.5 lands on the fp32
  subnormal ``2**-127``), one mask keeps those four bits;
* e4m3 (sm_89+): ``cvt.rn.f16x2.e4m3x2`` turns two bytes into two f16 (exact: e4m3 values and
  subnormals are f16 values), one conversion each to fp32: 1.5 per byte;
* one fp32 FMA with ``x * 2**96`` (the activation is pre-scaled once per element of x, so the
  products are fp32 normals for every |x| > 2**-90 and finite below 2**31);
* a group's scale (NVFP4 e4m3 per 16, MX e8m0 per 32) multiplies the group's partial sum once, not
  each weight; a per-channel scale (``fp8_a16``) is applied in the epilogue.

The products and sums are fp32 throughout (FMA, no flush to zero: the PTX is written out). An
e4m3 NaN byte (0x7f/0xff) would give NaN: quantized weights are checked for NaN/Inf when made or
loaded. Split-K slices are reduced in the same launch by
:func:`.dequant_gemm.finish_tile` (:mod:`.split_k`). Under ``TRITON_INTERPRET=1`` inline PTX cannot run; the same
partial sums are computed with float arithmetic (tests compare both with the float64 reference).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from .dequant import E2M1_BIT_EXPONENT, _e2m1_value, e4m3_to_fp32, group_scale_factors
from .dequant_gemm import MXFP4, NVFP4, NVFP4_SCALE_SHIFT, finish_tile
from .numerics import INTERPRETED
from .split_k import split_k_buffers

X_SHIFT = 96  # x is multiplied by 2**96


def _e2m1_pair_fma(word: str, i: int, x_low: str, x_high: str) -> str:
    """PTX adding ``pattern(code) * x`` to ``a`` for the e2m1 codes at bits ``4i..`` and ``4i+16..``
    of ``word`` (i < 2): one mask isolates both; a multiply by ``2**(28-4i) + 2**(22-4i)`` writes two
    copies of the lower code (sign at bit 31, magnitude at bits 22..24; the upper code's copies
    overflow past bit 31), one by ``2**(12-4i) + 2**(6-4i)`` does the same for the upper code (the
    lower code's copies land below bit 16); a mask keeps sign and magnitude bits of each."""
    lo = 4 * i
    low = (1 << (28 - lo)) + (1 << (22 - lo))
    high = (1 << (12 - lo)) + (1 << (6 - lo))
    both = (0xF << lo) | (0xF << (lo + 16))
    return (f"and.b32 n, {word}, {both:#x};\n"
            f"mul.lo.u32 v, n, {low:#x}; and.b32 w, v, 0x81c00000; fma.rn.f32 a, w, {x_low}, a;\n"
            f"mul.lo.u32 v, n, {high:#x}; and.b32 w, v, 0x81c00000; fma.rn.f32 a, w, {x_high}, a;\n")


def _e4m3_word_fma() -> str:
    """PTX adding ``value(byte i of $1) * $(2+i)`` to ``a`` for the word's four e4m3 bytes: each
    16-bit half becomes two f16 in one conversion (sm_89+; exact, e4m3 fits f16), each f16 one fp32."""
    body = ("mov.b32 {lo, hi}, $1;\n"
            "cvt.rn.f16x2.e4m3x2 v, lo; cvt.rn.f16x2.e4m3x2 w, hi;\n"
            "mov.b32 {h0, h1}, v; mov.b32 {h2, h3}, w;\n")
    for i in range(4):
        body += f"cvt.f32.f16 f, h{i}; fma.rn.f32 a, f, ${2 + i}, a;\n"
    return body


def _word_dot_ptx(element: str) -> str:
    """``$0 = sum_i pattern(code i of $1) * $(2+i)``. e2m1: codes (0, 4) and (1, 5) of the word,
    then (2, 6) and (3, 7) of the word shifted down 8 bits (21 integer instructions per 8 codes);
    e4m3: the exact values (2 + 4 conversions per 4 bytes)."""
    if element == "e2m1":
        body = (_e2m1_pair_fma("$1", 0, "$2", "$6") + _e2m1_pair_fma("$1", 1, "$3", "$7") + "shr.b32 h, $1, 8;\n"
                + _e2m1_pair_fma("h", 0, "$4", "$8") + _e2m1_pair_fma("h", 1, "$5", "$9"))
    else:
        body = _e4m3_word_fma()
    return ("{\n.reg .b32 n, v, w, h;\n.reg .b16 lo, hi, h0, h1, h2, h3;\n.reg .f32 a, f;\nmov.b32 a, 0f00000000;\n"
            + body + "mov.b32 $0, a;\n}")


_E2M1_WORD_DOT = tl.constexpr(_word_dot_ptx("e2m1"))
_E4M3_WORD_DOT = tl.constexpr(_word_dot_ptx("e4m3"))
_X_SCALE = tl.constexpr(2.0 ** X_SHIFT)
_E2M1_PRODUCT = tl.constexpr(2.0 ** (X_SHIFT - E2M1_BIT_EXPONENT))
_E4M3_PRODUCT = tl.constexpr(2.0 ** X_SHIFT)


@dataclass(frozen=True)
class GemvConfig:
    """``block_n`` weight rows by ``block_w`` int32 words per step; ``split_k`` slices."""

    block_n: int
    block_w: int
    split_k: int = 1
    num_warps: int = 4
    num_stages: int = 3

    def key(self) -> str:
        return f"gemv n{self.block_n}w{self.block_w}s{self.split_k}w{self.num_warps}p{self.num_stages}"


@triton.jit
def _signed_e4m3(code):
    """e4m3 byte (int32) -> its value as fp32 (interpreter path; the sign bit applied to the magnitude)."""
    value = e4m3_to_fp32(code, True)
    return tl.where((code & 0x80) != 0, -value, value)


@triton.jit
def _word_partials(q, x_ptr, words, ok, CPW: tl.constexpr, EVEN_K: tl.constexpr, EXPLICIT: tl.constexpr):
    """``[R, W]`` fp32: for each int32 word of ``CPW`` codes (8 e2m1 or 4 e4m3), the sum over its codes
    of value * x[CPW*word + i], times ``2**(X_SHIFT - 126)`` (e2m1) or ``2**X_SHIFT`` (e4m3)."""
    if EXPLICIT:
        i = tl.arange(0, CPW)
        xs = tl.load(x_ptr + words[:, None] * CPW + i[None, :], mask=ok[:, None], other=0.0).to(tl.float32)
        if CPW == 8:
            values = _e2m1_value((q[:, :, None] >> (4 * i)[None, None, :]) & 15)
            return tl.sum(values * xs[None, :, :], axis=2) * _E2M1_PRODUCT
        values = _signed_e4m3((q[:, :, None] >> (8 * i)[None, None, :]) & 0xFF)
        return tl.sum(values * xs[None, :, :], axis=2) * _E4M3_PRODUCT
    if CPW == 8:
        return tl.inline_asm_elementwise(
            _E2M1_WORD_DOT, "=r,r,r,r,r,r,r,r,r,r",
            [q, _x_code(x_ptr, words, ok, 0, 8, EVEN_K), _x_code(x_ptr, words, ok, 1, 8, EVEN_K),
             _x_code(x_ptr, words, ok, 2, 8, EVEN_K), _x_code(x_ptr, words, ok, 3, 8, EVEN_K),
             _x_code(x_ptr, words, ok, 4, 8, EVEN_K), _x_code(x_ptr, words, ok, 5, 8, EVEN_K),
             _x_code(x_ptr, words, ok, 6, 8, EVEN_K), _x_code(x_ptr, words, ok, 7, 8, EVEN_K)],
            dtype=tl.float32, is_pure=True, pack=1)
    return tl.inline_asm_elementwise(
        _E4M3_WORD_DOT, "=r,r,r,r,r,r",
        [q, _x_code(x_ptr, words, ok, 0, 4, EVEN_K), _x_code(x_ptr, words, ok, 1, 4, EVEN_K),
         _x_code(x_ptr, words, ok, 2, 4, EVEN_K), _x_code(x_ptr, words, ok, 3, 4, EVEN_K)],
        dtype=tl.float32, is_pure=True, pack=1)


@triton.jit
def _x_code(x_ptr, words, ok, i: tl.constexpr, CPW: tl.constexpr, EVEN_K: tl.constexpr):
    """``[1, W]`` fp32: the activation paired with code ``i`` of each word, times ``2**X_SHIFT``."""
    if EVEN_K:
        xi = tl.load(x_ptr + words * CPW + i)
    else:
        xi = tl.load(x_ptr + words * CPW + i, mask=ok, other=0.0)
    return (xi.to(tl.float32) * _X_SCALE)[None, :]


@triton.jit
def _load_tile(w_rows, s_rows, t, kw, WPG: tl.constexpr, BLOCK_W: tl.constexpr, GROUPED: tl.constexpr,
               EVEN_K: tl.constexpr):
    """Tile ``t``: code words ``[R, BLOCK_W]`` and (``GROUPED``) scale bytes ``[R, BLOCK_W // WPG]``,
    zeros past K; without group scales the second value is a placeholder."""
    words = t * BLOCK_W + tl.arange(0, BLOCK_W)
    groups = t * (BLOCK_W // WPG) + tl.arange(0, BLOCK_W // WPG)
    if EVEN_K:
        q = tl.load(w_rows + words[None, :])
    else:
        q = tl.load(w_rows + words[None, :], mask=(words < kw)[None, :], other=0)
    if GROUPED:
        if EVEN_K:
            raw = tl.load(s_rows + groups[None, :])
        else:
            raw = tl.load(s_rows + groups[None, :], mask=(groups < kw // WPG)[None, :], other=0)
    else:
        raw = q
    return q, raw


@triton.jit
def _gemv_kernel(
    w_ptr, s_ptr, x_ptr, c_ptr, post_ptr, chan_ptr, bias_ptr, ws_ptr, cnt_ptr,
    N, K, stride_w, stride_s, scale_bias, out_mul,
    WFMT: tl.constexpr, HAS_BIAS: tl.constexpr, EVEN_K: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_W: tl.constexpr, SPLIT_K: tl.constexpr, EXPLICIT: tl.constexpr,
):
    pid_n = tl.program_id(0)
    pid_k = tl.program_id(1)
    CPW: tl.constexpr = 8 if WFMT <= 1 else 4  # codes per 32-bit word
    GROUPED: tl.constexpr = WFMT != 3  # FP8_CHANNEL: a per-channel scale, applied in the epilogue
    # words per scale group (NVFP4 16 codes, MX 32 codes); per-channel: the whole step is one group
    WPG: tl.constexpr = (2 if WFMT == 0 else (4 if WFMT == 1 else 8)) if GROUPED else BLOCK_W
    GPT: tl.constexpr = BLOCK_W // WPG
    rows = (pid_n * BLOCK_N + tl.arange(0, BLOCK_N)) % N
    kw = K // CPW
    tiles = tl.cdiv(kw, BLOCK_W)
    per_split = tl.cdiv(tiles, SPLIT_K)
    t_first = pid_k * per_split
    t_last = tl.minimum(t_first + per_split, tiles)

    w_rows = w_ptr + rows[:, None] * stride_w
    s_rows = s_ptr + rows[:, None] * stride_s
    # The next tile's loads are issued before this tile's arithmetic, so memory and the decode
    # overlap (Triton does not pipeline loads that feed no dot). The last step re-reads its own tile.
    q, raw = _load_tile(w_rows, s_rows, tl.minimum(t_first, tiles - 1), kw, WPG, BLOCK_W, GROUPED, EVEN_K)
    acc = tl.zeros((BLOCK_N, GPT), dtype=tl.float32)
    for t in range(t_first, t_last):
        q_next, raw_next = _load_tile(w_rows, s_rows, tl.minimum(t + 1, t_last - 1), kw, WPG, BLOCK_W, GROUPED,
                                      EVEN_K)
        words = t * BLOCK_W + tl.arange(0, BLOCK_W)
        partial = _word_partials(q, x_ptr, words, words < kw, CPW, EVEN_K, EXPLICIT)
        group_sums = tl.sum(tl.reshape(partial, (BLOCK_N, GPT, WPG)), axis=2)
        if GROUPED:
            acc += group_sums * group_scale_factors(raw, scale_bias, WFMT == 0, EXPLICIT)
        else:
            acc += group_sums
        q = q_next
        raw = raw_next

    out = (tl.sum(acc, axis=1) * out_mul)[:, None]
    n_idx = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    toks = tl.arange(0, 1)
    finish_tile(out, c_ptr, post_ptr, chan_ptr, bias_ptr, ws_ptr, cnt_ptr, n_idx, toks, N, 1, 1,
                pid_n, pid_k, WFMT, HAS_BIAS, SPLIT_K)


def gemv_out_multiplier(wfmt: int) -> float:
    """The power of two between this kernel's sums and the in-loop values of
    :func:`.dequant_gemm.dequant_gemm`, whose ``post_scale`` convention the layer's is made for: there
    e2m1 values carry ``2**-NVFP4_SCALE_SHIFT`` (NVFP4) or ``2**-126`` (MXFP4, whose e8m0 factor
    carries the ``2**126``) and e4m3 values are exact; here products carry ``2**(X_SHIFT - 126)``
    (e2m1) or ``2**X_SHIFT`` (e4m3), times the same group factors."""
    if wfmt == NVFP4:
        return 2.0 ** (E2M1_BIT_EXPONENT - X_SHIFT - NVFP4_SCALE_SHIFT)
    if wfmt == MXFP4:
        return 2.0 ** -X_SHIFT
    return 2.0 ** -X_SHIFT


def weight_only_gemv(x: torch.Tensor, w: torch.Tensor, scales: torch.Tensor | None, post_scale: torch.Tensor, *,
                     wfmt: int, config: GemvConfig, scale_bias: int = 0, channel_scale: torch.Tensor | None = None,
                     bias: torch.Tensor | None = None, out_dtype: torch.dtype | None = None) -> torch.Tensor:
    """``[1, N]``: one token ``x [1, K]`` (bf16/fp16/fp32, contiguous) times the dequantized weight.

    Args:
        w: packed e2m1 ``uint8 [N, K/2]`` (``wfmt`` NVFP4, MXFP4) or e4m3 ``[N, K]`` (MXFP8,
            FP8_CHANNEL), rows contiguous and 4-byte aligned (as :mod:`qlinear.formats` stores them).
        scales: ``[N, K/16]`` e4m3 (NVFP4) or ``[N, K/32]`` e8m0 uint8 (MXFP4, MXFP8); None for FP8_CHANNEL.
        post_scale: fp32 one-element tensor, as for :func:`.dequant_gemm.dequant_gemm` (NVFP4 global
            scale times ``2**NVFP4_SCALE_SHIFT``; MX ``2**c`` with the matching ``scale_bias``).
        channel_scale: fp32 ``[N]`` or ``[N, 1]`` per-channel scales (FP8_CHANNEL).
        bias: ``[N]`` added to the output.

    Raises:
        ValueError: more than one token, K not a multiple of 32, or a weight row not 4-byte aligned.
    """
    m, k = x.shape
    n = w.shape[0]
    if m != 1 or k % 32 or w.stride(1) != 1 or (w.stride(0) * w.element_size()) % 4:
        raise ValueError(f"weight_only_gemv takes one token, K % 32 == 0 and 4-byte aligned weight rows; "
                         f"got x {tuple(x.shape)}, w {tuple(w.shape)} strides {w.stride()}, wfmt {wfmt}")
    out_dtype = out_dtype or x.dtype
    x = x.contiguous()
    c = torch.empty((1, n), device=x.device, dtype=torch.float32 if INTERPRETED else out_dtype)
    grid = (triton.cdiv(n, config.block_n), config.split_k)
    if config.split_k > 1:
        ws, counters = split_k_buffers(x.device, config.split_k, n, grid[0])
    else:
        ws = counters = c
    if scales is not None and scales.dtype == torch.float8_e4m3fn:
        scales = scales.view(torch.uint8)
    words = w.view(torch.uint8).view(torch.int32)
    codes_per_word = 8 if wfmt in (NVFP4, MXFP4) else 4
    _gemv_kernel[grid](
        words, scales if scales is not None else post_scale, x, c, post_scale,
        channel_scale if channel_scale is not None else post_scale, bias if bias is not None else post_scale,
        ws, counters, n, k, words.stride(0), scales.stride(0) if scales is not None else 0, scale_bias,
        gemv_out_multiplier(wfmt),
        WFMT=wfmt, HAS_BIAS=bias is not None, EVEN_K=(k // codes_per_word) % config.block_w == 0,
        BLOCK_N=config.block_n, BLOCK_W=config.block_w, SPLIT_K=config.split_k, EXPLICIT=INTERPRETED,
        num_warps=config.num_warps, num_stages=config.num_stages,
    )
    return c if c.dtype == out_dtype else c.to(out_dtype)


__all__ = ["GemvConfig", "weight_only_gemv", "gemv_out_multiplier", "X_SHIFT"]
