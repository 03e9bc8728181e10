"""FP8 GEMMs for Hopper in Gluon with per-K-step scales: warp-specialized wgmma, the scale promotion
off the tensor cores' path.

``block_fp8_gemm``: ``C [M, N] = sum over K-tiles t of (A_t @ B_t^T) * a_scale[:, t] * b_scale[n // 128, t]``
for e4m3 ``A [M, K]`` (1 x 128 activation groups, scales M-major ``[ceil(K/128), M]`` storage) and
e4m3 ``B [N, K]`` (128 x 128 weight blocks, scales ``[ceil(N/128), ceil(K/128)]``), the DeepSeek-V3
recipe. ``mxfp8_gemm``: the same with OCP MX e8m0 scales per 32 along K on both operands, each
32-deep product scaled by its row and column scales (128 x 64 output tiles).

Each K step's product must be scaled before it joins the fp32 sum, so the tensor cores idle while
the CUDA cores scale if one warpgroup both multiplies and scales in lockstep (what Triton 3.6
compiles ``acc += tl.dot(a, b) * s`` to: ``wgmma.wait_group 0`` per K-tile). Here the grid is
persistent (one program per SM walking output tiles); in each program a producer (the launch's 4
warps, one thread issuing the copies) streams A and B through a ring of shared-memory stages by
TMA (``ready``/``empty`` mbarriers), running ahead into the next tile, and two consumer
warpgroups, 64 rows each, run on their own: each keeps two products in flight and scales one
while the other runs, and while one warpgroup scales, the other's wgmmas keep the tensor cores
busy; a tile's TMA store drains while the next tile computes (the structure DeepGEMM uses).

Hopper only (``wgmma`` is sm_90a). TMA needs 16-byte aligned rows: ``K % 16 == 0`` and
``N % 8 == 0`` (bf16 output); ragged M, N and K are otherwise handled by TMA's zero fill and
clipped stores. The result does not depend on M (fixed tiles, no split-K).
"""
from __future__ import annotations

import functools

import torch
import triton
from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.language.nvidia.hopper import (
    fence_async_shared,
    mbarrier,
    tma,
    warpgroup_mma,
    warpgroup_mma_wait,
)
from triton.experimental.gluon.nvidia.hopper import TensorDescriptor

BLOCK = 128  # output tile edge and K-tile depth; the weight's scale block, so one weight scale per tile step
HALF = BLOCK // 2  # rows per consumer warpgroup
GROUP_M = 8  # output tiles sharing a weight column, launched together for L2 reuse
STAGES = 4  # shared-memory ring depth: 4 stages of A and B tiles (32 KB each; 24 KB with MX tiles)
PRODUCER_WARPS = 4  # the launch's own warps; one of them issues the TMA loads
CONSUMER_REGS = 232  # per thread of each consumer warpgroup (setmaxnreg); the producer gives its registers up
MX_BLOCK_N = 64  # MX output tiles are 128 x 64: a thread's column scales and addresses of 128 would spill
K_ALIGN, N_ALIGN = 16, 8  # TMA: rows of A/B (e4m3) and of C (bf16) must be 16-byte multiples


@gluon.jit
def _tile_origin(tile, M, N, BM: gl.constexpr, BN: gl.constexpr, GROUP_M: gl.constexpr):
    """Output tile number -> its first row and column. GROUP_M row-tiles walk the same weight
    columns together, so tiles computed at the same time share weight tiles in L2."""
    tiles_m = gl.cdiv(M, BM)
    per_group = GROUP_M * gl.cdiv(N, BN)
    first_m = (tile // per_group) * GROUP_M
    rows_in_group = gl.minimum(tiles_m - first_m, GROUP_M)
    return (first_m + (tile % per_group) % rows_in_group) * BM, ((tile % per_group) // rows_in_group) * BN


@gluon.jit
def _producer(a_desc, b_desc, a_smem, b_smem, ready, empty, M, N, k_tiles, tiles,
              STAGES: gl.constexpr, GROUP_M: gl.constexpr):
    """The producer: TMA-load every K-tile of this program's output tiles into the ring, each stage once
    both consumers have freed it, running ahead into the next output tile while they finish one."""
    BM: gl.constexpr = a_desc.block_type.shape[0]
    BN: gl.constexpr = b_desc.block_type.shape[0]
    BK: gl.constexpr = a_desc.block_type.shape[1]
    step = 0
    for tile in range(gl.program_id(0), tiles, gl.num_programs(0)):
        off_m, off_n = _tile_origin(tile, M, N, BM, BN, GROUP_M)
        for t in range(k_tiles):
            stage = step % STAGES
            mbarrier.wait(empty.index(stage), ((step // STAGES) & 1) ^ 1, pred=step >= STAGES)
            mbarrier.expect(ready.index(stage), a_desc.block_type.nbytes + b_desc.block_type.nbytes)
            tma.async_copy_global_to_shared(a_desc, [off_m, t * BK], ready.index(stage), a_smem.index(stage))
            tma.async_copy_global_to_shared(b_desc, [off_n, t * BK], ready.index(stage), b_smem.index(stage))
            step += 1


@gluon.jit
def _issue(a_smem, b_smem, ready, step, into, PART: gl.constexpr, STAGES: gl.constexpr):
    """Wait for the ring's ``step``-th K-tile and start this warpgroup's product (rows 64 * PART to
    64 * PART + 63 of A's tile) into ``into`` (overwritten, not added to)."""
    stage = step % STAGES
    mbarrier.wait(ready.index(stage), (step // STAGES) & 1)
    a = a_smem.index(stage).slice(PART * 64, 64, dim=0)
    return warpgroup_mma(a, b_smem.index(stage).permute((1, 0)), into, use_acc=False, is_async=True)


@gluon.jit
def _tile_scale(a_scale_ptr, b_scale_ptr, rows, row_ok, block_n, t, stride_ask, stride_bs):
    """Per-row multiplier of K-tile ``t``'s product: activation group scale x weight block scale."""
    a_scale = gl.load(a_scale_ptr + t * stride_ask + rows, mask=row_ok, other=0.0)
    return a_scale * gl.load(b_scale_ptr + block_n * stride_bs + t)


@gluon.jit
def _e8m0(e):
    """e8m0 bytes -> their fp32 values ``2**(e - 127)`` (the fp32 with exponent field e; e = 0, which
    only all-zero groups carry, gives 0)."""
    return (e.to(gl.int32) << 23).to(gl.float32, bitcast=True)


@gluon.jit
def _mainloop_block(a_smem, b_smem, ready, empty, a_scale_ptr, b_scale_ptr, rows, row_ok, block_n, base, k_tiles,
                    stride_ask, stride_bs, mma: gl.constexpr, PART: gl.constexpr, STAGES: gl.constexpr):
    """1x128 x 128x128 block scales: one scale per row per K-tile."""
    BN: gl.constexpr = mma.instr_shape[1]
    acc = gl.zeros([64, BN], gl.float32, layout=mma)
    x = gl.zeros([64, BN], gl.float32, layout=mma)
    y = gl.zeros([64, BN], gl.float32, layout=mma)
    # Two K-tiles in flight: the second runs on the tensor cores while the first is scaled. Both are
    # awaited inside the iteration: a wgmma in flight across a loop's back edge made ptxas serialize
    # every wgmma (warning C7514); the other warpgroup fills the tensor cores meanwhile.
    for pair in range(0, k_tiles // 2):
        t = 2 * pair
        x = _issue(a_smem, b_smem, ready, base + t, x, PART, STAGES)
        y = _issue(a_smem, b_smem, ready, base + t + 1, y, PART, STAGES)
        x_scale = _tile_scale(a_scale_ptr, b_scale_ptr, rows, row_ok, block_n, t, stride_ask, stride_bs)
        y_scale = _tile_scale(a_scale_ptr, b_scale_ptr, rows, row_ok, block_n, t + 1, stride_ask, stride_bs)
        x = warpgroup_mma_wait(num_outstanding=1, deps=(x,))
        mbarrier.arrive(empty.index((base + t) % STAGES))
        acc += x * gl.expand_dims(x_scale, 1)
        y = warpgroup_mma_wait(num_outstanding=0, deps=(y,))
        mbarrier.arrive(empty.index((base + t + 1) % STAGES))
        acc += y * gl.expand_dims(y_scale, 1)
    if k_tiles % 2 == 1:
        x = _issue(a_smem, b_smem, ready, base + k_tiles - 1, x, PART, STAGES)
        x_scale = _tile_scale(a_scale_ptr, b_scale_ptr, rows, row_ok, block_n, k_tiles - 1, stride_ask, stride_bs)
        x = warpgroup_mma_wait(num_outstanding=0, deps=(x,))
        mbarrier.arrive(empty.index((base + k_tiles - 1) % STAGES))
        acc += x * gl.expand_dims(x_scale, 1)
    return acc


@gluon.jit
def _mx_scales(a_scale_ptr, b_scale_ptr, rows, row_ok, cols, col_ok, g, k_groups, stride_ask, stride_bs):
    """Row and column multipliers of 32-group ``g``'s product (e8m0 scales of A's rows and B's rows);
    groups past K (the zero-filled end of the last K-tile) get scale 0."""
    a_scale = _e8m0(gl.load(a_scale_ptr + g * stride_ask + rows, mask=row_ok & (g < k_groups), other=0))
    b_scale = _e8m0(gl.load(b_scale_ptr + g * stride_bs + cols, mask=col_ok & (g < k_groups), other=0))
    return gl.expand_dims(a_scale, 1), gl.expand_dims(b_scale, 0)


@gluon.jit
def _mx_pair(a, b, x, y, acc, h: gl.constexpr, x_rows, x_cols, y_rows, y_cols):
    """Products of 32-groups 2h and 2h+1 of a K-tile, the second running while the first is scaled."""
    x = warpgroup_mma(a.slice(64 * h, 32, dim=1), b.slice(64 * h, 32, dim=1).permute((1, 0)), x,
                      use_acc=False, is_async=True)
    y = warpgroup_mma(a.slice(64 * h + 32, 32, dim=1), b.slice(64 * h + 32, 32, dim=1).permute((1, 0)), y,
                      use_acc=False, is_async=True)
    x = warpgroup_mma_wait(num_outstanding=1, deps=(x,))
    acc += x * x_cols * x_rows
    y = warpgroup_mma_wait(num_outstanding=0, deps=(y,))
    acc += y * y_cols * y_rows
    return x, y, acc


@gluon.jit
def _mainloop_mx(a_smem, b_smem, ready, empty, a_scale_ptr, b_scale_ptr, rows, row_ok, cols, col_ok, base, k_tiles,
                 k_groups, stride_ask, stride_bs, mma: gl.constexpr, PART: gl.constexpr, STAGES: gl.constexpr):
    """OCP MX: e8m0 scales per 32 along K on both operands, so each 32-deep product (one wgmma
    instruction) is scaled on its own, two in flight, the second running while the first is scaled.
    A K-tile's four groups of scale vectors are loaded before its operands are awaited (their outer
    products are formed per element as they are applied: whole [64, BN] products would not fit)."""
    BN: gl.constexpr = mma.instr_shape[1]
    gl.static_assert(a_smem.type.shape[2] == 128, "four 32-groups per K-tile")
    acc = gl.zeros([64, BN], gl.float32, layout=mma)
    x = gl.zeros([64, BN], gl.float32, layout=mma)
    y = gl.zeros([64, BN], gl.float32, layout=mma)
    for t in range(k_tiles):
        g = 4 * t
        r0, c0 = _mx_scales(a_scale_ptr, b_scale_ptr, rows, row_ok, cols, col_ok, g, k_groups, stride_ask, stride_bs)
        r1, c1 = _mx_scales(a_scale_ptr, b_scale_ptr, rows, row_ok, cols, col_ok, g + 1, k_groups, stride_ask,
                            stride_bs)
        r2, c2 = _mx_scales(a_scale_ptr, b_scale_ptr, rows, row_ok, cols, col_ok, g + 2, k_groups, stride_ask,
                            stride_bs)
        r3, c3 = _mx_scales(a_scale_ptr, b_scale_ptr, rows, row_ok, cols, col_ok, g + 3, k_groups, stride_ask,
                            stride_bs)
        stage = (base + t) % STAGES
        mbarrier.wait(ready.index(stage), ((base + t) // STAGES) & 1)
        a = a_smem.index(stage).slice(PART * 64, 64, dim=0)
        b = b_smem.index(stage)
        x, y, acc = _mx_pair(a, b, x, y, acc, 0, r0, c0, r1, c1)
        x, y, acc = _mx_pair(a, b, x, y, acc, 1, r2, c2, r3, c3)
        mbarrier.arrive(empty.index(stage))
    return acc


@gluon.jit
def _consumer(a_smem, b_smem, ready, empty, c_desc, c_smem, a_scale_ptr, b_scale_ptr, bias_ptr, M, N, K, k_tiles, tiles,
              stride_ask, stride_bs, PART: gl.constexpr, MX: gl.constexpr, HAS_BIAS: gl.constexpr,
              STAGES: gl.constexpr, GROUP_M: gl.constexpr):
    """One warpgroup (PART 0 or 1): its 64 rows of each of this program's output tiles, each K
    step's product scaled and summed in fp32; a tile's store drains while the next tile computes."""
    BN: gl.constexpr = c_desc.block_type.shape[1]
    mma: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[4, 1], instr_shape=[16, BN, 32])
    base = 0
    for tile in range(gl.program_id(0), tiles, gl.num_programs(0)):
        off_m, off_n = _tile_origin(tile, M, N, 2 * c_desc.block_type.shape[0], BN, GROUP_M)
        rows = off_m + PART * 64 + gl.arange(0, 64, layout=gl.SliceLayout(1, mma))
        cols = off_n + gl.arange(0, BN, layout=gl.SliceLayout(0, mma))
        if MX:
            acc = _mainloop_mx(a_smem, b_smem, ready, empty, a_scale_ptr, b_scale_ptr, rows, rows < M, cols,
                               cols < N, base, k_tiles, K // 32, stride_ask, stride_bs, mma, PART, STAGES)
        else:
            acc = _mainloop_block(a_smem, b_smem, ready, empty, a_scale_ptr, b_scale_ptr, rows, rows < M, off_n // BN,
                                  base, k_tiles, stride_ask, stride_bs, mma, PART, STAGES)
        base += k_tiles

        if HAS_BIAS:
            acc += gl.expand_dims(gl.load(bias_ptr + cols, mask=cols < N, other=0.0).to(gl.float32), 0)
        tma.store_wait(pendings=0)  # the previous tile's store has read c_smem
        c_smem.store(acc.to(c_desc.dtype))
        fence_async_shared()
        tma.async_copy_shared_to_global(c_desc, [off_m + PART * 64, off_n], c_smem)
    tma.store_wait(pendings=0)


@gluon.jit
def _wgmma_gemm_kernel(a_desc, b_desc, c_desc, a_scale_ptr, b_scale_ptr, bias_ptr, M, N, K, stride_ask, stride_bs,
                      MX: gl.constexpr, HAS_BIAS: gl.constexpr, STAGES: gl.constexpr, GROUP_M: gl.constexpr,
                      CONSUMER_REGS: gl.constexpr):
    # Persistent: program p computes output tiles p, p + P, p + 2P, ... (P programs, one per SM).
    k_tiles = gl.cdiv(K, a_desc.block_type.shape[1])
    tiles = gl.cdiv(M, a_desc.block_type.shape[0]) * gl.cdiv(N, b_desc.block_type.shape[0])

    a_smem = gl.allocate_shared_memory(a_desc.dtype, [STAGES] + a_desc.block_type.shape, a_desc.layout)
    b_smem = gl.allocate_shared_memory(b_desc.dtype, [STAGES] + b_desc.block_type.shape, b_desc.layout)
    c_top = gl.allocate_shared_memory(c_desc.dtype, c_desc.block_type.shape, c_desc.layout)
    c_bottom = gl.allocate_shared_memory(c_desc.dtype, c_desc.block_type.shape, c_desc.layout)
    ready = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    empty = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    for s in gl.static_range(STAGES):
        mbarrier.init(ready.index(s), count=1)
        mbarrier.init(empty.index(s), count=2)  # one arrival per consumer warpgroup

    gl.warp_specialize([
        (_producer, (a_desc, b_desc, a_smem, b_smem, ready, empty, M, N, k_tiles, tiles, STAGES, GROUP_M)),
        (_consumer, (a_smem, b_smem, ready, empty, c_desc, c_top, a_scale_ptr, b_scale_ptr, bias_ptr, M, N, K,
                     k_tiles, tiles, stride_ask, stride_bs, 0, MX, HAS_BIAS, STAGES, GROUP_M)),
        (_consumer, (a_smem, b_smem, ready, empty, c_desc, c_bottom, a_scale_ptr, b_scale_ptr, bias_ptr, M, N, K,
                     k_tiles, tiles, stride_ask, stride_bs, 1, MX, HAS_BIAS, STAGES, GROUP_M)),
    ], [4, 4], [CONSUMER_REGS, CONSUMER_REGS])


@functools.cache
def _multiprocessors(device: torch.device) -> int:
    return torch.cuda.get_device_properties(device).multi_processor_count


@functools.cache
def _smem_layout(block: tuple[int, int], dtype) -> gl.NVMMASharedLayout:
    return gl.NVMMASharedLayout.get_default_for(list(block), dtype)


def _descriptor(t: torch.Tensor, dtype, rows: int = BLOCK, cols: int = BLOCK) -> TensorDescriptor:
    """A TMA descriptor loading or storing ``[rows, cols]`` tiles of the 2-D tensor ``t``."""
    return TensorDescriptor.from_tensor(t, [rows, cols], _smem_layout((rows, cols), dtype))


def weight_descriptor(b: torch.Tensor, mx: bool = False) -> TensorDescriptor:
    """The TMA descriptor of an e4m3 weight ``[N, K]`` for :func:`block_fp8_gemm` (or, ``mx=True``,
    :func:`mxfp8_gemm`); built once per layer: building descriptors costs microseconds of host time
    per call."""
    return _descriptor(b, gl.float8e4nv, MX_BLOCK_N if mx else BLOCK)


def _check_layout(what: str, a, a_scale, b, b_scale) -> None:
    k, n = a.shape[1], b.shape[0]
    if (k % K_ALIGN or n % N_ALIGN or a.stride(1) != 1 or b.stride(1) != 1 or a_scale.stride(0) != 1
            or b_scale.stride(1) != 1):
        raise ValueError(f"{what} needs K % {K_ALIGN} == 0, N % {N_ALIGN} == 0, K-contiguous operands, M-major "
                         "activation scales and row-contiguous weight scales; got "
                         f"a {tuple(a.shape)} stride {a.stride()}, b {tuple(b.shape)} stride {b.stride()}, "
                         f"a_scale stride {a_scale.stride()}, b_scale stride {b_scale.stride()}")


def _launch(a, a_scale, b, b_scale, mx: bool, bias, out_dtype, stages, group_m, b_desc) -> torch.Tensor:
    m, k = a.shape
    n = b.shape[0]
    block_n = MX_BLOCK_N if mx else BLOCK
    c = torch.empty((m, n), device=a.device, dtype=out_dtype)
    out_gl = gl.bfloat16 if out_dtype == torch.bfloat16 else gl.float16
    grid = (min(triton.cdiv(m, BLOCK) * triton.cdiv(n, block_n), _multiprocessors(a.device)),)
    _wgmma_gemm_kernel[grid](
        _descriptor(a, gl.float8e4nv), b_desc or weight_descriptor(b, mx), _descriptor(c, out_gl, HALF, block_n),
        a_scale, b_scale, bias if bias is not None else c, m, n, k, a_scale.stride(1), b_scale.stride(0),
        MX=mx, HAS_BIAS=bias is not None, STAGES=stages, GROUP_M=group_m, CONSUMER_REGS=CONSUMER_REGS,
        num_warps=PRODUCER_WARPS,
    )
    return c


def block_fp8_gemm(a: torch.Tensor, a_scale: torch.Tensor, b: torch.Tensor, b_scale: torch.Tensor,
                   bias: torch.Tensor | None = None, out_dtype: torch.dtype = torch.bfloat16, *,
                   stages: int = STAGES, group_m: int = GROUP_M, b_desc: TensorDescriptor | None = None
                   ) -> torch.Tensor:
    """``(a * a_scale) @ (b * b_scale)^T (+ bias)`` with DeepSeek-V3 block scales, on Hopper.

    Args:
        a: ``[M, K]`` e4m3, K contiguous; ``K % 16 == 0``.
        a_scale: ``[M, ceil(K/128)]`` fp32 dequant multipliers per 1 x 128 group, M-major
            (``stride(0) == 1``, what ``quantize_per_group(..., m_major=True)`` writes).
        b: ``[N, K]`` e4m3 weight, K contiguous; ``N % 8 == 0``.
        b_scale: ``[ceil(N/128), ceil(K/128)]`` fp32 dequant multipliers per 128 x 128 block, contiguous.
        bias: optional ``[N]``.
        out_dtype: bf16 or fp16.
        stages, group_m: launch options (shared-memory ring depth, tile grouping), for tuning sweeps.
        b_desc: ``weight_descriptor(b)``, when the caller keeps one.

    Returns:
        ``[M, N]`` in ``out_dtype``.

    Raises:
        ValueError: operands whose layout TMA cannot read.
    """
    _check_layout("wgmma block FP8 GEMM", a, a_scale, b, b_scale)
    return _launch(a, a_scale, b, b_scale, False, bias, out_dtype, stages, group_m, b_desc)


def mxfp8_gemm(a: torch.Tensor, a_scale: torch.Tensor, b: torch.Tensor, b_scale_t: torch.Tensor,
               bias: torch.Tensor | None = None, out_dtype: torch.dtype = torch.bfloat16, *,
               stages: int = STAGES, group_m: int = GROUP_M, b_desc: TensorDescriptor | None = None) -> torch.Tensor:
    """``(a * a_scale) @ (b * b_scale)^T (+ bias)`` for MXFP8 (OCP MX v1.0: e4m3, e8m0 scale per 32
    along K) on both operands, on Hopper's FP8 tensor cores; each 32-deep product is scaled on its own.

    Args:
        a: ``[M, K]`` e4m3, K contiguous; ``K % 32 == 0``.
        a_scale: ``[M, K/32]`` uint8 e8m0 exponents, M-major (``stride(0) == 1``; what
            ``quantize_per_group(x, 32, e8m0=True, m_major=True)`` writes).
        b: ``[N, K]`` e4m3 weight, K contiguous; ``N % 8 == 0``.
        b_scale_t: ``[K/32, N]`` uint8 e8m0 exponents of the weight, the ``[N, K/32]`` scales transposed,
            contiguous (one load per 32-group reads a tile's columns).
        bias, out_dtype, stages, group_m, b_desc: as :func:`block_fp8_gemm`.

    Returns:
        ``[M, N]`` in ``out_dtype``.

    Raises:
        ValueError: operands whose layout TMA cannot read, or K not a multiple of 32.
    """
    if a.shape[1] % 32:
        raise ValueError(f"wgmma MXFP8 GEMM needs K % 32 == 0 (whole e8m0 groups), got K={a.shape[1]}")
    _check_layout("wgmma MXFP8 GEMM", a, a_scale, b, b_scale_t)
    return _launch(a, a_scale, b, b_scale_t, True, bias, out_dtype, stages, group_m, b_desc)
