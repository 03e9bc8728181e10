"""Decode GEMM for e2m1 weights (NVFP4, MXFP4) in Gluon: each 32-bit load of the packed weight
becomes ``mma.sync`` A fragments in registers, with no shared-memory round trip.

``C [M, N] = X [M, K] @ dequant(W)^T`` for M up to 64 tokens, computed transposed (the weight's
rows are the MMA's M side, the tokens its N side, 8 per ``m16n8k16``), from the canonical
packed layout of :mod:`qlinear.formats` (``uint8 [N, K/2]``, element ``2j`` in the low nibble of
byte ``j``): nothing is repacked.

What it does differently: Triton's ``tl.dot`` wants its operand in a layout it reaches from a
loaded tile through shared memory, which cost the Triton W4A16 MMA kernel ~190 byte shuffles per
step. Here the layout is chosen so that each lane's loaded words hold exactly its fragment values:

* a lane quad (lanes ``4g .. 4g+3``) reads 64 contiguous bytes of weight rows ``g`` and ``g+8``,
  16 bytes per lane (one 128-bit load per row): 128 codes per row per *chunk*;
* the MMA only needs the same K order on both operands, so K is permuted within each chunk: a
  lane's 32-bit word (8 codes) becomes four bf16x2 registers holding codes ``(p, p+4)``, which
  lands both codes of a register at the same bit offset of its 16-bit half. One mask, one
  multiply (two shifted copies: the sign to bit 15, the exponent and mantissa bits to 8..6), one
  mask make the bf16 pattern of ``e2m1 * 2**-126``; one packed bf16 multiply applies the group
  scale (which carries the ``2**126``) and makes the value exact and normal: 17 instructions per
  8 codes, ~3 per weight with the loads, scales and MMAs (sm_90 SASS);
* the activation is staged once per program in shared memory in that permuted K order, and read
  with ``ldmatrix`` as the MMA's B operand.

Measured on an H200 (``bench/results/h200_issue4.md``, NVFP4 and MXFP4 on the issue's four
shapes): 1.03-1.26x the CUDA-core GEMV of :mod:`.gemv` at one token, 1.7-2.3x the Triton MMA
kernel at 4 tokens and 1.1-1.6x at 16 (1.3-2.2x bf16 ``torch.mm`` at 1..16 tokens); slower than
the Triton kernel at 64 tokens (measured before the 16-byte staging). The profile at one token:
issue slots ~56% busy, the integer pipe ~53%, most stalls waiting for the weight loads. At 9..16
tokens a warp may take two MMA row tiles (``m_tiles``), reading each staged activation fragment
once for 32 weight rows: up to 1.25x faster there (``bench/results/h200_issue4_e2m1_mtiles.txt``).

K permutation within a 128-code chunk: logical ``k = 32i + 16u + 8b + 2t + v`` (MMA order:
``t`` the lane in its quad, ``v`` the half of a register, ``b`` the MMA's ``k+8`` register, ``u``
and ``i`` successive MMA K steps) holds the code at ``32t + 8i + 4v + 2u + b`` (lane ``t``'s word
``i``, code ``2u + b + 4v``).

In-loop values equal :func:`.dequant_gemm.dequant_gemm`'s exactly (NVFP4: ``e2m1 * s * 2**-8``;
MXFP4: ``e2m1 * 2**(e + scale_bias - 127 - 126)``), so the layer's ``post_scale`` applies as is.
Split-K slices are reduced in the same launch by the slice that arrives last (as :mod:`.split_k`).
Any sm_80+ GPU (``mma.sync`` bf16, ``fma.rn.bf16x2``). Gluon has no CPU interpreter: the CPU tests
(``tests/test_e2m1_mma.py``) run :func:`decode_ptx` through a small PTX interpreter and rebuild
the product with this K permutation; the GPU tests check the kernel against the float64 reference.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.language.nvidia.ampere import mma_v2

from ..padding import round_up
from .configs import SM_COUNT_HOPPER
from .split_k import split_k_buffers

CHUNK = gl.constexpr(128)  # codes of one weight row a lane quad reads per chunk (4 lanes x 16 bytes)
MAX_TOKENS = 64  # decode sizes: up to 8 MMA column tiles of 8 tokens
SHARED_MEMORY_BYTES = 64 * 1024  # the staged activation slice of one program
STAGED_ACTIVATION_BYTES = 16 * 1024  # the picker's target slice: ~4 steps at one MMA column tile
STAGED_SPLIT_BYTES = 32 * 1024  # the picker's cap on fp32 partials the last slice sums (16 slices at 8 tokens)
NVFP4_SCALE_MULTIPLIERS = (0x7F007F00, 0x77007700)  # bf16x2 2**127 and 2**111: e4m3 pattern * 2**-120 -> s * 2**118


def decode_ptx(mx: bool) -> str:
    """The inline PTX of one lane's 4 words (32 codes of one row) to 16 scaled bf16x2 registers.

    Operands: ``$0..$15`` outputs (register ``4p + i`` holds codes ``p`` and ``p + 4`` of word
    ``i``); ``$16..$23`` the 4 words, each twice (the output pairs are built from one word);
    then the scales: NVFP4 ``$24..$27`` (uint16 pairs, each register the two e4m3 bytes of this
    lane's two groups, twice); MXFP4 ``$24..$31`` (int32, the bf16 exponent field of the group's
    factor, ``e8m0 + scale_bias``, 8 copies).
    """
    lines = [".reg .b32 n, v, q, h, t, z, sA, sB, e1, e2;", "mov.b32 z, 0x80008000;"]  # -0.0: fma as a multiply
    if mx:
        lines += ["shl.b32 t, $24, 7;", "prmt.b32 sA, t, 0, 0x1010;", "mov.b32 sB, sA;"]
    else:
        # e4m3 byte << 4 is the bf16 pattern of s * 2**-120 (subnormal s too); two exact multiplies
        # (bf16 holds at most 2**127) make s * 2**118, carrying the e2m1 patterns' 2**126 less 2**8.
        lines += [f"mov.b32 e1, {NVFP4_SCALE_MULTIPLIERS[0]:#x};", f"mov.b32 e2, {NVFP4_SCALE_MULTIPLIERS[1]:#x};"]
        for reg, select in (("sA", "0x4040"), ("sB", "0x4141")):
            lines += [f"prmt.b32 t, $24, 0, {select};", "and.b32 t, t, 0x007F007F;", "shl.b32 t, t, 4;",
                      "fma.rn.bf16x2 t, t, e1, z;", f"fma.rn.bf16x2 {reg}, t, e2, z;"]
    for i in range(4):
        word, scale = f"${16 + 2 * i}", "sA" if i < 2 else "sB"
        for p in range(4):
            source = word if p < 2 else "h"
            if p == 2:
                lines.append(f"shr.b32 h, {word}, 8;")
            mask, copies = ("0x000F000F", "0x1040") if p % 2 == 0 else ("0x00F000F0", "0x104")
            lines.append(f"and.b32 n, {source}, {mask}; mul.lo.u32 v, n, {copies}; and.b32 q, v, 0x81C081C0; "
                         f"fma.rn.bf16x2 ${4 * p + i}, q, {scale}, z;")
    return "{\n" + "\n".join(lines) + "\n}"


_NVFP4_PTX = gl.constexpr(decode_ptx(False))
_MXFP4_PTX = gl.constexpr(decode_ptx(True))
_NVFP4_CONSTRAINTS = gl.constexpr(",".join(["=r"] * 16 + ["r"] * 12))
_MXFP4_CONSTRAINTS = gl.constexpr(",".join(["=r"] * 16 + ["r"] * 16))


@gluon.jit
def _stage_activation(x_ptr, xs, M, stride_x, k_first, k_end, BK: gl.constexpr, WARPS: gl.constexpr):
    """Copy ``x[:, k_first:k_end]`` into shared memory ``xs [steps, T, BK]`` in logical K order, zeros
    past M and K. A thread loads, 16 bytes each, the four 8-code runs ``32t + 8i .. 32t + 8i + 7``
    (t = 0..3) of one chunk and token: together exactly logical positions ``32i .. 32i + 31``, put in
    order by register permutes and stored as four 16-byte vectors.
    (Tried, ``bench/results/h200_issue4_e2m1_mma_tried.txt``: gathering 8 logically consecutive
    values per thread with 2-byte loads cost ~30% more instructions per program at one token and
    ran up to 1.25x slower at 16; staging only the rows below M needs an unswizzled buffer whose
    ldmatrix reads conflict in banks: one token ran 1.7x slower at 28672x4096.)"""
    T: gl.constexpr = xs.shape[1]
    C: gl.constexpr = BK // 128
    WC: gl.constexpr = WARPS if C >= WARPS else C
    WT: gl.constexpr = WARPS // WC
    L5: gl.constexpr = gl.BlockedLayout([1, 1, 4, 1, 8], [8, 1, 1, 4, 1], [WT, WC, 1, 1, 1], [4, 3, 2, 1, 0])
    n5 = gl.arange(0, T, layout=gl.SliceLayout(1, gl.SliceLayout(2, gl.SliceLayout(3, gl.SliceLayout(4, L5)))))
    c5 = gl.arange(0, C, layout=gl.SliceLayout(0, gl.SliceLayout(2, gl.SliceLayout(3, gl.SliceLayout(4, L5)))))
    t5 = gl.arange(0, 4, layout=gl.SliceLayout(0, gl.SliceLayout(1, gl.SliceLayout(3, gl.SliceLayout(4, L5)))))
    i5 = gl.arange(0, 4, layout=gl.SliceLayout(0, gl.SliceLayout(1, gl.SliceLayout(2, gl.SliceLayout(4, L5)))))
    o5 = gl.arange(0, 8, layout=gl.SliceLayout(0, gl.SliceLayout(1, gl.SliceLayout(2, gl.SliceLayout(3, L5)))))
    tok = n5[:, None, None, None, None]
    pos = (c5[None, :, None, None, None] * 128 + t5[None, None, :, None, None] * 32
           + i5[None, None, None, :, None] * 8 + o5[None, None, None, None, :])
    for step in range(xs.shape[0]):
        k = k_first + step * BK + pos
        v = gl.load(x_ptr + tok * stride_x + k, mask=(tok < M) & (k < k_end), other=0.0).to(gl.bfloat16)
        v = gl.reshape(v, [T, C, 4, 4, 2, 2, 2])  # [token, c, t, i, v, u, b]: code 32t + 8i + 4v + 2u + b
        v = gl.permute(v, [0, 1, 3, 5, 6, 2, 4])  # [token, c, i, u, b, t, v]: logical 32i + 16u + 8b + 2t + v
        xs.index(step).store(gl.reshape(v, [T, BK]))
    gl.thread_barrier()


@gluon.jit
def _decode(words, raw, scale_bias, R: gl.constexpr, CH: gl.constexpr, WARPS: gl.constexpr, MT: gl.constexpr,
            MX: gl.constexpr, layout: gl.constexpr):
    """Words ``[R, CH, 4, 4]`` and their scales ``[R, CH, 4]`` -> the MMA's A operand ``[R, CH * 128]`` bf16."""
    if MX:
        raw = gl.maximum(raw.to(gl.int32) + scale_bias, 0)  # 0 only for all-zero groups
    scales = gl.expand_dims(raw, 3).broadcast_to([R, CH, 4, 4])
    if MX:
        o0, o1, o2, o3 = gl.inline_asm_elementwise(
            _MXFP4_PTX, _MXFP4_CONSTRAINTS, [gl.join(words, words), gl.join(scales, scales)],
            dtype=(gl.bfloat16, gl.bfloat16, gl.bfloat16, gl.bfloat16), is_pure=True, pack=8)
    else:
        o0, o1, o2, o3 = gl.inline_asm_elementwise(
            _NVFP4_PTX, _NVFP4_CONSTRAINTS, [gl.join(words, words), gl.join(scales, scales)],
            dtype=(gl.bfloat16, gl.bfloat16, gl.bfloat16, gl.bfloat16), is_pure=True, pack=8)
    # o_p[row, c, t, i, v] holds code 4v + p of word i; p = 2u + b
    a = gl.join(gl.join(o0, o1), gl.join(o2, o3))  # [R, CH, t, i, v, b, u]
    a = gl.reshape(a, [MT, 2, WARPS, 8, CH, 4, 4, 2, 2, 2])  # rows: tensor row = (2 tile + h) * 8W + 8w + g
    a = gl.permute(a, [0, 2, 1, 3, 4, 6, 9, 8, 5, 7])  # [tile, w, h, g, c, i, u, b, t, v]
    return gl.convert_layout(gl.reshape(a, [R, CH * 128]), layout, assert_trivial=True)


@gluon.jit
def _e2m1_mma_kernel(w_ptr, s_ptr, x_ptr, c_ptr, post_ptr, bias_ptr, ws_ptr, cnt_ptr,
                     N, M, K, stride_w, stride_s, stride_x, stride_c, scale_bias,
                     MX: gl.constexpr, HAS_BIAS: gl.constexpr, SPLIT_K: gl.constexpr, WARPS: gl.constexpr,
                     CH: gl.constexpr, NT: gl.constexpr, KS: gl.constexpr, EVEN_K: gl.constexpr,
                     MT: gl.constexpr):
    R: gl.constexpr = 16 * WARPS * MT  # weight rows per program: MT MMA row tiles per warp
    BK: gl.constexpr = CHUNK * CH  # codes per row per step
    T: gl.constexpr = 8 * NT  # token columns
    # Words [R, CH, 4 (lane t of the quad), 4 (word i)]: 16 contiguous bytes per lane and row;
    # tensor row r = (2 tile + h) * 8W + 8w + g is weight row 16W tile + 16w + 8h + g of the program (the A
    # operand's order: warp w's MMA row tile `tile`, its rows g and g + 8).
    LW: gl.constexpr = gl.BlockedLayout([1, 1, 1, 4], [8, 1, 4, 1], [WARPS, 1, 1, 1], [3, 2, 1, 0])
    L3: gl.constexpr = gl.SliceLayout(3, LW)
    mma: gl.constexpr = gl.NVMMADistributedLayout(version=[2, 0], warps_per_cta=[WARPS, 1], instr_shape=[16, 8])
    dot_a: gl.constexpr = gl.DotOperandLayout(operand_index=0, parent=mma, k_width=2)
    dot_b: gl.constexpr = gl.DotOperandLayout(operand_index=1, parent=mma, k_width=2)

    pid_n = gl.program_id(0)
    pid_k = gl.program_id(1)
    k_first = pid_k * KS
    k_end = gl.minimum(k_first + KS, K)
    steps = gl.cdiv(k_end - k_first, BK)

    r = gl.arange(0, R, layout=gl.SliceLayout(1, gl.SliceLayout(2, L3)))
    rep = r // (8 * WARPS)
    rows = (pid_n * R + (rep // 2) * 16 * WARPS + (r % (8 * WARPS)) // 8 * 16 + (rep % 2) * 8 + r % 8) % N
    c3 = gl.arange(0, CH, layout=gl.SliceLayout(0, gl.SliceLayout(2, L3)))[None, :, None]
    t3 = gl.arange(0, 4, layout=gl.SliceLayout(0, gl.SliceLayout(1, L3)))[None, None, :]
    i4 = gl.arange(0, 4, layout=gl.SliceLayout(0, gl.SliceLayout(1, gl.SliceLayout(2, LW))))[None, None, None, :]
    quad = c3 * 16 + t3 * 4 + pid_k * (KS // 8)  # first word of each lane's 16 bytes, [1, CH, 4]
    w_lanes = w_ptr + rows[:, None, None, None] * stride_w + gl.expand_dims(quad, 3) + i4  # [R, CH, 4, 4]
    # scales: MX one e8m0 byte per lane (32 codes), NVFP4 the lane's two e4m3 bytes as one uint16
    if MX:
        s_lanes = s_ptr + rows[:, None, None] * stride_s + c3 * 4 + t3 + pid_k * (KS // 32)
    else:
        s_lanes = (s_ptr.to(gl.pointer_type(gl.uint16)) + rows[:, None, None] * (stride_s // 2) + c3 * 4 + t3
                   + pid_k * (KS // 32))
    kw_end = k_end // 8

    xs = gl.allocate_shared_memory(gl.bfloat16, [KS // BK, T, BK],
                                   gl.SwizzledSharedLayout(vec=8, per_phase=1, max_phase=8, order=[1, 0]))
    _stage_activation(x_ptr, xs, M, stride_x, k_first, k_end, BK, WARPS)
    words, raw = _load_step(w_lanes, s_lanes, quad, kw_end, 0, BK, EVEN_K)

    acc = gl.zeros([R, T], gl.float32, mma)
    for step in range(steps):
        # the next step's loads are issued before this step's decode (the last step re-reads its own)
        words_next, raw_next = _load_step(w_lanes, s_lanes, quad, kw_end, gl.minimum(step + 1, steps - 1), BK, EVEN_K)
        a = _decode(words, raw, scale_bias, R, CH, WARPS, MT, MX, dot_a)
        acc = mma_v2(a, xs.index(step).permute((1, 0)).load(dot_b), acc)
        words = words_next
        raw = raw_next

    rr = pid_n * R + gl.arange(0, R, layout=gl.SliceLayout(1, mma))
    tt = gl.arange(0, T, layout=gl.SliceLayout(0, mma))
    if SPLIT_K > 1:
        slab = gl.num_programs(0) * R * T
        offs = pid_n * R * T + gl.arange(0, R, layout=gl.SliceLayout(1, mma))[:, None] * T + tt[None, :]
        gl.store(ws_ptr + pid_k * slab + offs, acc)
        gl.thread_barrier()  # every thread's partial is written before the counter says so
        arrived = gl.atomic_add(cnt_ptr + pid_n, 1, sem="acq_rel", scope="gpu")
        if arrived == SPLIT_K - 1:
            total = gl.zeros([R, T], gl.float32, mma)
            for s in range(SPLIT_K):  # slice order: the sum does not depend on arrival order
                total += gl.load(ws_ptr + s * slab + offs, cache_modifier=".cg")
            gl.atomic_xchg(cnt_ptr + pid_n, 0, sem="relaxed", scope="gpu")
            _epilogue(total, c_ptr, post_ptr, bias_ptr, rr, tt, N, M, stride_c, HAS_BIAS)
    else:
        _epilogue(acc, c_ptr, post_ptr, bias_ptr, rr, tt, N, M, stride_c, HAS_BIAS)


@gluon.jit
def _load_step(w_lanes, s_lanes, quad, kw_end, step, BK: gl.constexpr, EVEN_K: gl.constexpr):
    """Step ``step``'s words ``[R, CH, 4, 4]`` and scale bytes ``[R, CH, 4]``, zeros past K (masks
    only when the slices do not divide K: they cost registers)."""
    if EVEN_K:
        words = gl.load(w_lanes + step * (BK // 8))
        raw = gl.load(s_lanes + step * (BK // 32))
    else:
        inside = quad + step * (BK // 8) < kw_end  # whole 16-byte lane reads: K is a multiple of 32
        words = gl.load(w_lanes + step * (BK // 8), mask=gl.expand_dims(inside, 3), other=0)
        raw = gl.load(s_lanes + step * (BK // 32), mask=inside, other=0)
    return words, raw


@gluon.jit
def _epilogue(acc, c_ptr, post_ptr, bias_ptr, rr, tt, N, M, stride_c, HAS_BIAS: gl.constexpr):
    out = acc * gl.load(post_ptr)
    if HAS_BIAS:
        out += gl.load(bias_ptr + rr, mask=rr < N, other=0.0)[:, None].to(gl.float32)
    gl.store(c_ptr + tt[None, :] * stride_c + rr[:, None], out.to(c_ptr.dtype.element_ty),
             mask=(rr[:, None] < N) & (tt[None, :] < M))


@dataclass(frozen=True)
class E2m1MmaConfig:
    """``warps`` x ``m_tiles`` x 16 weight rows per program (each warp ``m_tiles`` MMA row tiles
    sharing one read of the activation), ``chunks`` x 128 codes per row per step, ``split_k`` slices of K."""

    warps: int = 4
    chunks: int = 2
    split_k: int = 1
    m_tiles: int = 1

    @property
    def rows(self) -> int:
        return 16 * self.warps * self.m_tiles

    def key(self) -> str:
        return f"e2m1mma w{self.warps}c{self.chunks}s{self.split_k}" + (f"t{self.m_tiles}" if self.m_tiles > 1 else "")


def slice_extent(k: int, config: E2m1MmaConfig) -> int:
    """Codes of K per split-K slice: whole steps, the last slice possibly short."""
    return round_up(triton.cdiv(k, config.split_k), CHUNK.value * config.chunks)


def token_tiles(m: int) -> int:
    """MMA column tiles of 8 tokens for ``m`` tokens: 1, 2, 4 or 8."""
    tiles = 1
    while tiles * 8 < m:
        tiles *= 2
    return tiles


def shared_memory_bytes(k: int, m: int, config: E2m1MmaConfig) -> int:
    """Shared memory of one program: the staged activation slice."""
    return slice_extent(k, config) * 8 * token_tiles(m) * 2


def fits_shared_memory(k: int, m: int, config: E2m1MmaConfig) -> bool:
    return shared_memory_bytes(k, m, config) <= SHARED_MEMORY_BYTES


def e2m1_mma(x: torch.Tensor, w: torch.Tensor, scales: torch.Tensor, post_scale: torch.Tensor, *, mx: bool,
             config: E2m1MmaConfig, scale_bias: int = 0, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``[M, N]`` in x's dtype: ``x [M, K]`` (M <= 64) times the dequantized e2m1 weight, times ``post_scale``.

    Args:
        x: activations, bf16/fp16/fp32, K contiguous (multiplied in bf16).
        w: packed e2m1 ``uint8 [N, K/2]``, the canonical layout, rows contiguous and 16-byte aligned.
        scales: NVFP4 e4m3 ``[N, K/16]`` (as ``float8_e4m3fn`` or its bytes) or MXFP4 e8m0 uint8
            ``[N, K/32]``, rows contiguous.
        post_scale: fp32 one-element tensor (the layer's :class:`WeightOnlyLayout` ``post_scale``).
        mx: MXFP4 (e8m0 per 32) rather than NVFP4 (e4m3 per 16).
        config: launch config; its staged activation slice must fit (:func:`fits_shared_memory`).
        scale_bias: added to e8m0 exponents (MXFP4; the layout's ``scale_bias``).
        bias: optional ``[N]``.

    Raises:
        ValueError: more than 64 tokens, K not a multiple of 32, weight rows not 16-byte aligned,
            or a config whose shared memory does not fit.
    """
    m, k = x.shape
    n = w.shape[0]
    if m > MAX_TOKENS or k % 32 or w.shape[1] * 2 != k or w.stride(1) != 1 or w.stride(0) % 16 \
            or w.data_ptr() % 16 or scales.stride(1) != 1:
        raise ValueError(f"e2m1_mma takes at most {MAX_TOKENS} tokens, K % 32 == 0 and 16-byte aligned contiguous "
                         f"weight rows; got x {tuple(x.shape)}, w {tuple(w.shape)} strides {w.stride()}")
    if not fits_shared_memory(k, m, config):
        raise ValueError(f"e2m1_mma {config.key()} needs {shared_memory_bytes(k, m, config)} bytes of shared memory "
                         f"for M={m}, K={k}; the limit is {SHARED_MEMORY_BYTES}")
    tiles = token_tiles(m)
    ks = slice_extent(k, config)
    split = triton.cdiv(k, ks)
    grid = (triton.cdiv(n, config.rows), split)
    c = torch.empty((m, n), device=x.device, dtype=x.dtype)
    if split > 1:
        ws, counters = split_k_buffers(x.device, split, grid[0] * config.rows * 8 * tiles, grid[0])
    else:
        ws = counters = post_scale
    if scales.dtype == torch.float8_e4m3fn:
        scales = scales.view(torch.uint8)
    _e2m1_mma_kernel[grid](
        w.view(torch.int32), scales, x, c, post_scale, bias if bias is not None else post_scale, ws, counters,
        n, m, k, w.stride(0) // 4, scales.stride(0), x.stride(0), c.stride(0), scale_bias,
        MX=mx, HAS_BIAS=bias is not None, SPLIT_K=split, WARPS=config.warps, CH=config.chunks, NT=tiles,
        KS=ks, EVEN_K=k % ks == 0, MT=config.m_tiles, num_warps=config.warps,
    )
    return c



def pick_e2m1_mma_config(n: int, k: int, m: int, *, sms: int = SM_COUNT_HOPPER) -> E2m1MmaConfig:
    """The launch config for an ``[m, k] x [n, k]^T`` product: :func:`one_row_tile_config`, except at
    9..16 tokens, where each warp takes two MMA row tiles (``m_tiles=2``, 128 rows per program, the
    staged activation read once for 32 weight rows) if that grid keeps 2 programs per SM, with twice
    the slices where the partials' cap had held them below the staging target. Measured on an H200
    against the one-tile pick (``bench/e2m1_mtiles_ab.py``, ``bench/results/h200_issue4_e2m1_mtiles.txt``,
    16 tokens): 4096x14336 25.1 -> 19.7 us, 28672x4096 40.1 -> 37.4; 14336x4096 within 4% either way;
    4096x4096 keeps one tile (its two-tile grid: 256 programs)."""
    config = one_row_tile_config(n, k, m, sms=sms)
    if token_tiles(m) != 2:
        return config
    split = config.split_k
    if _staging_target_split(k, m) > split and k // (2 * split) >= CHUNK.value * config.chunks:
        split *= 2
    two = E2m1MmaConfig(config.warps, config.chunks, split, m_tiles=2)
    if triton.cdiv(n, two.rows) * two.split_k >= 2 * sms and fits_shared_memory(k, m, two):
        return two
    return config


def _staging_target_split(k: int, m: int) -> int:
    """Slices of K for each program to stage ~``STAGED_ACTIVATION_BYTES`` of bf16 activation
    (8 token columns per MMA column tile)."""
    return triton.cdiv(k, STAGED_ACTIVATION_BYTES // (2 * 8 * token_tiles(m)))


def one_row_tile_config(n: int, k: int, m: int, *, sms: int = SM_COUNT_HOPPER) -> E2m1MmaConfig:
    """The one-row-tile config from the H200 sweep (``bench/e2m1_mma_sweep.py``,
    ``bench/results/h200_issue4.md``, 2026-12-01): 4 warps (64 weight rows), 2 chunks per step where K
    allows and up to 16 tokens (1 chunk above: registers). K is split so that each program stages
    ~16 KB of activation (1024 codes at 8 token columns, 512 at 16), at most ``STAGED_SPLIT_BYTES`` of
    fp32 partials for the last slice to sum, then split further, keeping two steps per slice, while
    the grid has fewer than 4 programs per SM. At M = 1, 4 and 16 on the issue's four shapes this was
    the fastest 4-warp config swept, or within 3% of it (8 warps were faster at 4096x14336 M=16 only,
    by 7%).

    Raises:
        ValueError: no slice of K fits the staged activation in shared memory.
    """
    tiles = token_tiles(m)
    tokens = 8 * tiles
    chunks = 2 if k % (2 * CHUNK.value) == 0 and tiles <= 2 else 1
    step = CHUNK.value * chunks
    programs = triton.cdiv(n, 64)
    most = max(1, STAGED_SPLIT_BYTES // (64 * tokens * 4))
    split = min(_staging_target_split(k, m), most)
    while programs * split < 4 * sms and split * 2 <= most and k // (2 * split) >= 2 * step:
        split *= 2
    while not fits_shared_memory(k, m, E2m1MmaConfig(4, chunks, split)) and k // (2 * split) >= step:
        split *= 2
    config = E2m1MmaConfig(4, chunks, split)
    if not fits_shared_memory(k, m, config):
        raise ValueError(f"no e2m1_mma config stages {m} tokens of K={k} in {SHARED_MEMORY_BYTES} bytes")
    return config


__all__ = ["E2m1MmaConfig", "e2m1_mma", "decode_ptx", "slice_extent", "token_tiles", "fits_shared_memory",
           "shared_memory_bytes", "pick_e2m1_mma_config", "one_row_tile_config", "CHUNK", "MAX_TOKENS"]
