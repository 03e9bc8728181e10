"""Decode GEMV for e2m1 weights (NVFP4, MXFP4): ``y [1, N] = x [1, K] @ dequant(W)^T`` at one token.

At M = 1 a W4A16 layer moves half a byte per weight and does one multiply-add with it. An H200's
memory delivers ~32 such weights per clock per SM (4.2 TB/s over 132 SMs at 1.98 GHz) and an SM
issues 128 thread-instructions per clock, so above 4 instructions per weight the kernel is bound by
instruction issue, not bytes (the MMA kernel of :mod:`.dequant_gemm` reached ~1 TB/s at M = 1,
``bench/results/h200_issue4.md``). Here the decode and the multiply-add take 3.6 per weight:

* the weight is read as int32 words (8 codes, K order: code ``i`` of word ``j`` is element
  ``8j + i``, the canonical packing of :mod:`qlinear.formats` read little-endian);
* each code becomes an fp32 bit pattern worth ``e2m1 * 2**-126`` in 2.6 integer instructions: one
  mask isolates two codes (``i`` and ``i + 4`` of a word); per code, one multiply by
  ``2**a + 2**(a-6)`` writes two copies of it, one with the sign bit at bit 31 and one with the
  magnitude bits at 22..24 (exponent field 0..3, mantissa bit 1/2: code 1 = 0.5 lands on the fp32
  subnormal ``2**-127``), and one mask keeps those four bits;
* one fp32 FMA with ``x * 2**96`` (the activation is pre-scaled once per element of x, so the
  products, ``e2m1 * x * 2**-30``, are fp32 normals for every |x| > 2**-97 and finite below 2**31);
* the group's scale multiplies the group's partial sum once (per 16 or 32 weights), not each weight.

The products and sums are fp32 throughout (FMA, no flush to zero: the PTX is written out). Split-K
slices are reduced in the same launch by :func:`.dequant_gemm.finish_tile`. Under
``TRITON_INTERPRET=1`` inline PTX cannot run; the same partial sums are computed with float
arithmetic (tests compare both with the float64 reference).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from .dequant import E2M1_BIT_EXPONENT, _e2m1_value, e4m3_to_fp32, e8m0_to_fp32
from .dequant_gemm import MXFP4, NVFP4, NVFP4_SCALE_SHIFT, finish_tile, tile_counters
from .numerics import INTERPRETED

X_SHIFT = 96  # x is multiplied by 2**96; the code patterns carry 2**-126: products carry 2**-30
_PRODUCT_EXP = X_SHIFT - 126


def _pair_fma(word: str, i: int, x_low: str, x_high: str) -> str:
    """PTX adding ``pattern(code) * x`` to ``a`` for the codes at bits ``4i..`` and ``4i+16..`` of
    ``word`` (i < 2): one mask isolates both; a multiply by ``2**(28-4i) + 2**(22-4i)`` writes two
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


def _word_dot_ptx() -> str:
    """``$0 = sum_i pattern(code i of $1) * $(2+i)``: codes (0, 4) and (1, 5) of the word, then
    (2, 6) and (3, 7) of the word shifted down 8 bits. 21 integer instructions per 8 codes."""
    body = ("mov.b32 a, 0f00000000;\n" + _pair_fma("$1", 0, "$2", "$6") + _pair_fma("$1", 1, "$3", "$7")
            + "shr.b32 h, $1, 8;\n" + _pair_fma("h", 0, "$4", "$8") + _pair_fma("h", 1, "$5", "$9"))
    return "{\n.reg .b32 n, v, w, h;\n.reg .f32 a;\n" + body + "mov.b32 $0, a;\n}"


_WORD_DOT = tl.constexpr(_word_dot_ptx())
_X_SCALE = tl.constexpr(2.0 ** X_SHIFT)
_PRODUCT_VALUE = tl.constexpr(2.0 ** _PRODUCT_EXP)


@dataclass(frozen=True)
class GemvConfig:
    """``block_n`` weight rows by ``block_w`` int32 words (8 codes each) per step; ``split_k`` slices."""

    block_n: int
    block_w: int
    split_k: int = 1
    num_warps: int = 4
    num_stages: int = 3

    def key(self) -> str:
        return f"gemv n{self.block_n}w{self.block_w}s{self.split_k}w{self.num_warps}p{self.num_stages}"


@triton.jit
def _word_partials(q, x_ptr, words, ok, EVEN_K: tl.constexpr, EXPLICIT: tl.constexpr):
    """``[R, W]`` fp32: for each int32 word of codes, sum_i e2m1_i * x[8*word + i] * 2**-30."""
    if EXPLICIT:
        i = tl.arange(0, 8)
        codes = (q[:, :, None] >> (4 * i)[None, None, :]) & 15
        xs = tl.load(x_ptr + words[:, None] * 8 + i[None, :], mask=ok[:, None], other=0.0).to(tl.float32)
        return tl.sum(_e2m1_value(codes) * xs[None, :, :], axis=2) * _PRODUCT_VALUE
    return tl.inline_asm_elementwise(
        _WORD_DOT, "=r,r,r,r,r,r,r,r,r,r",
        [q, _x_code(x_ptr, words, ok, 0, EVEN_K), _x_code(x_ptr, words, ok, 1, EVEN_K),
         _x_code(x_ptr, words, ok, 2, EVEN_K), _x_code(x_ptr, words, ok, 3, EVEN_K),
         _x_code(x_ptr, words, ok, 4, EVEN_K), _x_code(x_ptr, words, ok, 5, EVEN_K),
         _x_code(x_ptr, words, ok, 6, EVEN_K), _x_code(x_ptr, words, ok, 7, EVEN_K)],
        dtype=tl.float32, is_pure=True, pack=1)


@triton.jit
def _x_code(x_ptr, words, ok, i: tl.constexpr, EVEN_K: tl.constexpr):
    """``[1, W]`` fp32: the activation paired with code ``i`` of each word, times ``2**X_SHIFT``."""
    if EVEN_K:
        xi = tl.load(x_ptr + words * 8 + i)
    else:
        xi = tl.load(x_ptr + words * 8 + i, mask=ok, other=0.0)
    return (xi.to(tl.float32) * _X_SCALE)[None, :]


@triton.jit
def _load_tile(w_rows, s_rows, t, kw, WPG: tl.constexpr, BLOCK_W: tl.constexpr, EVEN_K: tl.constexpr):
    """Tile ``t``: code words ``[R, BLOCK_W]`` and scale bytes ``[R, BLOCK_W // WPG]`` (zeros past K)."""
    words = t * BLOCK_W + tl.arange(0, BLOCK_W)
    groups = t * (BLOCK_W // WPG) + tl.arange(0, BLOCK_W // WPG)
    if EVEN_K:
        return tl.load(w_rows + words[None, :]), tl.load(s_rows + groups[None, :])
    q = tl.load(w_rows + words[None, :], mask=(words < kw)[None, :], other=0)
    raw = tl.load(s_rows + groups[None, :], mask=(groups < kw // WPG)[None, :], other=0)
    return q, raw


@triton.jit
def _group_scale(raw, scale_bias, WFMT: tl.constexpr, EXPLICIT: tl.constexpr):
    """Scale bytes -> fp32 factors: the e4m3 value (NVFP4) or ``2**(e8m0 + scale_bias - 127)`` (MXFP4)."""
    if WFMT == 0:
        return e4m3_to_fp32(raw, EXPLICIT)
    return e8m0_to_fp32(raw, scale_bias)


@triton.jit
def _e2m1_gemv_kernel(
    w_ptr, s_ptr, x_ptr, c_ptr, post_ptr, bias_ptr, ws_ptr, cnt_ptr,
    N, K, stride_w, stride_s, scale_bias, out_mul,
    WFMT: tl.constexpr, HAS_BIAS: tl.constexpr, EVEN_K: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_W: tl.constexpr, SPLIT_K: tl.constexpr, EXPLICIT: tl.constexpr,
):
    pid_n = tl.program_id(0)
    pid_k = tl.program_id(1)
    WPG: tl.constexpr = 2 if WFMT == 0 else 4  # words per scale group (16 or 32 codes)
    GPT: tl.constexpr = BLOCK_W // WPG
    rows = (pid_n * BLOCK_N + tl.arange(0, BLOCK_N)) % N
    kw = K // 8
    tiles = tl.cdiv(kw, BLOCK_W)
    per_split = tl.cdiv(tiles, SPLIT_K)
    t_first = pid_k * per_split
    t_last = tl.minimum(t_first + per_split, tiles)

    w_rows = w_ptr + rows[:, None] * stride_w
    s_rows = s_ptr + rows[:, None] * stride_s
    # The next tile's loads are issued before this tile's arithmetic, so memory and the decode
    # overlap (Triton does not pipeline loads that feed no dot). The last step re-reads its own tile.
    q, raw = _load_tile(w_rows, s_rows, tl.minimum(t_first, tiles - 1), kw, WPG, BLOCK_W, EVEN_K)
    acc = tl.zeros((BLOCK_N, GPT), dtype=tl.float32)
    for t in range(t_first, t_last):
        q_next, raw_next = _load_tile(w_rows, s_rows, tl.minimum(t + 1, t_last - 1), kw, WPG, BLOCK_W, EVEN_K)
        words = t * BLOCK_W + tl.arange(0, BLOCK_W)
        partial = _word_partials(q, x_ptr, words, words < kw, EVEN_K, EXPLICIT)
        group_sums = tl.sum(tl.reshape(partial, (BLOCK_N, GPT, WPG)), axis=2)
        acc += group_sums * _group_scale(raw, scale_bias, WFMT, EXPLICIT)
        q = q_next
        raw = raw_next

    out = (tl.sum(acc, axis=1) * out_mul)[:, None]
    n_idx = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    toks = tl.arange(0, 1)
    finish_tile(out, c_ptr, post_ptr, post_ptr, bias_ptr, ws_ptr, cnt_ptr, n_idx, toks, N, 1, 1,
                pid_n, pid_k, WFMT, HAS_BIAS, SPLIT_K)


def gemv_out_multiplier(wfmt: int) -> float:
    """The power of two between this kernel's sums and the ``post_scale`` convention of
    :func:`.dequant_gemm.dequant_gemm`, which the layer's ``post_scale`` is made for: there the
    in-loop values carry ``2**-NVFP4_SCALE_SHIFT`` (NVFP4) or ``2**-126`` times the e8m0 factor's
    ``2**scale_bias`` (MXFP4); here the products carry ``2**-30`` and the same factors."""
    if wfmt == NVFP4:
        return 2.0 ** (-_PRODUCT_EXP - NVFP4_SCALE_SHIFT)
    return 2.0 ** (-_PRODUCT_EXP - E2M1_BIT_EXPONENT)


def e2m1_gemv(x: torch.Tensor, w: torch.Tensor, scales: torch.Tensor, post_scale: torch.Tensor, *,
              wfmt: int, config: GemvConfig, scale_bias: int = 0, bias: torch.Tensor | None = None,
              out_dtype: torch.dtype | None = None) -> torch.Tensor:
    """``[1, N]``: one token ``x [1, K]`` (bf16/fp16/fp32, contiguous) times the dequantized e2m1 weight.

    Args:
        w: packed e2m1 ``uint8 [N, K/2]``, rows contiguous (as :mod:`qlinear.formats` stores them).
        scales: ``[N, K/16]`` e4m3 (``wfmt=NVFP4``) or ``[N, K/32]`` e8m0 uint8 (``MXFP4``).
        post_scale: fp32 one-element tensor, as for :func:`.dequant_gemm.dequant_gemm` (NVFP4 global
            scale times ``2**NVFP4_SCALE_SHIFT``; MXFP4 ``2**c``, with ``scale_bias = 126 - c``).
        bias: ``[N]`` added to the output.

    Raises:
        ValueError: more than one token, K not a multiple of 32, or a weight row not 4-byte aligned.
    """
    m, k = x.shape
    n = w.shape[0]
    if m != 1 or k % 32 or w.stride(1) != 1 or w.stride(0) % 4 or wfmt not in (NVFP4, MXFP4):
        raise ValueError(f"e2m1_gemv takes one token, K % 32 == 0 and 4-byte aligned packed rows; "
                         f"got x {tuple(x.shape)}, w {tuple(w.shape)} strides {w.stride()}, wfmt {wfmt}")
    out_dtype = out_dtype or x.dtype
    x = x.contiguous()
    c = torch.empty((1, n), device=x.device, dtype=torch.float32 if INTERPRETED else out_dtype)
    grid = (triton.cdiv(n, config.block_n), config.split_k)
    if config.split_k > 1:
        ws = torch.empty((config.split_k, 1, n), device=x.device, dtype=torch.float32)
        counters = tile_counters(x.device, grid[0])
    else:
        ws = counters = c
    if scales.dtype == torch.float8_e4m3fn:
        scales = scales.view(torch.uint8)
    words = w.view(torch.int32)
    _e2m1_gemv_kernel[grid](
        words, scales, x, c, post_scale, bias if bias is not None else post_scale, ws, counters,
        n, k, words.stride(0), scales.stride(0), scale_bias, gemv_out_multiplier(wfmt),
        WFMT=wfmt, HAS_BIAS=bias is not None, EVEN_K=(k // 8) % config.block_w == 0,
        BLOCK_N=config.block_n, BLOCK_W=config.block_w, SPLIT_K=config.split_k, EXPLICIT=INTERPRETED,
        num_warps=config.num_warps, num_stages=config.num_stages,
    )
    return c if c.dtype == out_dtype else c.to(out_dtype)


__all__ = ["GemvConfig", "e2m1_gemv", "gemv_out_multiplier", "X_SHIFT"]
