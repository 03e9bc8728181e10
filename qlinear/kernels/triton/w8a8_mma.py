"""Decode GEMM for 8-bit W8A8 weights (FP8 e4m3 per-channel or 128x128-block, INT8 per-channel) in
Gluon: each 16-byte load of the weight is ``mma.sync`` A fragments as it lands in registers, and
each 16-byte load of the quantized activation is B fragments; no shared memory, no conversion.

``C [M, N] = (X * x_scale) [M, K] @ (W * w_scale)^T [K, N]`` for M up to 16 tokens, computed
transposed (the weight's rows are the MMA's M side, the tokens its N side, 8 per ``m16n8k32``),
from the canonical layout (``[N, K]`` bytes, K contiguous): nothing is repacked.

Why: a decode GEMM only has to stream the weight once at memory speed. The swapped Triton GEMM
(:mod:`.scaled_gemm`) stages 128-row weight tiles through shared memory in few, large programs
and reached 68-71% of the byte floor at 14336x4096 and 4096x14336 on an H200, where a kernel that
only reads the weight in 64-row tiles, K split 4 ways, reached 90-92%
(``bench/results/h200_issue3.md``). This kernel has that read pattern and nothing else on the
weight's path:

* a lane quad (lanes ``4g .. 4g+3``) reads 64 contiguous bytes of weight rows ``g`` and ``g+8``
  per *chunk*, 16 bytes per lane and row (128-bit loads);
* the MMA only needs the same K order on both operands, so K is permuted within each chunk:
  lane ``t``'s 16 bytes are its A registers of two ``m16n8k32`` MMAs (logical
  ``k = 32u + 16h + 4t + c`` holds physical byte ``16t + 8u + 4h + c``), and the lane that holds
  token ``g``'s B registers reads that token's bytes at the same 16 positions;
* per-channel scales multiply the finished sum; 128x128 block scales multiply each 128-deep K
  step's product (one weight scale per program and step, one activation scale per token);
* K is split across programs (whole steps), reduced in the same launch by the slice that arrives
  last (as :mod:`.split_k`); launched after the activation quantization with PDL, a program
  issues its first weight loads before it waits for the quantized activation.

FP8 needs sm_89+ (``mma.sync`` e4m3), INT8 sm_80+. Gluon has no CPU interpreter: the CPU tests
compile it for sm_90a (``tests/test_gluon_compile.py``); the GPU tests check it against the
float64 reference.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.language.nvidia.ampere import mma_v2

from .configs import SM_COUNT_HOPPER
from .pdl import pdl_enabled
from .split_k import split_k_buffers

CHUNK = gl.constexpr(64)  # bytes of one weight row a lane quad reads per chunk (4 lanes x 16 bytes)
MAX_TOKENS = 16  # two MMA column tiles of 8 tokens: the B registers of a wider tile cost occupancy
BLOCK = gl.constexpr(128)  # the block recipe's scale block (rows and K)
SCALES = ("rowwise", "block")


@gluon.jit
def _wait_for_producer(PDL: gl.constexpr):
    if PDL:
        gl.inline_asm_elementwise("griddepcontrol.wait; mov.u32 $0, 0;", "=r", [], dtype=gl.int32, is_pure=False,
                                  pack=1)


@gluon.jit
def _mma_order(v, LEAD: gl.constexpr, CH: gl.constexpr):
    """Bytes ``[LEAD, CH, 4 (lane t), 16]`` as loaded -> ``[LEAD, CH * 64]`` in the MMA's K order."""
    v = gl.reshape(v, [LEAD, CH, 4, 2, 2, 4])  # [lead, chunk, t, u, h, c]: physical 16t + 8u + 4h + c
    v = gl.permute(v, [0, 1, 3, 4, 2, 5])  # logical 32u + 16h + 4t + c
    return gl.reshape(v, [LEAD, CH * CHUNK])


@gluon.jit
def _weight_operand(v, R: gl.constexpr, WARPS: gl.constexpr, CH: gl.constexpr):
    """Weight bytes as loaded (tensor row ``rep * 8W + 8w + g``) -> ``[R, CH * 64]``, rows in weight order."""
    v = gl.reshape(v, [2, WARPS, 8, CH * 64])
    v = gl.permute(v, [1, 0, 2, 3])  # weight row 16w + 8rep + g
    return _mma_order(gl.reshape(v, [R, CH, 4, 16]), R, CH)


@gluon.jit
def _as_bytes(words):
    """int32 words ``[..., 4]`` -> their bytes ``[..., 16]`` (int8, little-endian), register for register."""
    shape: gl.constexpr = words.shape
    four = gl.reshape(gl.join(gl.join(words, words), gl.join(words, words)), shape[:-1] + [shape[-1] * 4])
    return gl.inline_asm_elementwise("mov.b32 $0, $1;", "=r,r,r,r,r", [four], dtype=gl.int8, is_pure=True, pack=4)


@gluon.jit
def _load_weight(w_lanes, k_lanes, step, k_end, BK: gl.constexpr, EVEN_K: gl.constexpr):
    if EVEN_K:
        return gl.load(w_lanes + step * (BK // 4))
    return gl.load(w_lanes + step * (BK // 4), mask=k_lanes + step * BK < k_end, other=0)


@gluon.jit
def _load_activation(x_lanes, kx_lanes, tok_ok, step, k_end, BK: gl.constexpr):
    return gl.load(x_lanes + step * (BK // 4), mask=tok_ok & (kx_lanes + step * BK < k_end), other=0)


@gluon.jit
def _w8a8_mma_kernel(w_ptr, x_ptr, ws_ptr, xs_ptr, c_ptr, bias_ptr, part_ptr, cnt_ptr,
                     N, M, K, stride_w, stride_x, stride_c, stride_wsn, stride_wsk, stride_xsm, stride_xsk,
                     BLOCKWISE: gl.constexpr, INT: gl.constexpr, HAS_BIAS: gl.constexpr, SPLIT_K: gl.constexpr,
                     WARPS: gl.constexpr, CH: gl.constexpr, NT: gl.constexpr, KS: gl.constexpr,
                     EVEN_K: gl.constexpr, PDL: gl.constexpr):
    R: gl.constexpr = 16 * WARPS  # weight rows per program
    BK: gl.constexpr = CHUNK * CH  # bytes of K per row per step
    T: gl.constexpr = 8 * NT  # token columns
    ELEM: gl.constexpr = gl.int8 if INT else gl.float8e4nv
    ACC: gl.constexpr = gl.int32 if INT else gl.float32
    # Weight words [R, CH, 4 (lane t), 4]: tensor row r = rep * 8W + 8w + g is weight row 16w + 8rep + g.
    LW: gl.constexpr = gl.BlockedLayout([1, 1, 1, 4], [8, 1, 4, 1], [WARPS, 1, 1, 1], [3, 2, 1, 0])
    # Activation words [T, CH, 4, 4]: every warp holds all of it (the warps split the weight rows).
    LX: gl.constexpr = gl.BlockedLayout([1, CH, 1, 4], [8, 1, 4, 1], [1, WARPS, 1, 1], [3, 2, 1, 0])
    mma: gl.constexpr = gl.NVMMADistributedLayout(version=[2, 0], warps_per_cta=[WARPS, 1], instr_shape=[16, 8])
    dot_a: gl.constexpr = gl.DotOperandLayout(operand_index=0, parent=mma, k_width=4)
    dot_b: gl.constexpr = gl.DotOperandLayout(operand_index=1, parent=mma, k_width=4)

    pid_n = gl.program_id(0)
    pid_k = gl.program_id(1)
    k_first = pid_k * KS
    k_end = gl.minimum(k_first + KS, K)
    steps = gl.cdiv(k_end - k_first, BK)

    r = gl.arange(0, R, layout=gl.SliceLayout(1, gl.SliceLayout(2, gl.SliceLayout(3, LW))))
    rows = (pid_n * R + (r % (8 * WARPS)) // 8 * 16 + (r // (8 * WARPS)) * 8 + r % 8) % N
    cw = gl.arange(0, CH, layout=gl.SliceLayout(0, gl.SliceLayout(2, gl.SliceLayout(3, LW))))
    tw = gl.arange(0, 4, layout=gl.SliceLayout(0, gl.SliceLayout(1, gl.SliceLayout(3, LW))))
    bw = gl.arange(0, 4, layout=gl.SliceLayout(0, gl.SliceLayout(1, gl.SliceLayout(2, LW))))
    kw = cw[None, :, None, None] * (CHUNK // 4) + tw[None, None, :, None] * 4 + bw[None, None, None, :]  # words
    k_lanes = k_first + 4 * kw  # bytes, for the masks
    w_lanes = w_ptr + rows[:, None, None, None] * stride_w + pid_k * (KS // 4) + kw  # [R, CH, 4, 4]

    n = gl.arange(0, T, layout=gl.SliceLayout(1, gl.SliceLayout(2, gl.SliceLayout(3, LX))))
    cx = gl.arange(0, CH, layout=gl.SliceLayout(0, gl.SliceLayout(2, gl.SliceLayout(3, LX))))
    tx = gl.arange(0, 4, layout=gl.SliceLayout(0, gl.SliceLayout(1, gl.SliceLayout(3, LX))))
    bx = gl.arange(0, 4, layout=gl.SliceLayout(0, gl.SliceLayout(1, gl.SliceLayout(2, LX))))
    kx = cx[None, :, None, None] * (CHUNK // 4) + tx[None, None, :, None] * 4 + bx[None, None, None, :]
    kx_lanes = k_first + 4 * kx
    tok = n[:, None, None, None]
    x_lanes = x_ptr + tok * stride_x + pid_k * (KS // 4) + kx  # [T, CH, 4, 4]
    tok_ok = tok < M

    # The weight does not depend on the kernel before this one: its first loads go out before the wait.
    words = _load_weight(w_lanes, k_lanes, 0, k_end, BK, EVEN_K)
    _wait_for_producer(PDL)
    xw = _load_activation(x_lanes, kx_lanes, tok_ok, 0, k_end, BK)

    tt = gl.arange(0, T, layout=gl.SliceLayout(0, mma))
    acc = gl.zeros([R, T], ACC, mma)
    for step in range(steps):
        # the next step's loads are issued before this step's MMAs (the last step re-reads its own);
        # carried as int32 words: carried bytes cost a register and two permutes each
        nxt = gl.minimum(step + 1, steps - 1)
        words_next = _load_weight(w_lanes, k_lanes, nxt, k_end, BK, EVEN_K)
        xw_next = _load_activation(x_lanes, kx_lanes, tok_ok, nxt, k_end, BK)
        a = _weight_operand(gl.reshape(_as_bytes(words), [R, CH, 4, 16]), R, WARPS, CH)
        a = gl.convert_layout(a.to(ELEM, bitcast=True), dot_a, assert_trivial=True)
        b = _mma_order(gl.reshape(_as_bytes(xw), [T, CH, 4, 16]), T, CH).to(ELEM, bitcast=True)
        b = gl.convert_layout(b.permute((1, 0)), dot_b, assert_trivial=True)
        if BLOCKWISE:  # one 128-deep K block per step: its product times the block's two scales
            kb = (k_first + step * BK) // BLOCK
            sw = gl.load(ws_ptr + (pid_n * R // BLOCK) * stride_wsn + kb * stride_wsk)
            sx = gl.load(xs_ptr + tt * stride_xsm + kb * stride_xsk, mask=tt < M, other=0.0)
            acc += mma_v2(a, b, gl.zeros([R, T], ACC, mma)) * (sx * sw)[None, :]
        else:
            acc = mma_v2(a, b, acc)
        words = words_next
        xw = xw_next

    rr = pid_n * R + gl.arange(0, R, layout=gl.SliceLayout(1, mma))
    out = acc.to(gl.float32)
    if not BLOCKWISE:  # per-channel x per-token scales on the finished sum (a linear map: split-K may sum after)
        out = out * gl.load(ws_ptr + rr * stride_wsn, mask=rr < N, other=0.0)[:, None]
        out = out * gl.load(xs_ptr + tt * stride_xsm, mask=tt < M, other=0.0)[None, :]
    if SPLIT_K > 1:
        slab = gl.num_programs(0) * R * T
        offs = pid_n * R * T + gl.arange(0, R, layout=gl.SliceLayout(1, mma))[:, None] * T + tt[None, :]
        real = (gl.arange(0, R, layout=gl.SliceLayout(1, mma))[:, None] >= 0) & (tt[None, :] < M)
        gl.store(part_ptr + pid_k * slab + offs, out, mask=real)  # the token columns past M stay unwritten
        gl.thread_barrier()  # every thread's partial is written before the counter says so
        arrived = gl.atomic_add(cnt_ptr + pid_n, 1, sem="acq_rel", scope="gpu")
        if arrived == SPLIT_K - 1:
            total = gl.zeros([R, T], gl.float32, mma)
            for s in range(SPLIT_K):  # slice order: the sum does not depend on arrival order
                total += gl.load(part_ptr + s * slab + offs, mask=real, other=0.0, cache_modifier=".cg")
            gl.atomic_xchg(cnt_ptr + pid_n, 0, sem="relaxed", scope="gpu")
            _store(total, c_ptr, bias_ptr, rr, tt, N, M, stride_c, HAS_BIAS)
    else:
        _store(out, c_ptr, bias_ptr, rr, tt, N, M, stride_c, HAS_BIAS)


@gluon.jit
def _store(out, c_ptr, bias_ptr, rr, tt, N, M, stride_c, HAS_BIAS: gl.constexpr):
    if HAS_BIAS:
        out += gl.load(bias_ptr + rr, mask=rr < N, other=0.0)[:, None].to(gl.float32)
    gl.store(c_ptr + tt[None, :] * stride_c + rr[:, None], out.to(c_ptr.dtype.element_ty),
             mask=(rr[:, None] < N) & (tt[None, :] < M))


@dataclass(frozen=True)
class W8A8MmaConfig:
    """``warps`` x 16 weight rows per program, ``chunks`` x 64 bytes per row per step, ``split_k`` slices of K."""

    warps: int = 4
    chunks: int = 2
    split_k: int = 1

    def key(self) -> str:
        return f"w8a8mma w{self.warps}c{self.chunks}s{self.split_k}"


def slice_extent(k: int, config: W8A8MmaConfig) -> int:
    """Bytes of K per split-K slice: whole steps, the last slice possibly short."""
    step = CHUNK.value * config.chunks
    return -(-triton.cdiv(k, config.split_k) // step) * step


def token_tiles(m: int) -> int:
    """MMA column tiles of 8 tokens for ``m`` tokens: 1 or 2."""
    return 1 if m <= 8 else 2


def w8a8_mma(x: torch.Tensor, x_scale: torch.Tensor, w: torch.Tensor, w_scale: torch.Tensor, *, scales: str,
             config: W8A8MmaConfig, bias: torch.Tensor | None = None, out_dtype: torch.dtype = torch.bfloat16,
             after_producer: bool = False) -> torch.Tensor:
    """``[M, N]`` of ``out_dtype``: ``(x * x_scale) @ (w * w_scale)^T (+ bias)`` for M <= 16 tokens.

    Args:
        x: quantized activations ``[M, K]``, e4m3 or int8 (w's dtype), K contiguous, rows 16-byte aligned.
        x_scale: fp32 dequant multipliers, ``scales="rowwise"``: per token ``[M]`` or ``[M, 1]``;
            ``"block"``: per 1 x 128 group ``[M, ceil(K/128)]``, any strides.
        w: weight ``[N, K]``, K contiguous, ``K % 16 == 0`` and rows 16-byte aligned.
        w_scale: fp32, ``"rowwise"``: per output channel ``[N]`` or ``[N, 1]`` contiguous;
            ``"block"``: per 128 x 128 block ``[ceil(N/128), ceil(K/128)]``, any strides (e4m3 only).
        config: launch config (:func:`pick_w8a8_mma_config`); ``"block"`` needs ``chunks == 2``
            (one 128-deep K block per step) and ``warps`` dividing 8 (a program inside one row block).
        bias: optional ``[N]``.
        after_producer: ``x`` and ``x_scale`` were written by the kernel just before on this
            stream, which releases its dependents early (:mod:`.act_quant` does): on sm_90+ the
            GEMM is launched with PDL and waits for them after its first weight loads.

    Raises:
        ValueError: more than 16 tokens, mismatched or unsupported dtypes, K not a multiple of 16,
            unaligned rows, scales of the wrong size, or a config the scales cannot use.
    """
    m, k = x.shape
    n = w.shape[0]
    if scales not in SCALES:
        raise ValueError(f"w8a8_mma scales are one of {SCALES}, got {scales!r}")
    if x.dtype != w.dtype or w.dtype not in (torch.float8_e4m3fn, torch.int8) or (scales == "block" and w.dtype != torch.float8_e4m3fn):
        raise ValueError(f"w8a8_mma takes e4m3 or int8 operands of one dtype (block scales: e4m3); got x {x.dtype}, "
                         f"w {w.dtype}, scales {scales!r}")
    if m > MAX_TOKENS or k % 16 or w.shape[1] != k or w.stride(1) != 1 or x.stride(1) != 1 or w.stride(0) % 16 \
            or x.stride(0) % 16 or w.data_ptr() % 16 or x.data_ptr() % 16:
        raise ValueError(f"w8a8_mma takes at most {MAX_TOKENS} tokens and 16-byte aligned rows with K % 16 == 0; "
                         f"got x {tuple(x.shape)} strides {x.stride()}, w {tuple(w.shape)} strides {w.stride()}")
    if scales == "block":
        if config.chunks != 2 or BLOCK.value % (16 * config.warps):
            raise ValueError(f"block scales need 2 chunks (128 bytes of K) per step and 16 x warps rows dividing "
                             f"{BLOCK.value}; got {config.key()}")
        blocks = (triton.cdiv(n, BLOCK.value), triton.cdiv(k, BLOCK.value))
        if tuple(w_scale.shape) != blocks or tuple(x_scale.shape) != (m, blocks[1]):
            raise ValueError(f"block scales must be w {blocks} and x {(m, blocks[1])}; got w {tuple(w_scale.shape)}, "
                             f"x {tuple(x_scale.shape)}")
        wsn, wsk = w_scale.stride()
        xsm, xsk = x_scale.stride()
    else:
        if w_scale.numel() != n or x_scale.numel() != m:
            raise ValueError(f"rowwise scales must be one per channel ({n}) and one per token ({m}); got "
                             f"{w_scale.numel()} and {x_scale.numel()}")
        w_scale, x_scale = w_scale.reshape(n), x_scale.reshape(m)
        (wsn,), (xsm,) = w_scale.stride(), x_scale.stride()
        wsk = xsk = 0
    if w_scale.dtype != torch.float32 or x_scale.dtype != torch.float32:
        raise ValueError(f"w8a8_mma scales are fp32; got w {w_scale.dtype}, x {x_scale.dtype}")
    tiles = token_tiles(m)
    ks = slice_extent(k, config)
    split = triton.cdiv(k, ks)
    rows = 16 * config.warps
    grid = (triton.cdiv(n, rows), split)
    c = torch.empty((m, n), device=x.device, dtype=out_dtype)
    if split > 1:
        part, counters = split_k_buffers(x.device, split, grid[0] * rows * 8 * tiles, grid[0])
    else:
        part = counters = w_scale
    pdl = after_producer and pdl_enabled(x.device, m)
    _w8a8_mma_kernel[grid](
        w.view(torch.int32), x.view(torch.int32), w_scale, x_scale, c, bias if bias is not None else w_scale, part, counters,
        n, m, k, w.stride(0) // 4, x.stride(0) // 4, c.stride(0), wsn, wsk, xsm, xsk,
        BLOCKWISE=scales == "block", INT=w.dtype == torch.int8, HAS_BIAS=bias is not None, SPLIT_K=split,
        WARPS=config.warps, CH=config.chunks, NT=tiles, KS=ks, EVEN_K=k % ks == 0,
        PDL=pdl, num_warps=config.warps, launch_pdl=pdl,
    )
    return c


def pick_w8a8_mma_config(n: int, k: int, m: int, *, scales: str = "rowwise",
                         sms: int = SM_COUNT_HOPPER) -> W8A8MmaConfig:
    """The launch config for an ``[m, k] x [n, k]^T`` product: 4 warps (64 weight rows), 2 chunks
    (128 bytes of K per step), K split until the grid has 4 programs per SM while each slice
    keeps 4 steps."""
    config = W8A8MmaConfig(4, 2, 1)
    programs = triton.cdiv(n, 16 * config.warps)
    split = 1
    while programs * split < 4 * sms and k // (2 * split) >= 4 * CHUNK.value * config.chunks:
        split *= 2
    return W8A8MmaConfig(config.warps, config.chunks, split)


__all__ = ["W8A8MmaConfig", "w8a8_mma", "pick_w8a8_mma_config", "slice_extent", "token_tiles", "MAX_TOKENS", "CHUNK"]
