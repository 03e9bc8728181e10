"""EXPERIMENT (not kept): decode GEMM for e2m1 weights (NVFP4, MXFP4) on f16 MMAs with the group
scales applied after the MMA, in Gluon, for one token to a few. Measured against the shipped
:mod:`.e2m1_mma` in ``bench/results/h200_issue4_f16_mma_tried.txt``: at best equal, so not kept.

``C [M, N] = X [M, K] @ dequant(W)^T`` from the canonical packed layout (``uint8 [N, K/2]``).

Why: :mod:`.e2m1_mma` spends 17 instructions per 8 codes making scaled bf16 values. Here a code
becomes the f16 pattern of ``e2m1 * 2**-14`` (a byte ``s000 eem0`` over a zero byte: two shifts
and masks per nibble half, then one ``prmt`` per register: 11 instructions per 8 codes) and no
scale is applied per element: the group scales multiply each MMA chain's fp32 sums.

Each lane of a quad holds whole scale groups (MXFP4: one 32-code group per chunk; NVFP4: two), so
one MMA over the quad's words would mix four groups. The MMA's columns keep them apart: column
``8 tile + 2q + l`` holds token ``2 tile + l``'s activation at lane ``q``'s K positions only
(zeros elsewhere), so the lane owning the group receives its sums in its own accumulator
registers and multiplies them by its own scale. Two tokens per n8 column tile.

The activation is staged once per program as f16 scaled by a power of two ``a`` per token and
slice (``max |x| a`` in ``[2**14, 2**15)``): exact for bf16 elements down to ``2**-17 / a``.
K permutation within a 128-code chunk (MXFP4 group = chunk): the K index
``64u + 32i + 16h + 8e + 2q + l'`` holds code ``32q + 8(2u + i) + 4h + 2l' + e`` (NVFP4: group
``(chunk, u)``, index ``32i + 16h + 8e + 2q + l'``).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.language.nvidia.ampere import async_copy, mma_v2

from ..padding import round_up
from .configs import SM_COUNT_HOPPER
from .split_k import split_k_buffers

CHUNK = 128  # codes of one weight row a lane quad reads per chunk (4 lanes x 16 bytes)
MAX_TOKENS = 8  # two tokens per n8 column tile of the MMA, up to 4 tiles
SHARED_MEMORY_BYTES = 64 * 1024  # the staged activation slice of one program
SLICE_CODES = 1024  # the picker's K slice per program
ACTIVATION_FIELD = gl.constexpr(268)  # a = 2**(268 - E - 127) puts max |x| * a in [2**14, 2**15)
ACTIVATION_SCALE_LIMIT = gl.constexpr(100)  # a = 2**e with |e| <= 100, so 1 / a is an fp32 normal
MX_F32_OFFSET = gl.constexpr(47)  # MXFP4 fp32 factor = 2**(e8m0 + scale_bias - 47 - 127), at most 2**80
# epilogue constants bringing in-loop sums to dequant_gemm's in-loop values (module docstring)
NVFP4_EPILOGUE = 2.0**6
MXFP4_EPILOGUE = 2.0**(MX_F32_OFFSET.value - 112)


def decode_ptx() -> str:
    """The inline PTX of one 32-bit word of 4 packed bytes (8 e2m1 codes, ``$4``; ``$5..$7`` are
    copies, as the elementwise form wants as many inputs as outputs) to four f16x2
    registers, each value ``e2m1 * 2**-14`` exactly: ``$0, $1`` the low nibbles (codes 0, 2 | 4, 6),
    ``$2, $3`` the high nibbles (codes 1, 3 | 5, 7).

    A code's f16 pattern is its high byte ``s000 eem0`` over a zero low byte: first one byte per
    code with the sign at bit 7 and the exponent and mantissa at bits 3..1 (two shifts and masks
    per nibble half), then ``prmt`` places two bytes per register."""
    return ("{\n.reg .b32 m, s, l, h;\n"
            "shl.b32 m, $4, 1; and.b32 m, m, 0x0E0E0E0E; shl.b32 s, $4, 4; and.b32 s, s, 0x80808080; "
            "or.b32 l, m, s;\n"
            "shr.b32 m, $4, 3; and.b32 m, m, 0x0E0E0E0E; and.b32 s, $4, 0x80808080; or.b32 h, m, s;\n"
            "prmt.b32 $0, l, 0, 0x1404; prmt.b32 $1, l, 0, 0x3424; "
            "prmt.b32 $2, h, 0, 0x1404; prmt.b32 $3, h, 0, 0x3424;\n}")


def nvfp4_scale_ptx() -> str:
    """The two e4m3 scale bytes of ``$2`` (a uint16 as int32) to fp32 ``$0`` (low byte), ``$1`` (high):
    ``(b & 0x7f) << 20`` is the fp32 pattern of ``s * 2**-120`` (e4m3 subnormals included), then one
    exact multiply by ``2**120``, not flushed to zero."""
    one = "and.b32 t, {src}, 0x7F; shl.b32 t, t, 20; mul.rn.f32 {dst}, t, 0f7B800000;\n"
    return ("{\n.reg .b32 t, u;\n" + one.format(src="$2", dst="$0") + "shr.b32 u, $2, 8;\n"
            + one.format(src="u", dst="$1") + "}")


_DECODE_PTX = gl.constexpr(decode_ptx())
_NVFP4_SCALE_PTX = gl.constexpr(nvfp4_scale_ptx())


@gluon.jit
def _activation_field(x_ptr, M, stride_x, k_first, k_end, steps, TP: gl.constexpr, BK: gl.constexpr,
                      LX: gl.constexpr):
    """Per token ``[TP]``: the fp32 exponent field of ``a = 2**e``, the power of two that puts
    ``max |x[t, k_first:k_end]| * a`` in ``[2**14, 2**15)`` (f16's largest binade below 2**16),
    ``|e| <= 100``."""
    tok = gl.arange(0, TP, layout=gl.SliceLayout(1, LX))[:, None]
    kk = gl.arange(0, BK, layout=gl.SliceLayout(0, LX))[None, :]
    amax = gl.zeros([TP], gl.float32, gl.SliceLayout(1, LX))
    for step in range(steps):
        k = k_first + step * BK + kk
        v = gl.load(x_ptr + tok * stride_x + k, mask=(tok < M) & (k < k_end), other=0.0).to(gl.float32)
        amax = gl.maximum(amax, gl.max(gl.abs(v), axis=1))
    field = ACTIVATION_FIELD - ((amax.to(gl.int32, bitcast=True) >> 23) & 0xFF)
    return gl.minimum(gl.maximum(field, 127 - ACTIVATION_SCALE_LIMIT), 127 + ACTIVATION_SCALE_LIMIT)


@gluon.constexpr_function
def _staging_layout(MX, WARPS):
    """``[group b, column n, segment s, slot q']`` words: the 4 slots in-thread (one 16-byte store),
    the 8 columns and 4 segments over a warp's lanes, warps over segments (MX: 16 per group) or
    over groups and segments (NVFP4: 8 per group), so no two threads write one segment."""
    warps = [1, 1, WARPS, 1] if MX else [WARPS // 2, 1, 2, 1]
    return gl.BlockedLayout([1, 1, 1, 4], [1, 8, 4, 1], warps, [3, 2, 1, 0])


@gluon.jit
def _stage_activation(x_ptr, xs, a, M, stride_x, k_first, k_end, NT: gl.constexpr, CH: gl.constexpr,
                      MX: gl.constexpr, WARPS: gl.constexpr, EVEN_K: gl.constexpr):
    """Stage ``x[:, k_first:k_end] * a`` (f16) as the MMA's B operand, ``xs`` int32 words
    ``[steps, G, 8 NT, KG / 2]`` (f16 pairs): G scale groups per lane and step (MX: one per chunk,
    KG = 128; NVFP4: two, KG = 64), column ``8 tile + 2q + l`` (token ``2 tile + l``, lane q's
    group), zero unless the K index belongs to lane q. A column's 8-wide K segment holds four
    f16 pairs, one per lane slot ``q'``, and only slot ``q' = q`` is the activation: a thread
    loads that pair, packs it, and writes the segment as one 16-byte store with the other three
    words masked to zero. ``a`` is ``[8 NT]``, per column."""
    BK: gl.constexpr = 128 * CH
    G: gl.constexpr = CH if MX else 2 * CH
    KG: gl.constexpr = BK // G
    L4: gl.constexpr = _staging_layout(MX, WARPS)
    LP: gl.constexpr = gl.SliceLayout(3, L4)
    bb = gl.arange(0, G, layout=gl.SliceLayout(1, gl.SliceLayout(2, LP)))[:, None, None]
    n = gl.arange(0, 8 * NT, layout=gl.SliceLayout(0, gl.SliceLayout(2, LP)))[None, :, None]
    seg = gl.arange(0, KG // 8, layout=gl.SliceLayout(0, gl.SliceLayout(1, LP)))[None, None, :]
    # segment s of group b: K index 8s + 2q + l'; MX s = 8u + 4i + 2h + e (b the chunk), NVFP4
    # s = 4i + 2h + e (b = 2 chunk + u); it holds code 32q + 8(2u + i) + 4h + 2l' + e of the chunk
    if MX:
        chunk = bb
        word = 2 * (seg // 8) + (seg // 4) % 2
    else:
        chunk = bb // 2
        word = 2 * (bb % 2) + (seg // 4) % 2
    lane = (n % 8) // 2
    tok = 2 * (n // 8) + n % 2
    code = chunk * 128 + 32 * lane + 8 * word + 4 * ((seg // 2) % 2) + seg % 2  # l' = 0; l' = 1 is code + 2
    slot = gl.arange(0, 4, layout=gl.SliceLayout(0, gl.SliceLayout(1, gl.SliceLayout(2, L4))))
    keep = gl.where(gl.expand_dims(lane, 3) == slot[None, None, None, :], -1, 0)  # [1, 8 NT, 1, 4] int32 masks
    base = x_ptr + tok * stride_x + k_first + code
    live = tok < M
    for step in range(xs.shape[0]):
        if EVEN_K:
            v0 = gl.load(base + step * BK, mask=live, other=0.0).to(gl.float32)
            v1 = gl.load(base + (step * BK + 2), mask=live, other=0.0).to(gl.float32)
        else:
            k = k_first + step * BK + code
            v0 = gl.load(base + step * BK, mask=live & (k < k_end), other=0.0).to(gl.float32)
            v1 = gl.load(base + (step * BK + 2), mask=live & (k + 2 < k_end), other=0.0).to(gl.float32)
        pair = gl.inline_asm_elementwise("cvt.rn.f16x2.f32 $0, $2, $1;", "=r,r,r",
                                         [v0 * a[None, :, None], v1 * a[None, :, None]],
                                         dtype=gl.int32, is_pure=True, pack=1)
        words = gl.expand_dims(pair, 3).broadcast_to([G, 8 * NT, KG // 8, 4]) & keep
        xs.index(step).store(gl.reshape(words, [G, 8 * NT, KG // 2]))
    gl.thread_barrier()


@gluon.jit
def _scale_factors(raw, scale_bias, R: gl.constexpr, CH: gl.constexpr, WARPS: gl.constexpr, NT: gl.constexpr,
                   MX: gl.constexpr, layout: gl.constexpr):
    """Scale bytes ``[R, CH, 4]`` (MX: uint8, lane q's group of each chunk; NVFP4: uint16, lane q's
    two groups) -> fp32 factors ``[G, R, 8 NT]`` in the MMA's accumulator layout."""
    if MX:
        field = gl.maximum(raw.to(gl.int32) + (scale_bias - MX_F32_OFFSET), 0)  # 0 only for all-zero groups
        f = (field << 23).to(gl.float32, bitcast=True)  # [R, c, q]
        f = gl.reshape(f, [2, WARPS, 8, CH, 1, 4, 1])
        f = gl.permute(f.broadcast_to([2, WARPS, 8, CH, NT, 4, 2]), [3, 1, 0, 2, 4, 5, 6])  # [c, w, rep, g, tile, q, l]
        f = gl.reshape(f, [CH, R, 8 * NT])
    else:
        lo_f, hi_f = gl.inline_asm_elementwise(_NVFP4_SCALE_PTX, "=r,=r,r", [raw.to(gl.int32)],
                                               dtype=(gl.float32, gl.float32), is_pure=True, pack=1)
        f = gl.reshape(gl.join(lo_f, hi_f), [2, WARPS, 8, CH, 1, 4, 2, 1])  # [rep, w, g, c, tile, q, u, l]
        f = f.broadcast_to([2, WARPS, 8, CH, NT, 4, 2, 2])
        f = gl.reshape(gl.permute(f, [3, 6, 1, 0, 2, 4, 5, 7]), [2 * CH, R, 8 * NT])  # [c, u, w, rep, g, tile, q, l]
    return gl.convert_layout(f, layout)


@gluon.jit
def _decode(codes, R: gl.constexpr, CH: gl.constexpr, WARPS: gl.constexpr, MX: gl.constexpr, layout: gl.constexpr):
    """Words ``[R, CH, 4, 4]`` -> the MMA's A operand ``[G, R, KG]`` f16 (``e2m1 * 2**-14``)."""
    copies = gl.join(gl.join(codes, codes), gl.join(codes, codes))  # [R, c, q, word, h, l']
    low, high = gl.inline_asm_elementwise(
        _DECODE_PTX, "=r,=r,=r,=r,r,r,r,r", [copies], dtype=(gl.float16, gl.float16), is_pure=True, pack=4)
    w = gl.join(low, high)  # [R, c, q, word = (u, i), h, l', e]
    w = gl.reshape(w, [2, WARPS, 8, CH, 4, 2, 2, 2, 2, 2])  # [rep, w, g, c, q, u, i, h, l', e]
    if MX:
        w = gl.permute(w, [3, 1, 0, 2, 5, 6, 7, 9, 4, 8])  # [c, w, rep, g, u, i, h, e, q, l']
    else:
        w = gl.permute(w, [3, 5, 1, 0, 2, 6, 7, 9, 4, 8])  # [c, u, w, rep, g, i, h, e, q, l']
    w = gl.reshape(w, [CH if MX else 2 * CH, R, 128 if MX else 64])
    return gl.convert_layout(w, layout, assert_trivial=True)


@gluon.jit
def _e2m1_fp8_mma_kernel(w_ptr, s_ptr, x_ptr, c_ptr, post_ptr, bias_ptr, ws_ptr, cnt_ptr,
                         N, M, K, stride_w, stride_s, stride_x, stride_c, scale_bias, epilogue,
                         MX: gl.constexpr, HAS_BIAS: gl.constexpr, SPLIT_K: gl.constexpr, WARPS: gl.constexpr,
                         CH: gl.constexpr, NT: gl.constexpr, KS: gl.constexpr, EVEN_K: gl.constexpr,
                         DEPTH: gl.constexpr, EARLY: gl.constexpr, RING: gl.constexpr):
    R: gl.constexpr = 16 * WARPS  # weight rows per program
    BK: gl.constexpr = 128 * CH  # codes per row per step
    TP: gl.constexpr = 2 * NT  # token columns
    G: gl.constexpr = CH if MX else 2 * CH  # scale groups per lane and step (the MMA's batch dimension)
    KG: gl.constexpr = BK // G
    # words [R, CH, 4 (lane q of the quad), 4]: 16 contiguous bytes per lane and row; tensor row
    # r = rep * 8W + 8w + g is weight row 16w + 8rep + g of the program (the MMA's row order)
    LW: gl.constexpr = gl.BlockedLayout([1, 1, 1, 4], [8, 1, 4, 1], [WARPS, 1, 1, 1], [3, 2, 1, 0])
    L3: gl.constexpr = gl.SliceLayout(3, LW)
    LX: gl.constexpr = gl.BlockedLayout([1, 8], [1, 32], [1, WARPS], [1, 0])
    LS: gl.constexpr = _staging_layout(MX, WARPS)
    mma: gl.constexpr = gl.NVMMADistributedLayout(version=[2, 0], warps_per_cta=[1, WARPS, 1],
                                                  instr_shape=[1, 16, 8])
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
    q3 = gl.arange(0, 4, layout=gl.SliceLayout(0, gl.SliceLayout(1, L3)))[None, None, :]
    i4 = gl.arange(0, 4, layout=gl.SliceLayout(0, gl.SliceLayout(1, gl.SliceLayout(2, LW))))[None, None, None, :]
    lane_word = c3 * 16 + q3 * 4 + pid_k * (KS // 8)  # first word of each lane's 16 bytes, [1, CH, 4]
    w_lanes = w_ptr + rows[:, None, None, None] * stride_w + gl.expand_dims(lane_word, 3) + i4
    if MX:
        s_lanes = s_ptr + rows[:, None, None] * stride_s + c3 * 4 + q3 + pid_k * (KS // 32)
    else:
        s_lanes = (s_ptr.to(gl.pointer_type(gl.uint16)) + rows[:, None, None] * (stride_s // 2) + c3 * 4 + q3
                   + pid_k * (KS // 32))
    kw_end = k_end // 8

    if RING > 1:
        # the weight copied to a shared-memory ring by cp.async, started before the activation is
        # staged: STAGES - 1 steps in flight in no register; a lane reads back only the words it
        # copied itself, so no barrier is needed
        STEPS: gl.constexpr = KS // BK
        STAGES: gl.constexpr = RING  # a power of two, at most STEPS (the launcher's choice)
        w_smem = gl.allocate_shared_memory(gl.int32, [STAGES * R, CH, 4, 4],
                                           gl.SwizzledSharedLayout(1, 1, 1, order=[3, 2, 0, 1]))
        for step in gl.static_range(STAGES - 1):
            _copy_step(w_smem, w_lanes, lane_word, i4, kw_end, step, step % STAGES * R, BK, EVEN_K)
    if EARLY:  # the weight stream starts before the activation is staged
        codes, raw = _load_step(w_lanes, s_lanes, lane_word, kw_end, 0, BK, EVEN_K)
    field = _activation_field(x_ptr, M, stride_x, k_first, k_end, steps, TP, BK, LX)
    a = (field << 23).to(gl.float32, bitcast=True)
    swizzle: gl.constexpr = gl.SwizzledSharedLayout(vec=4, per_phase=1, max_phase=8, order=[2, 1, 0])
    words = gl.allocate_shared_memory(gl.int32, [KS // BK, G, 8 * NT, KG // 2], swizzle)
    # a per MMA column (token 2 tile + l of column 8 tile + 2q + l)
    a_cols = gl.reshape(gl.reshape(a, [NT, 1, 2]).broadcast_to([NT, 4, 2]), [8 * NT])
    a_cols = gl.convert_layout(a_cols, gl.SliceLayout(0, gl.SliceLayout(2, gl.SliceLayout(3, LS))))
    _stage_activation(x_ptr, words, a_cols, M, stride_x, k_first, k_end, NT, CH, MX, WARPS, EVEN_K)
    xs = words._reinterpret(gl.float16, [KS // BK, G, 8 * NT, KG],
                            gl.SwizzledSharedLayout(vec=8, per_phase=1, max_phase=8, order=[2, 1, 0]))
    if RING > 1:
        raw = _load_scales(s_lanes, lane_word, kw_end, 0, BK, EVEN_K)
    elif not EARLY:
        codes, raw = _load_step(w_lanes, s_lanes, lane_word, kw_end, 0, BK, EVEN_K)

    zeros = gl.zeros([G, R, 8 * NT], gl.float32, mma)
    acc = gl.zeros([R, 8 * NT], gl.float32, gl.SliceLayout(0, mma))
    if RING > 1:
        for step in gl.static_range(STEPS):
            if step + STAGES - 1 < STEPS:  # into the slot this thread read at the previous step
                _copy_step(w_smem, w_lanes, lane_word, i4, kw_end, step + STAGES - 1,
                           (step + STAGES - 1) % STAGES * R, BK, EVEN_K)
            async_copy.wait_group(STAGES - 1 if step + STAGES - 1 < STEPS else STEPS - 1 - step)
            codes = w_smem.slice(step % STAGES * R, R).load(LW)
            raw_next = _load_scales(s_lanes, lane_word, kw_end, gl.minimum(step + 1, STEPS - 1), BK, EVEN_K)
            sums = mma_v2(_decode(codes, R, CH, WARPS, MX, dot_a), xs.index(step).permute((0, 2, 1)).load(dot_b),
                          zeros)
            acc += gl.sum(sums * _scale_factors(raw, scale_bias, R, CH, WARPS, NT, MX, mma), axis=0)
            raw = raw_next
    elif DEPTH == 2:  # two steps of weight loads in flight
        codes1, raw1 = _load_step(w_lanes, s_lanes, lane_word, kw_end, gl.minimum(1, steps - 1), BK, EVEN_K)
        for step in range(steps):
            codes2, raw2 = _load_step(w_lanes, s_lanes, lane_word, kw_end, gl.minimum(step + 2, steps - 1), BK,
                                      EVEN_K)
            sums = mma_v2(_decode(codes, R, CH, WARPS, MX, dot_a), xs.index(step).permute((0, 2, 1)).load(dot_b),
                          zeros)
            acc += gl.sum(sums * _scale_factors(raw, scale_bias, R, CH, WARPS, NT, MX, mma), axis=0)
            codes = codes1
            raw = raw1
            codes1 = codes2
            raw1 = raw2
    else:
        for step in range(steps):
            # the next step's loads are issued before this step's decode (the last step re-reads its own)
            codes_next, raw_next = _load_step(w_lanes, s_lanes, lane_word, kw_end, gl.minimum(step + 1, steps - 1),
                                              BK, EVEN_K)
            sums = mma_v2(_decode(codes, R, CH, WARPS, MX, dot_a), xs.index(step).permute((0, 2, 1)).load(dot_b),
                          zeros)
            acc += gl.sum(sums * _scale_factors(raw, scale_bias, R, CH, WARPS, NT, MX, mma), axis=0)
            codes = codes_next
            raw = raw_next

    # per token: the four lanes' groups summed, times 1 / a (post_scale and the constant in the epilogue)
    out = gl.sum(gl.reshape(acc, [R, NT, 4, 2]), axis=2)
    out = gl.reshape(out, [R, TP])
    LO: gl.constexpr = gl.BlockedLayout([1, TP], [32, 1], [WARPS, 1], [1, 0])
    out = gl.convert_layout(out, LO)
    inv_a = ((254 - field) << 23).to(gl.float32, bitcast=True)
    out = out * gl.convert_layout(inv_a, gl.SliceLayout(0, LO))[None, :]
    rr = pid_n * R + gl.arange(0, R, layout=gl.SliceLayout(1, LO))
    tt = gl.arange(0, TP, layout=gl.SliceLayout(0, LO))
    if SPLIT_K > 1:
        slab = gl.num_programs(0) * R * TP
        offs = pid_n * R * TP + gl.arange(0, R, layout=gl.SliceLayout(1, LO))[:, None] * TP + tt[None, :]
        gl.store(ws_ptr + pid_k * slab + offs, out)
        gl.thread_barrier()  # every thread's partial is written before the counter says so
        arrived = gl.atomic_add(cnt_ptr + pid_n, 1, sem="acq_rel", scope="gpu")
        if arrived == SPLIT_K - 1:
            total = gl.zeros([R, TP], gl.float32, LO)
            for s in range(SPLIT_K):  # slice order: the sum does not depend on arrival order
                total += gl.load(ws_ptr + s * slab + offs, cache_modifier=".cg")
            gl.atomic_xchg(cnt_ptr + pid_n, 0, sem="relaxed", scope="gpu")
            _epilogue(total, c_ptr, post_ptr, bias_ptr, epilogue, rr, tt, N, M, stride_c, HAS_BIAS)
    else:
        _epilogue(out, c_ptr, post_ptr, bias_ptr, epilogue, rr, tt, N, M, stride_c, HAS_BIAS)


@gluon.jit
def _load_step(w_lanes, s_lanes, lane_word, kw_end, step, BK: gl.constexpr, EVEN_K: gl.constexpr):
    """Step ``step``'s words ``[R, CH, 4, 4]`` and scale bytes ``[R, CH, 4]``, zeros past K."""
    if EVEN_K:
        codes = gl.load(w_lanes + step * (BK // 8))
        raw = gl.load(s_lanes + step * (BK // 32))
    else:
        inside = lane_word + step * (BK // 8) < kw_end  # whole 16-byte lane reads: K is a multiple of 32
        codes = gl.load(w_lanes + step * (BK // 8), mask=gl.expand_dims(inside, 3), other=0)
        raw = gl.load(s_lanes + step * (BK // 32), mask=inside, other=0)
    return codes, raw


@gluon.jit
def _load_scales(s_lanes, lane_word, kw_end, step, BK: gl.constexpr, EVEN_K: gl.constexpr):
    """Step ``step``'s scale bytes ``[R, CH, 4]``, zeros past K."""
    if EVEN_K:
        raw = gl.load(s_lanes + step * (BK // 32))
    else:
        raw = gl.load(s_lanes + step * (BK // 32), mask=lane_word + step * (BK // 8) < kw_end, other=0)
    return raw


@gluon.jit
def _copy_step(w_smem, w_lanes, lane_word, i4, kw_end, step: gl.constexpr, first: gl.constexpr, BK: gl.constexpr,
               EVEN_K: gl.constexpr):
    """Start the asynchronous copy of step ``step``'s words into ring rows ``first ..``, as one group."""
    R: gl.constexpr = w_lanes.shape[0]
    if EVEN_K:
        async_copy.async_copy_global_to_shared(w_smem.slice(first, R), w_lanes + step * (BK // 8))
    else:
        inside = gl.expand_dims(lane_word + step * (BK // 8) < kw_end, 3)
        async_copy.async_copy_global_to_shared(w_smem.slice(first, R), w_lanes + step * (BK // 8),
                                               mask=inside & (i4 >= 0))
    async_copy.commit_group()


@gluon.jit
def _epilogue(out, c_ptr, post_ptr, bias_ptr, epilogue, rr, tt, N, M, stride_c, HAS_BIAS: gl.constexpr):
    out = out * (gl.load(post_ptr) * epilogue)
    if HAS_BIAS:
        out += gl.load(bias_ptr + rr, mask=rr < N, other=0.0)[:, None].to(gl.float32)
    gl.store(c_ptr + tt[None, :] * stride_c + rr[:, None], out.to(c_ptr.dtype.element_ty),
             mask=(rr[:, None] < N) & (tt[None, :] < M))


@dataclass(frozen=True)
class E2m1Fp8Config:
    """``warps`` x 16 weight rows per program, ``chunks`` x 128 codes per row per step, ``split_k`` slices of K."""

    warps: int = 4
    chunks: int = 2
    split_k: int = 1
    depth: int = 1
    early: bool = False
    ring: int = 0

    def key(self) -> str:
        return (f"e2m1fp8 w{self.warps}c{self.chunks}s{self.split_k}d{self.depth}{'e' if self.early else ''}"
                f"{f'r{self.ring}' if self.ring else ''}")


def ring_stages(ks: int, config: E2m1Fp8Config) -> int:
    """The ring's depth: the config's, as a power of two no deeper than the slice's steps (0: no ring)."""
    steps = ks // (CHUNK * config.chunks)
    stages = 1
    while stages * 2 <= min(config.ring, steps):
        stages *= 2
    return stages if stages > 1 else 0


def token_tiles(m: int) -> int:
    """MMA column tiles of two tokens for ``m`` tokens: 1, 2 or 4."""
    tiles = 1
    while 2 * tiles < m:
        tiles *= 2
    return tiles


def slice_extent(k: int, config: E2m1Fp8Config) -> int:
    """Codes of K per split-K slice: whole steps, the last slice possibly short."""
    return round_up(triton.cdiv(k, config.split_k), CHUNK * config.chunks)


def shared_memory_bytes(k: int, m: int, config: E2m1Fp8Config) -> int:
    """Shared memory of one program: the staged activation slice, 16 f16 per code and column tile."""
    return slice_extent(k, config) * 16 * 2 * token_tiles(m)


def scaled_activation(x: torch.Tensor, k_slice: int) -> tuple[torch.Tensor, torch.Tensor]:
    """What the kernel stages, in PyTorch (for the CPU tests): ``(v, a)`` with ``v = f16(x * a)``
    ``[M, K]`` and ``a`` fp32 ``[M, slices]`` the power of two of each K slice of ``k_slice`` codes."""
    m, k = x.shape
    xf = x.float()
    slices = triton.cdiv(k, k_slice)
    amax = torch.nn.functional.pad(xf.abs(), (0, slices * k_slice - k)).reshape(m, slices, k_slice).amax(2)
    field = ACTIVATION_FIELD.value - ((amax.view(torch.int32) >> 23) & 0xFF)
    field = field.clamp(127 - ACTIVATION_SCALE_LIMIT.value, 127 + ACTIVATION_SCALE_LIMIT.value)
    a = (field << 23).view(torch.float32)
    return (xf * a.repeat_interleave(k_slice, dim=1)[:, :k]).to(torch.float16), a


def e2m1_fp8_mma(x: torch.Tensor, w: torch.Tensor, scales: torch.Tensor, post_scale: torch.Tensor, *, mx: bool,
                 config: E2m1Fp8Config, scale_bias: int = 0, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``[M, N]`` in x's dtype: ``x [M, K]`` (M <= 4) times the dequantized e2m1 weight, times ``post_scale``.

    Args:
        x: activations, bf16/fp16/fp32, K contiguous.
        w: packed e2m1 ``uint8 [N, K/2]``, the canonical layout, rows contiguous and 16-byte aligned.
        scales: NVFP4 e4m3 ``[N, K/16]`` (as ``float8_e4m3fn`` or its bytes) or MXFP4 e8m0 uint8
            ``[N, K/32]``, rows contiguous.
        post_scale: fp32 one-element tensor (the layer's :class:`WeightOnlyLayout` ``post_scale``).
        mx: MXFP4 (e8m0 per 32) rather than NVFP4 (e4m3 per 16).
        config: launch config; its staged activation slice must fit (``SHARED_MEMORY_BYTES``).
        scale_bias: added to e8m0 exponents (MXFP4; the layout's ``scale_bias``).
        bias: optional ``[N]``.

    Raises:
        ValueError: more than ``MAX_TOKENS`` tokens, K not a multiple of 32, weight rows not 16-byte
            aligned, or a config whose shared memory does not fit.
    """
    m, k = x.shape
    n = w.shape[0]
    if m > MAX_TOKENS or k % 32 or w.shape[1] * 2 != k or w.stride(1) != 1 or w.stride(0) % 16 \
            or w.data_ptr() % 16 or scales.stride(1) != 1:
        raise ValueError(f"e2m1_fp8_mma takes at most {MAX_TOKENS} tokens, K % 32 == 0 and 16-byte aligned "
                         f"contiguous weight rows; got x {tuple(x.shape)}, w {tuple(w.shape)} strides {w.stride()}")
    if shared_memory_bytes(k, m, config) > SHARED_MEMORY_BYTES:
        raise ValueError(f"e2m1_fp8_mma {config.key()} needs {shared_memory_bytes(k, m, config)} bytes of shared "
                         f"memory for M={m}, K={k}; the limit is {SHARED_MEMORY_BYTES}")
    nt = token_tiles(m)
    ks = slice_extent(k, config)
    split = triton.cdiv(k, ks)
    rows = 16 * config.warps
    grid = (triton.cdiv(n, rows), split)
    c = torch.empty((m, n), device=x.device, dtype=x.dtype)
    if split > 1:
        ws, counters = split_k_buffers(x.device, split, grid[0] * rows * 2 * nt, grid[0])
    else:
        ws = counters = post_scale
    if scales.dtype == torch.float8_e4m3fn:
        scales = scales.view(torch.uint8)
    _e2m1_fp8_mma_kernel[grid](
        w.view(torch.int32), scales, x, c, post_scale, bias if bias is not None else post_scale, ws, counters,
        n, m, k, w.stride(0) // 4, scales.stride(0), x.stride(0), c.stride(0), scale_bias,
        MXFP4_EPILOGUE if mx else NVFP4_EPILOGUE,
        MX=mx, HAS_BIAS=bias is not None, SPLIT_K=split, WARPS=config.warps, CH=config.chunks, NT=nt,
        KS=ks, EVEN_K=k % ks == 0, DEPTH=config.depth, EARLY=config.early, RING=ring_stages(ks, config),
        num_warps=config.warps,
    )
    return c


def pick_e2m1_fp8_config(n: int, k: int, m: int, *, sms: int = SM_COUNT_HOPPER) -> E2m1Fp8Config:
    """4 warps (64 weight rows), 2 chunks per step where K allows, K split into ~``SLICE_CODES``
    slices, then further (keeping two steps per slice) while the grid has fewer than 4 programs per SM."""
    chunks = 2 if k % (2 * CHUNK) == 0 else 1
    step = CHUNK * chunks
    programs = triton.cdiv(n, 64)
    split = max(1, k // SLICE_CODES)
    while programs * split < 4 * sms and k // (2 * split) >= 2 * step:
        split *= 2
    config = E2m1Fp8Config(4, chunks, split)
    while shared_memory_bytes(k, m, config) > SHARED_MEMORY_BYTES:
        config = E2m1Fp8Config(4, chunks, config.split_k * 2)
    return config


__all__ = ["E2m1Fp8Config", "e2m1_fp8_mma", "decode_ptx", "nvfp4_scale_ptx", "scaled_activation", "slice_extent",
           "token_tiles", "shared_memory_bytes", "pick_e2m1_fp8_config", "MAX_TOKENS"]
