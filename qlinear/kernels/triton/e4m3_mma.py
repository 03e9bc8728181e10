"""Decode GEMM for e4m3 weights (MXFP8, per-channel FP8) in Gluon: each 32-bit load of the weight
becomes ``mma.sync`` A fragments in registers, as :mod:`.e2m1_mma` does for 4-bit codes.

``C [M, N] = X [M, K] @ dequant(W)^T`` for M up to 64 tokens, computed transposed (weight rows are
the MMA's M side, the tokens its N side, 8 per bf16 ``m16n8k16``), from the canonical layout
``uint8 [N, K]`` (e4m3 bytes, K contiguous): nothing is repacked.

* a lane quad (lanes ``4g .. 4g+3``) reads 64 contiguous bytes of weight rows ``g`` and ``g+8``,
  16 bytes per lane: 64 codes per row per *chunk*;
* K is permuted within a chunk so that one 32-bit word (bytes ``b0..b3``) is one MMA K step of
  its row: ``(b0, b2)`` and ``(b1, b3)`` become two bf16x2 registers. Each byte's sign goes to
  bit 15 of its half and its 7 exponent and mantissa bits to bits 10..4: the bf16 pattern of
  ``e4m3 * 2**-120``, subnormals included (both formats' subnormals line up at that factor).
  9 instructions per word with the scale multiply (sm_90 SASS), ~2.3 per byte;
* one packed bf16 multiply per register applies ``2**120`` times the group's factor: the MX
  scale ``2**(e8m0 + scale_bias - 127)``, or 1 for per-channel weights (their fp32 scale
  multiplies the output rows in the epilogue). The products are exact bf16 values: the layer's
  ``scale_bias`` keeps them within range (:func:`~..triton_weight_only.weight_only_layout`).
* the activation is staged once per program in shared memory in the permuted K order and read
  with ``ldmatrix`` as the MMA's B operand. The tensor cores sum in fp32.

K permutation within a 64-code chunk: logical ``k = 16i + 8b + 2t + v`` (``t`` the lane in its
quad, ``v`` the half of a register, ``b`` the MMA's ``k+8`` register, ``i`` the MMA K step) holds
the code at ``16t + 4i + 2v + b`` (lane ``t``'s word ``i``, byte ``2v + b``).

Values equal :func:`.dequant_gemm.dequant_gemm`'s in-loop values (``e4m3 * 2**(e + scale_bias -
127)``), so the layer's ``post_scale`` applies as is. Split-K slices are reduced in the same launch
(:func:`.e2m1_mma._finish`). Any sm_80+ GPU (``mma.sync`` bf16, ``fma.rn.bf16x2``): the e4m3 bytes
are decoded by integer instructions. Gluon has no CPU interpreter: the CPU tests run
:func:`decode_ptx` through a small PTX interpreter; the GPU tests check the kernel against the
float64 reference.
"""
from __future__ import annotations

import torch
import triton
from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.language.nvidia.ampere import mma_v2

from ..padding import round_up
from .configs import SM_COUNT_HOPPER
from .e2m1_mma import MAX_TOKENS, SHARED_MEMORY_BYTES, E2m1MmaConfig, _finish, token_tiles
from .split_k import split_k_buffers

CHUNK = gl.constexpr(64)  # codes of one weight row a lane quad reads per chunk (4 lanes x 16 bytes)
E4M3_BIT_EXPONENT = gl.constexpr(120)  # the byte's bits placed in a bf16 pattern are worth e4m3 * 2**-120
BF16_MAX_EXPONENT_FIELD = gl.constexpr(254)
STAGED_ACTIVATION_BYTES = 16 * 1024  # the picker's target slice (as :mod:`.e2m1_mma`)
STAGED_SPLIT_BYTES = 32 * 1024


def decode_ptx() -> str:
    """The inline PTX of one lane's 4 words (16 e4m3 codes of one row) to 8 scaled bf16x2 registers.

    Operands: ``$0..$3`` bytes ``(b0, b2)`` of words 0..3, ``$4..$7`` bytes ``(b1, b3)``; ``$8..$15``
    the 4 words, each twice; ``$16..$23`` the bf16x2 factor (``2**120`` times the group scale), 8 copies.
    """
    lines = [".reg .b32 a, b, z;", "mov.b32 z, 0x80008000;"]  # -0.0: fma as a multiply
    for i in range(4):
        word = f"${8 + 2 * i}"
        lines += [  # (b0, b2): sign bits 7 / 23 to 15 / 31, the rest from bits 0..6 / 16..22 to 4..10 / 20..26
            f"shl.b32 a, {word}, 4; shl.b32 b, {word}, 8; and.b32 a, a, 0x07F007F0; and.b32 b, b, 0x80008000;",
            f"or.b32 a, a, b; fma.rn.bf16x2 ${i}, a, $16, z;",
            # (b1, b3): signs already at 15 / 31, the rest from bits 8..14 / 24..30
            f"shr.b32 a, {word}, 4; and.b32 b, {word}, 0x80008000; and.b32 a, a, 0x07F007F0;",
            f"or.b32 a, a, b; fma.rn.bf16x2 ${4 + i}, a, $16, z;",
        ]
    return "{\n" + "\n".join(lines) + "\n}"


_DECODE_PTX = gl.constexpr(decode_ptx())
_CONSTRAINTS = gl.constexpr(",".join(["=r"] * 8 + ["r"] * 16))


@gluon.jit
def _stage_activation(x_ptr, xs, M, stride_x, k_first, k_end, BK: gl.constexpr, WARPS: gl.constexpr):
    """Copy ``x[:, k_first:k_end]`` into shared memory ``xs [steps, T, BK]`` in the permuted K order,
    zeros past M and K. A thread loads, 16 bytes each, the four 8-code runs ``16t + 8j .. 16t + 8j + 7``
    (t = 0..3) of one chunk and token: together exactly logical positions ``32j .. 32j + 31``."""
    T: gl.constexpr = xs.shape[1]
    C: gl.constexpr = BK // 64
    LC: gl.constexpr = 2 if C >= 2 else 1
    WC: gl.constexpr = WARPS if C // LC >= WARPS else C // LC
    WT: gl.constexpr = WARPS // WC
    L5: gl.constexpr = gl.BlockedLayout([1, 1, 4, 1, 8], [16 // LC, LC, 1, 2, 1], [WT, WC, 1, 1, 1], [4, 3, 2, 1, 0])
    n5 = gl.arange(0, T, layout=gl.SliceLayout(1, gl.SliceLayout(2, gl.SliceLayout(3, gl.SliceLayout(4, L5)))))
    c5 = gl.arange(0, C, layout=gl.SliceLayout(0, gl.SliceLayout(2, gl.SliceLayout(3, gl.SliceLayout(4, L5)))))
    t5 = gl.arange(0, 4, layout=gl.SliceLayout(0, gl.SliceLayout(1, gl.SliceLayout(3, gl.SliceLayout(4, L5)))))
    j5 = gl.arange(0, 2, layout=gl.SliceLayout(0, gl.SliceLayout(1, gl.SliceLayout(2, gl.SliceLayout(4, L5)))))
    o5 = gl.arange(0, 8, layout=gl.SliceLayout(0, gl.SliceLayout(1, gl.SliceLayout(2, gl.SliceLayout(3, L5)))))
    tok = n5[:, None, None, None, None]
    pos = (c5[None, :, None, None, None] * 64 + t5[None, None, :, None, None] * 16
           + j5[None, None, None, :, None] * 8 + o5[None, None, None, None, :])
    for step in range(xs.shape[0]):
        k = k_first + step * BK + pos
        v = gl.load(x_ptr + tok * stride_x + k, mask=(tok < M) & (k < k_end), other=0.0).to(gl.bfloat16)
        v = gl.reshape(v, [T, C, 4, 2, 2, 2, 2])  # [token, c, t, j, i', v, b]: code 16t + 4(2j + i') + 2v + b
        v = gl.permute(v, [0, 1, 3, 4, 6, 2, 5])  # [token, c, j, i', b, t, v]: logical 16(2j + i') + 8b + 2t + v
        xs.index(step).store(gl.reshape(v, [T, BK]))
    gl.thread_barrier()


@gluon.jit
def _decode(words, factors, R: gl.constexpr, CH: gl.constexpr, WARPS: gl.constexpr, layout: gl.constexpr):
    """Words ``[R, CH, 4, 4]`` and their bf16x2 factors ``[R, CH, 4]`` -> the MMA's A operand ``[R, CH * 64]`` bf16."""
    f = gl.expand_dims(factors, 3).broadcast_to([R, CH, 4, 4])
    o0, o1 = gl.inline_asm_elementwise(_DECODE_PTX, _CONSTRAINTS, [gl.join(words, words), gl.join(f, f)],
                                       dtype=(gl.bfloat16, gl.bfloat16), is_pure=True, pack=8)
    # o_b[row, c, t, i, v] holds byte 2v + b of word i
    a = gl.join(o0, o1)  # [R, CH, t, i, v, b]
    a = gl.reshape(a, [2, WARPS, 8, CH, 4, 4, 2, 2])  # rows: tensor row = rep * 8W + 8w + g
    a = gl.permute(a, [1, 0, 2, 3, 5, 7, 4, 6])  # [w, rep, g, c, i, b, t, v]
    return gl.convert_layout(gl.reshape(a, [R, CH * 64]), layout, assert_trivial=True)


@gluon.jit
def _e4m3_mma_kernel(w_ptr, s_ptr, x_ptr, c_ptr, post_ptr, chan_ptr, bias_ptr, ws_ptr, cnt_ptr,
                     N, M, K, stride_w, stride_s, stride_x, stride_c, scale_bias,
                     MX: gl.constexpr, HAS_BIAS: gl.constexpr, SPLIT_K: gl.constexpr, WARPS: gl.constexpr,
                     CH: gl.constexpr, NT: gl.constexpr, KS: gl.constexpr, EVEN_K: gl.constexpr):
    R: gl.constexpr = 16 * WARPS  # weight rows per program
    BK: gl.constexpr = CHUNK * CH  # codes per row per step
    T: gl.constexpr = 8 * NT  # token columns
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
    rows = (pid_n * R + (r % (8 * WARPS)) // 8 * 16 + (r // (8 * WARPS)) * 8 + r % 8) % N
    c3 = gl.arange(0, CH, layout=gl.SliceLayout(0, gl.SliceLayout(2, L3)))[None, :, None]
    t3 = gl.arange(0, 4, layout=gl.SliceLayout(0, gl.SliceLayout(1, L3)))[None, None, :]
    i4 = gl.arange(0, 4, layout=gl.SliceLayout(0, gl.SliceLayout(1, gl.SliceLayout(2, LW))))[None, None, None, :]
    quad = c3 * 16 + t3 * 4 + pid_k * (KS // 4)  # first word of each lane's 16 bytes, [1, CH, 4]
    w_lanes = w_ptr + rows[:, None, None, None] * stride_w + gl.expand_dims(quad, 3) + i4  # [R, CH, 4, 4]
    s_lanes = s_ptr + rows[:, None, None] * stride_s + c3 * 2 + t3 // 2 + pid_k * (KS // 32)  # MX: a byte per lane
    kw_end = k_end // 4

    xs = gl.allocate_shared_memory(gl.bfloat16, [KS // BK, T, BK],
                                   gl.SwizzledSharedLayout(vec=8, per_phase=1, max_phase=8, order=[1, 0]))
    _stage_activation(x_ptr, xs, M, stride_x, k_first, k_end, BK, WARPS)
    words, factors = _load_step(w_lanes, s_lanes, quad, kw_end, 0, scale_bias, BK, MX, EVEN_K, L3)

    acc = gl.zeros([R, T], gl.float32, mma)
    for step in range(steps):
        # the next step's loads are issued before this step's decode (the last step re-reads its own)
        words_next, factors_next = _load_step(w_lanes, s_lanes, quad, kw_end, gl.minimum(step + 1, steps - 1),
                                              scale_bias, BK, MX, EVEN_K, L3)
        a = _decode(words, factors, R, CH, WARPS, dot_a)
        acc = mma_v2(a, xs.index(step).permute((1, 0)).load(dot_b), acc)
        words = words_next
        factors = factors_next
    _finish(acc, c_ptr, post_ptr, chan_ptr, bias_ptr, ws_ptr, cnt_ptr, N, M, stride_c, pid_n, pid_k,
            R, T, mma, SPLIT_K, not MX, HAS_BIAS)


@gluon.jit
def _load_step(w_lanes, s_lanes, quad, kw_end, step, scale_bias, BK: gl.constexpr, MX: gl.constexpr,
               EVEN_K: gl.constexpr, L3: gl.constexpr):
    """Step ``step``'s words ``[R, CH, 4, 4]`` and bf16x2 factors ``[R, CH, 4]``, zeros past K (masks
    only when the slices do not divide K: they cost registers)."""
    if EVEN_K:
        words = gl.load(w_lanes + step * (BK // 4))
    else:
        inside = quad + step * (BK // 4) < kw_end  # whole 16-byte lane reads: K is a multiple of 16
        words = gl.load(w_lanes + step * (BK // 4), mask=gl.expand_dims(inside, 3), other=0)
    if MX:
        if EVEN_K:
            raw = gl.load(s_lanes + step * (BK // 32)).to(gl.int32)
        else:
            raw = gl.load(s_lanes + step * (BK // 32), mask=inside, other=0).to(gl.int32)
        # 2**120 * 2**(e8m0 + scale_bias - 127) as a bf16 exponent field; the clamps only touch all-zero groups
        field = gl.minimum(gl.maximum(raw + (scale_bias + E4M3_BIT_EXPONENT), 0), BF16_MAX_EXPONENT_FIELD)
        factors = field * 0x00800080
    else:
        factors = gl.full(quad.shape, (127 + E4M3_BIT_EXPONENT) * 0x00800080, gl.int32, L3).broadcast_to(
            [w_lanes.shape[0], w_lanes.shape[1], 4])
    return words, factors


def slice_extent(k: int, config: E2m1MmaConfig) -> int:
    """Codes of K per split-K slice: whole steps, the last slice possibly short."""
    return round_up(triton.cdiv(k, config.split_k), CHUNK.value * config.chunks)


def shared_memory_bytes(k: int, m: int, config: E2m1MmaConfig) -> int:
    """Shared memory of one program: the staged activation slice."""
    return slice_extent(k, config) * 8 * token_tiles(m) * 2


def fits_shared_memory(k: int, m: int, config: E2m1MmaConfig) -> bool:
    return shared_memory_bytes(k, m, config) <= SHARED_MEMORY_BYTES


def e4m3_mma(x: torch.Tensor, w: torch.Tensor, post_scale: torch.Tensor, *, config: E2m1MmaConfig,
             mx_scales: torch.Tensor | None = None, scale_bias: int = 0, channel_scale: torch.Tensor | None = None,
             bias: torch.Tensor | None = None) -> torch.Tensor:
    """``[M, N]`` in x's dtype: ``x [M, K]`` (M <= 64) times the dequantized e4m3 weight, times ``post_scale``.

    Args:
        x: activations, bf16/fp16/fp32, K contiguous (multiplied in bf16).
        w: e4m3 ``[N, K]`` (``float8_e4m3fn`` or its bytes), rows contiguous and 16-byte aligned.
        post_scale: fp32 one-element tensor (the layer's :class:`WeightOnlyLayout` ``post_scale``).
        config: launch config (``chunks`` of 64 codes); its staged activation slice must fit
            (:func:`fits_shared_memory`).
        mx_scales: MXFP8 e8m0 ``uint8 [N, K/32]``, rows contiguous; None for per-channel weights.
        scale_bias: added to e8m0 exponents (the layout's ``scale_bias``).
        channel_scale: per-channel fp32 ``[N]`` (or ``[N, 1]``) weight scales, with ``mx_scales`` None.
        bias: optional ``[N]``.

    Raises:
        ValueError: more than 64 tokens, K not a multiple of 32 (MX) or 16, weight rows not 16-byte
            aligned, neither or both kinds of scale, or a config whose shared memory does not fit.
    """
    m, k = x.shape
    n = w.shape[0]
    if (mx_scales is None) == (channel_scale is None):
        raise ValueError("e4m3_mma takes either mx_scales (MXFP8) or channel_scale (per-channel FP8)")
    if m > MAX_TOKENS or k % (32 if mx_scales is not None else 16) or w.shape[1] != k or w.stride(1) != 1 \
            or w.stride(0) % 16 or w.data_ptr() % 16 or (mx_scales is not None and mx_scales.stride(1) != 1):
        raise ValueError(f"e4m3_mma takes at most {MAX_TOKENS} tokens, K % 32 == 0 (MX) or % 16, and 16-byte "
                         f"aligned contiguous weight rows; got x {tuple(x.shape)}, w {tuple(w.shape)} "
                         f"strides {w.stride()}")
    if not fits_shared_memory(k, m, config):
        raise ValueError(f"e4m3_mma {config.key()} needs {shared_memory_bytes(k, m, config)} bytes of shared memory "
                         f"for M={m}, K={k}; the limit is {SHARED_MEMORY_BYTES}")
    tiles = token_tiles(m)
    ks = slice_extent(k, config)
    split = triton.cdiv(k, ks)
    grid = (triton.cdiv(n, 16 * config.warps), split)
    c = torch.empty((m, n), device=x.device, dtype=x.dtype)
    if split > 1:
        ws, counters = split_k_buffers(x.device, split, grid[0] * 16 * config.warps * 8 * tiles, grid[0])
    else:
        ws = counters = post_scale
    mx = mx_scales is not None
    scales = mx_scales if mx else w.view(torch.uint8)  # unread without MX: any tensor
    _e4m3_mma_kernel[grid](
        w.view(torch.uint8).view(torch.int32), scales, x, c, post_scale,
        post_scale if mx else channel_scale.reshape(-1), bias if bias is not None else post_scale, ws, counters,
        n, m, k, w.stride(0) // 4, scales.stride(0), x.stride(0), c.stride(0), scale_bias,
        MX=mx, HAS_BIAS=bias is not None, SPLIT_K=split, WARPS=config.warps, CH=config.chunks, NT=tiles,
        KS=ks, EVEN_K=k % ks == 0, num_warps=config.warps,
    )
    return c


def pick_e4m3_mma_config(n: int, k: int, m: int, *, sms: int = SM_COUNT_HOPPER) -> E2m1MmaConfig:
    """The launch config for an ``[m, k] x [n, k]^T`` product, by :func:`.e2m1_mma.pick_e2m1_mma_config`'s
    rule (4 warps, ~16 KB of staged activation per program, at least 4 programs per SM), with the
    e4m3 chunk of 64 codes: 4 chunks per step where K allows and up to 16 tokens (2 above)."""
    tiles = token_tiles(m)
    tokens = 8 * tiles
    chunks = 2 if k % (2 * CHUNK.value) == 0 and tiles <= 2 else 1
    step = CHUNK.value * chunks
    programs = triton.cdiv(n, 64)
    most = max(1, STAGED_SPLIT_BYTES // (64 * tokens * 4))
    split = min(triton.cdiv(k, STAGED_ACTIVATION_BYTES // (2 * tokens)), most)
    while programs * split < 4 * sms and split * 2 <= most and k // (2 * split) >= 2 * step:
        split *= 2
    while not fits_shared_memory(k, m, E2m1MmaConfig(4, chunks, split)) and k // (2 * split) >= step:
        split *= 2
    config = E2m1MmaConfig(4, chunks, split)
    if not fits_shared_memory(k, m, config):
        raise ValueError(f"no e4m3_mma config stages {m} tokens of K={k} in {SHARED_MEMORY_BYTES} bytes")
    return config


__all__ = ["e4m3_mma", "decode_ptx", "pick_e4m3_mma_config", "slice_extent", "fits_shared_memory",
           "shared_memory_bytes", "CHUNK"]
