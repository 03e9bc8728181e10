"""W8A8 GEMMs for Hopper in Gluon: warp-specialized wgmma, with per-K-step scales promoted off the
tensor cores' path, or with per-token x per-channel scales applied once to the finished sum.

``block_fp8_gemm``: ``C [M, N] = sum over K-tiles t of (A_t @ B_t^T) * a_scale[:, t] * b_scale[n // 128, t]``
for e4m3 ``A [M, K]`` (1 x 128 activation groups, scales M-major ``[ceil(K/128), M]`` storage) and
e4m3 ``B [N, K]`` (128 x 128 weight blocks, scales ``[ceil(N/128), ceil(K/128)]``), the DeepSeek-V3
recipe. ``mxfp8_gemm``: the same with OCP MX e8m0 scales per 32 along K on both operands, each
32-deep product scaled by its row and column scales (128 x 64 output tiles). ``rowwise_gemm``:
INT8 or e4m3 operands with one scale per token and one per output channel, applied in the
epilogue. INT8 sums in int32 on the tensor cores (exact): its K loop only waits for products (one
kept in flight), so its accumulator alone fills the registers and its tiles may be 256 rows (128
per warpgroup). e4m3 products are summed per K-tile in fp32 on the CUDA cores, as in the block
loop without its scales: Hopper's FP8 MMA adds into its accumulator with fewer bits than fp32,
which over a long K costs more than the 1e-3 error bound (measured, ``_mainloop_promoted``).

Each K step's product must be scaled before it joins the fp32 sum, so the tensor cores idle while
the CUDA cores scale if one warpgroup both multiplies and scales in lockstep (what Triton 3.6
compiles ``acc += tl.dot(a, b) * s`` to: ``wgmma.wait_group 0`` per K-tile). Here the grid is
persistent (one program per SM walking output tiles); in each program a producer (the launch's 4
warps, one thread issuing the copies) streams A and B, with A's scales (and MX weight scales),
through a ring of shared-memory stages by TMA (``ready``/``empty`` mbarriers), running ahead into
the next tile, so no consumer waits on a global load of its scales; two consumer
warpgroups, 64 rows each, run on their own: each keeps two products in flight and scales one
while the other runs, and while one warpgroup scales, the other's wgmmas keep the tensor cores
busy; a tile's TMA store drains while the next tile computes (the structure DeepGEMM uses).

Launched after the kernel that quantized A (``after_producer``), the grid starts early by PDL and
waits for A at its first load. Hopper only (``wgmma`` is sm_90a). TMA needs 16-byte aligned rows:
``K % 16 == 0`` and ``N % 8 == 0`` (bf16 output), and M-major activation scales whose stride is
padded to 16 bytes (``quantize_per_group(..., tma_aligned=True)``); ragged M, N and K are otherwise
handled by TMA's zero fill and clipped stores. The result does not depend on M: no split-K, and
every output sums K in the same order whichever tile height M selects (bitwise, tested on the GPU).
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

from ...formats import e8m0
from .pdl import pdl_enabled

BLOCK = 128  # output tile edge and K-tile depth; the weight's scale block, so one weight scale per tile step
GROUP_M = 8  # output tiles sharing a weight column, launched together for L2 reuse
STAGES = 4  # shared-memory ring depth: 4 stages of A and B tiles and their scales (32.5 KB each, 25.5 KB for MX)
TALL_STAGES = 3  # with 256-row tiles (INT8 rowwise): 48 KB stages, 64 KB of output tiles, 227 KB of shared memory
TALL_TILE_GAIN = 0.94  # 256-row INT8 rowwise tiles ran 2-7% faster than 128-row ones at M=4096 on an H200
# (bench/results/h200_issue3_tile256_first.txt): twice the tensor work per ring stage, barrier wait and copy
PRODUCER_WARPS = 4  # the launch's own warps; one of them issues the TMA loads
CONSUMER_REGS = 232  # per thread of each consumer warpgroup (setmaxnreg); the producer gives its registers up
MX_BLOCK_N = 64  # MX output tiles are 128 x 64: with 128 x 128 ones a thread's 32 column scales spilled (measured with
# the scales loaded from global memory, before they were staged in shared memory)
K_ALIGN, N_ALIGN = 16, 8  # TMA: rows of A/B (e4m3) and of C (bf16) must be 16-byte multiples


@gluon.jit
def _wait_for_producer(PDL: gl.constexpr):
    """Under a PDL launch: block until the kernel before this one (the quantization of A) has
    finished and its writes are visible; the launch and the prologue before this ran meanwhile."""
    if PDL:
        gl.inline_asm_elementwise("griddepcontrol.wait; mov.u32 $0, 0;", "=r", [], dtype=gl.int32, is_pure=False,
                                  pack=1)


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
def _producer(a_desc, b_desc, as_desc, bs_desc, a_smem, b_smem, as_smem, bs_smem, ready, empty, M, N, k_tiles, tiles,
              SCALES: gl.constexpr, STAGES: gl.constexpr, GROUP_M: gl.constexpr, PDL: gl.constexpr):
    """The producer: TMA-load every K-tile of this program's output tiles, with its activation scales
    (and MX weight scales; none for rowwise scales, applied after the sum), into the ring, each stage
    once both consumers have freed it, running ahead into the next output tile while they finish one."""
    BM: gl.constexpr = a_desc.block_type.shape[0]
    BN: gl.constexpr = b_desc.block_type.shape[0]
    BK: gl.constexpr = a_desc.block_type.shape[1]
    SCALES_PER_TILE: gl.constexpr = 0 if SCALES == "rowwise" else as_desc.block_type.shape[0]  # groups per K-tile
    nbytes: gl.constexpr = a_desc.block_type.nbytes + b_desc.block_type.nbytes + (
        0 if SCALES == "rowwise" else as_desc.block_type.nbytes) + (bs_desc.block_type.nbytes if SCALES == "mx" else 0)
    _wait_for_producer(PDL)
    step = 0
    for tile in range(gl.program_id(0), tiles, gl.num_programs(0)):
        off_m, off_n = _tile_origin(tile, M, N, BM, BN, GROUP_M)
        for t in range(k_tiles):
            stage = step % STAGES
            mbarrier.wait(empty.index(stage), ((step // STAGES) & 1) ^ 1, pred=step >= STAGES)
            mbarrier.expect(ready.index(stage), nbytes)
            tma.async_copy_global_to_shared(a_desc, [off_m, t * BK], ready.index(stage), a_smem.index(stage))
            tma.async_copy_global_to_shared(b_desc, [off_n, t * BK], ready.index(stage), b_smem.index(stage))
            if SCALES != "rowwise":
                tma.async_copy_global_to_shared(as_desc, [t * SCALES_PER_TILE, off_m], ready.index(stage),
                                                as_smem.index(stage))
            if SCALES == "mx":
                tma.async_copy_global_to_shared(bs_desc, [t * SCALES_PER_TILE, off_n], ready.index(stage),
                                                bs_smem.index(stage))
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
def _scale_vector(smem, stage, g: gl.constexpr, start: gl.constexpr, length: gl.constexpr, layout: gl.constexpr):
    """Scales ``start .. start + length - 1`` of scale group ``g`` of the K-tile in ``stage``: the
    unswizzled ``[groups, cols]`` tile read as the flat array it is (an NVMMA layout has no rank-1 views)."""
    tile = smem.index(stage)
    cols: gl.constexpr = tile.type.shape[1]
    flat = tile._reinterpret(tile.dtype, [tile.type.shape[0] * cols], gl.SwizzledSharedLayout(1, 1, 1, [0]))
    return flat.slice(g * cols + start, length).load(layout)


@gluon.jit
def _row_scales(as_smem, stage, g: gl.constexpr, PART: gl.constexpr, layout: gl.constexpr):
    """This warpgroup's 64 activation-row scales of scale group ``g`` of the K-tile in ``stage``."""
    return _scale_vector(as_smem, stage, g, PART * 64, 64, layout)


@gluon.jit
def _tile_scale(as_smem, stage, b_scale_ptr, block_n, t, stride_bs, PART: gl.constexpr, layout: gl.constexpr):
    """Per-row multiplier of K-tile ``t``'s product: activation group scale x weight block scale."""
    return _row_scales(as_smem, stage, 0, PART, layout) * gl.load(b_scale_ptr + block_n * stride_bs + t)


@gluon.jit
def _e8m0(e):
    """e8m0 bytes -> their fp32 values ``2**(e - 127)`` (the fp32 with exponent field e; e = 0, which
    only all-zero groups and TMA's zero fill past M, N and K carry, gives 0)."""
    return (e.to(gl.int32) << 23).to(gl.float32, bitcast=True)


@gluon.jit
def _product_scale(as_smem, stage, b_scale_ptr, block_n, t, stride_bs, PART: gl.constexpr, SCALED: gl.constexpr,
                   rows: gl.constexpr):
    """K-tile ``t``'s per-row multiplier under block scales (:func:`_tile_scale`); None without them."""
    scale = None
    if SCALED:
        scale = _tile_scale(as_smem, stage, b_scale_ptr, block_n, t, stride_bs, PART, rows)
    return scale


@gluon.jit
def _add_product(acc, x, scale, SCALED: gl.constexpr):
    """``acc`` plus one K-tile's product ``x``, first scaled by the per-row ``scale`` under block scales."""
    if SCALED:
        acc += x * gl.expand_dims(scale, 1)
    else:
        acc += x
    return acc


@gluon.jit
def _mainloop_promoted(a_smem, b_smem, as_smem, ready, empty, b_scale_ptr, block_n, base, k_tiles, stride_bs,
                       mma: gl.constexpr, PART: gl.constexpr, STAGES: gl.constexpr, SCALED: gl.constexpr):
    """Each K-tile's e4m3 product on its own on the tensor cores, summed in fp32 on the CUDA cores.
    With 1x128 x 128x128 block scales (``SCALED``) each product is scaled first (one scale per row
    per K-tile). Without them (per-token x per-channel scales, applied after the sum) the promotion
    is for accuracy alone: Hopper's FP8 MMA keeps fewer bits than fp32 when it adds into its
    accumulator (DeepSeek-V3 technical report, section 3.3.2), and a K of 14336 summed on the tensor
    cores alone missed the 1e-3 error bound (bench/results/h200_issue3_accum_precision.txt)."""
    BN: gl.constexpr = mma.instr_shape[1]
    rows: gl.constexpr = gl.SliceLayout(1, mma)
    acc = gl.zeros([64, BN], gl.float32, layout=mma)
    x = gl.zeros([64, BN], gl.float32, layout=mma)
    y = gl.zeros([64, BN], gl.float32, layout=mma)
    # Two K-tiles in flight: the second runs on the tensor cores while the first is added. Both are
    # awaited inside the iteration: a wgmma in flight across a loop's back edge made ptxas serialize
    # every wgmma (warning C7514); the other warpgroup fills the tensor cores meanwhile.
    for pair in range(0, k_tiles // 2):
        t = 2 * pair
        x = _issue(a_smem, b_smem, ready, base + t, x, PART, STAGES)
        y = _issue(a_smem, b_smem, ready, base + t + 1, y, PART, STAGES)
        # the scales are read while the products run
        x_scale = _product_scale(as_smem, (base + t) % STAGES, b_scale_ptr, block_n, t, stride_bs, PART, SCALED, rows)
        y_scale = _product_scale(as_smem, (base + t + 1) % STAGES, b_scale_ptr, block_n, t + 1, stride_bs, PART,
                                 SCALED, rows)
        x = warpgroup_mma_wait(num_outstanding=1, deps=(x,))
        mbarrier.arrive(empty.index((base + t) % STAGES))
        acc = _add_product(acc, x, x_scale, SCALED)
        y = warpgroup_mma_wait(num_outstanding=0, deps=(y,))
        mbarrier.arrive(empty.index((base + t + 1) % STAGES))
        acc = _add_product(acc, y, y_scale, SCALED)
    if k_tiles % 2 == 1:
        last = base + k_tiles - 1
        x = _issue(a_smem, b_smem, ready, last, x, PART, STAGES)
        x_scale = _product_scale(as_smem, last % STAGES, b_scale_ptr, block_n, k_tiles - 1, stride_bs, PART, SCALED,
                                 rows)
        x = warpgroup_mma_wait(num_outstanding=0, deps=(x,))
        mbarrier.arrive(empty.index(last % STAGES))
        acc = _add_product(acc, x, x_scale, SCALED)
    return acc


@gluon.jit
def _mx_scales(as_smem, bs_smem, stage, g: gl.constexpr, PART: gl.constexpr, mma: gl.constexpr):
    """Row and column multipliers of 32-group ``g``'s product in the K-tile in ``stage`` (A's e8m0
    scales, B's decoded to fp32 when the layer was prepared)."""
    a_scale = _e8m0(_row_scales(as_smem, stage, g, PART, gl.SliceLayout(1, mma)))
    b_scale = _scale_vector(bs_smem, stage, g, 0, mma.instr_shape[1], gl.SliceLayout(0, mma))
    return gl.expand_dims(a_scale, 1), gl.expand_dims(b_scale, 0)


@gluon.jit
def _mx_mma(a, b, g: gl.constexpr, into):
    """Start the product of 32-group ``g`` of a K-tile (one wgmma) into ``into`` (overwritten)."""
    return warpgroup_mma(a.slice(32 * g, 32, dim=1), b.slice(32 * g, 32, dim=1).permute((1, 0)), into,
                         use_acc=False, is_async=True)


@gluon.jit
def _mainloop_mx(a_smem, b_smem, as_smem, bs_smem, ready, empty, base, k_tiles,
                 mma: gl.constexpr, PART: gl.constexpr, STAGES: gl.constexpr):
    """OCP MX: e8m0 scales per 32 along K on both operands, so each 32-deep product (one wgmma
    instruction) is scaled on its own, two in flight: while one is scaled the next runs.
    The scales arrive with the operands (TMA, zero past M, N and K: those products count 0)."""
    BN: gl.constexpr = mma.instr_shape[1]
    gl.static_assert(a_smem.type.shape[2] == 128, "four 32-groups per K-tile")
    acc = gl.zeros([64, BN], gl.float32, layout=mma)
    x = gl.zeros([64, BN], gl.float32, layout=mma)
    y = gl.zeros([64, BN], gl.float32, layout=mma)
    for t in range(k_tiles):
        stage = (base + t) % STAGES
        mbarrier.wait(ready.index(stage), ((base + t) // STAGES) & 1)
        a = a_smem.index(stage).slice(PART * 64, 64, dim=0)
        b = b_smem.index(stage)
        x = _mx_mma(a, b, 0, x)
        y = _mx_mma(a, b, 1, y)
        rows, cols = _mx_scales(as_smem, bs_smem, stage, 0, PART, mma)
        x = warpgroup_mma_wait(num_outstanding=1, deps=(x,))
        acc += x * cols * rows
        # Group 2 goes into x's registers, so x must be scaled before it starts: that keeps the
        # scaling between the waits (without the reuse, ptxas moved it below the next wait and
        # a warpgroup's tensor work and its scaling took turns).
        x = _mx_mma(a, b, 2, x)
        rows, cols = _mx_scales(as_smem, bs_smem, stage, 1, PART, mma)
        y = warpgroup_mma_wait(num_outstanding=1, deps=(y,))
        acc += y * cols * rows
        y = _mx_mma(a, b, 3, y)
        rows, cols = _mx_scales(as_smem, bs_smem, stage, 2, PART, mma)
        x = warpgroup_mma_wait(num_outstanding=1, deps=(x,))
        acc += x * cols * rows
        rows, cols = _mx_scales(as_smem, bs_smem, stage, 3, PART, mma)
        y = warpgroup_mma_wait(num_outstanding=0, deps=(y,))
        mbarrier.arrive(empty.index(stage))
        acc += y * cols * rows
    return acc


@gluon.jit
def _mainloop_int8(a_smem, b_smem, ready, empty, base, k_tiles, mma: gl.constexpr, PART: gl.constexpr,
                   STAGES: gl.constexpr, ROWS: gl.constexpr):
    """INT8 per-token x per-channel: the K-tiles' products accumulate on the tensor cores in int32,
    exactly (scaled once, after the sum). One product stays in flight while the next K-tile is
    awaited; its stage is freed once the product after it has been issued. ``ROWS`` (64 or 128) rows
    per warpgroup: 128 is two wgmmas per K step on one B tile."""
    BN: gl.constexpr = mma.instr_shape[1]
    acc = gl.zeros([ROWS, BN], gl.int32, layout=mma)
    for t in range(k_tiles):
        stage = (base + t) % STAGES
        mbarrier.wait(ready.index(stage), ((base + t) // STAGES) & 1)
        a = a_smem.index(stage).slice(PART * ROWS, ROWS, dim=0)
        acc = warpgroup_mma(a, b_smem.index(stage).permute((1, 0)), acc, is_async=True)
        acc = warpgroup_mma_wait(num_outstanding=1, deps=(acc,))
        mbarrier.arrive(empty.index((base + t + STAGES - 1) % STAGES), pred=t > 0)
    acc = warpgroup_mma_wait(num_outstanding=0, deps=(acc,))
    mbarrier.arrive(empty.index((base + k_tiles - 1) % STAGES))
    return acc


@gluon.jit
def _consumer(a_smem, b_smem, as_smem, bs_smem, ready, empty, c_desc, c_smem, a_scale_ptr, b_scale_ptr, bias_ptr, M,
              N, k_tiles, tiles, stride_bs, PART: gl.constexpr, SCALES: gl.constexpr, HAS_BIAS: gl.constexpr,
              STAGES: gl.constexpr, GROUP_M: gl.constexpr, PDL: gl.constexpr):
    """One warpgroup (PART 0 or 1): its 64 rows (INT8 rowwise: 64 or 128) of each of this program's
    output tiles, each K step's product scaled and summed in fp32 (rowwise: summed, then scaled);
    a tile's store drains while the next tile computes."""
    BN: gl.constexpr = c_desc.block_type.shape[1]
    ROWS: gl.constexpr = c_desc.block_type.shape[0]  # this warpgroup's rows of a tile
    gl.static_assert(ROWS == 64 or a_smem.dtype == gl.int8, "fp32 sums of K-tiles keep 64 rows per warpgroup")
    mma: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[4, 1], instr_shape=[16, BN, 32])
    _wait_for_producer(PDL)  # the epilogue reads A's per-token scales directly
    base = 0
    for tile in range(gl.program_id(0), tiles, gl.num_programs(0)):
        off_m, off_n = _tile_origin(tile, M, N, 2 * ROWS, BN, GROUP_M)
        if SCALES == "mx":
            acc = _mainloop_mx(a_smem, b_smem, as_smem, bs_smem, ready, empty, base, k_tiles, mma, PART, STAGES)
        elif SCALES == "block":
            acc = _mainloop_promoted(a_smem, b_smem, as_smem, ready, empty, b_scale_ptr, off_n // BN, base, k_tiles,
                                     stride_bs, mma, PART, STAGES, True)
        else:
            if a_smem.dtype == gl.int8:
                acc = _mainloop_int8(a_smem, b_smem, ready, empty, base, k_tiles, mma, PART, STAGES, ROWS)
            else:
                acc = _mainloop_promoted(a_smem, b_smem, as_smem, ready, empty, b_scale_ptr, 0, base, k_tiles,
                                         stride_bs, mma, PART, STAGES, False)
            rows = off_m + PART * ROWS + gl.arange(0, ROWS, layout=gl.SliceLayout(1, mma))
            cols = off_n + gl.arange(0, BN, layout=gl.SliceLayout(0, mma))
            acc = (acc.to(gl.float32) * gl.expand_dims(gl.load(a_scale_ptr + rows, mask=rows < M, other=0.0), 1)
                   * gl.expand_dims(gl.load(b_scale_ptr + cols, mask=cols < N, other=0.0), 0))
        base += k_tiles

        if HAS_BIAS:
            cols = off_n + gl.arange(0, BN, layout=gl.SliceLayout(0, mma))
            acc += gl.expand_dims(gl.load(bias_ptr + cols, mask=cols < N, other=0.0).to(gl.float32), 0)
        tma.store_wait(pendings=0)  # the previous tile's store has read c_smem
        c_smem.store(acc.to(c_desc.dtype))
        fence_async_shared()
        tma.async_copy_shared_to_global(c_desc, [off_m + PART * ROWS, off_n], c_smem)
    tma.store_wait(pendings=0)


@gluon.jit
def _wgmma_gemm_kernel(a_desc, b_desc, c_desc, as_desc, bs_desc, a_scale_ptr, b_scale_ptr, bias_ptr, M, N, K, stride_bs,
                       SCALES: gl.constexpr, HAS_BIAS: gl.constexpr, STAGES: gl.constexpr, GROUP_M: gl.constexpr,
                       CONSUMER_REGS: gl.constexpr, PDL: gl.constexpr):
    # Persistent: program p computes output tiles p, p + P, p + 2P, ... (P programs, one per SM).
    k_tiles = gl.cdiv(K, a_desc.block_type.shape[1])
    tiles = gl.cdiv(M, a_desc.block_type.shape[0]) * gl.cdiv(N, b_desc.block_type.shape[0])

    a_smem = gl.allocate_shared_memory(a_desc.dtype, [STAGES] + a_desc.block_type.shape, a_desc.layout)
    b_smem = gl.allocate_shared_memory(b_desc.dtype, [STAGES] + b_desc.block_type.shape, b_desc.layout)
    if SCALES == "rowwise":  # no scales staged: they multiply the finished sum
        as_smem = a_smem
    else:
        as_smem = gl.allocate_shared_memory(as_desc.dtype, [STAGES] + as_desc.block_type.shape, as_desc.layout)
    if SCALES == "mx":
        bs_smem = gl.allocate_shared_memory(bs_desc.dtype, [STAGES] + bs_desc.block_type.shape, bs_desc.layout)
    else:  # block weight scales are one number per K-tile, read by the consumers from global memory
        bs_smem = as_smem
    c_top = gl.allocate_shared_memory(c_desc.dtype, c_desc.block_type.shape, c_desc.layout)
    c_bottom = gl.allocate_shared_memory(c_desc.dtype, c_desc.block_type.shape, c_desc.layout)
    ready = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    empty = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    for s in gl.static_range(STAGES):
        mbarrier.init(ready.index(s), count=1)
        mbarrier.init(empty.index(s), count=2)  # one arrival per consumer warpgroup

    gl.warp_specialize([
        (_producer, (a_desc, b_desc, as_desc, bs_desc, a_smem, b_smem, as_smem, bs_smem, ready, empty, M, N, k_tiles,
                     tiles, SCALES, STAGES, GROUP_M, PDL)),
        (_consumer, (a_smem, b_smem, as_smem, bs_smem, ready, empty, c_desc, c_top, a_scale_ptr, b_scale_ptr, bias_ptr,
                     M, N, k_tiles, tiles, stride_bs, 0, SCALES, HAS_BIAS, STAGES, GROUP_M, PDL)),
        (_consumer, (a_smem, b_smem, as_smem, bs_smem, ready, empty, c_desc, c_bottom, a_scale_ptr, b_scale_ptr,
                     bias_ptr, M, N, k_tiles, tiles, stride_bs, 1, SCALES, HAS_BIAS, STAGES, GROUP_M, PDL)),
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


@functools.cache
def _unswizzled_layout(bits: int) -> gl.NVMMASharedLayout:
    return gl.NVMMASharedLayout(0, bits, rank=2)


def _scale_descriptor(scale_t: torch.Tensor, groups: int, cols: int) -> TensorDescriptor:
    """A TMA descriptor loading ``[groups, cols]`` tiles of scales stored ``[K groups, M or N]``;
    unswizzled, since the consumers read them as vectors, not as MMA operands."""
    return TensorDescriptor.from_tensor(scale_t, [groups, cols], _unswizzled_layout(scale_t.element_size() * 8))


def mx_weight_scales(weight_scale: torch.Tensor) -> torch.Tensor:
    """MXFP8 weight scales ``[N, K/32]`` uint8 e8m0 -> ``[K/32, N]`` fp32 ``2**(e - 127)``, the layout
    :func:`mxfp8_gemm` reads (made once per layer: decoded here, the GEMM's threads load each
    column's multiplier instead of extracting and shifting bytes per 32-group)."""
    return e8m0.decode(weight_scale).t().contiguous()


_GL_ELEMENT = {torch.float8_e4m3fn: gl.float8e4nv, torch.int8: gl.int8}


def weight_descriptors(b: torch.Tensor, b_scale: torch.Tensor, scales: str = "block") -> tuple:
    """The TMA descriptors of a weight ``[N, K]`` (e4m3, or int8 for ``scales="rowwise"``; and for
    ``scales="mx"`` of its scales from :func:`mx_weight_scales`) for :func:`block_fp8_gemm`,
    :func:`mxfp8_gemm` or :func:`rowwise_gemm`; built once per layer: building descriptors costs
    microseconds of host time per call."""
    if scales != "mx":
        return _descriptor(b, _GL_ELEMENT[b.dtype], BLOCK), None
    return _descriptor(b, gl.float8e4nv, MX_BLOCK_N), _scale_descriptor(b_scale, BLOCK // 32, MX_BLOCK_N)


def _check_layout(what: str, a, a_scale, b, b_scale, scales: str) -> None:
    k, n = a.shape[1], b.shape[0]
    if scales == "rowwise":  # one fp32 per row of A and per row of B, read by the consumers directly
        layout_ok = (a_scale.numel() == a.shape[0] and b_scale.numel() == n and a_scale.is_contiguous()
                         and b_scale.is_contiguous() and a_scale.dtype == b_scale.dtype == torch.float32
                         and a.dtype == b.dtype)
    else:
        layout_ok = a_scale.stride(1) * a_scale.element_size() % 16 == 0 and a_scale.stride(0) == 1 \
            and b_scale.stride(1) == 1
    if scales == "mx":
        layout_ok &= b_scale.dtype == torch.float32 and b_scale.stride(0) * 4 % 16 == 0
    if k % K_ALIGN or n % N_ALIGN or a.stride(1) != 1 or b.stride(1) != 1 or not layout_ok:
        raise ValueError(f"{what} needs K % {K_ALIGN} == 0, N % {N_ALIGN} == 0, K-contiguous operands and "
                         + ("contiguous fp32 scales, one per row of A and of B, and operands of one dtype; "
                            if scales == "rowwise" else
                            "M-major activation scales and row-contiguous weight scales (fp32 for MX) whose rows "
                            "TMA reads (16-byte aligned strides); ")
                         + f"got a {tuple(a.shape)} {a.dtype} stride {a.stride()}, b {tuple(b.shape)} {b.dtype} "
                         f"stride {b.stride()}, a_scale {tuple(a_scale.shape)} stride {a_scale.stride()}, "
                         f"b_scale {tuple(b_scale.shape)} stride {b_scale.stride()}")


def rowwise_block_m(m: int, n: int, programs: int) -> int:
    """Output tile rows (128 or 256) for :func:`rowwise_gemm` over ``[m, n]`` on ``programs`` SMs:
    256 where the persistent grid's rounds of tiles, weighted by tile height, cost at most
    1 / :data:`TALL_TILE_GAIN` of 128's (a short last round wastes the taller tiles' gain)."""
    def rows_per_program(bm: int) -> int:
        return triton.cdiv(triton.cdiv(m, bm) * triton.cdiv(n, BLOCK), programs) * bm
    return 2 * BLOCK if rows_per_program(2 * BLOCK) * TALL_TILE_GAIN <= rows_per_program(BLOCK) else BLOCK


def _launch(a, a_scale, b, b_scale, scales: str, bias, out_dtype, stages, group_m, b_descs, after_producer: bool,
            block_m: int = BLOCK) -> torch.Tensor:
    m, k = a.shape
    n = b.shape[0]
    c = torch.empty((m, n), device=a.device, dtype=out_dtype)
    out_gl = gl.bfloat16 if out_dtype == torch.bfloat16 else gl.float16
    b_desc, bs_desc = b_descs or weight_descriptors(b, b_scale, scales)
    block_n = MX_BLOCK_N if scales == "mx" else BLOCK
    a_desc = _descriptor(a, _GL_ELEMENT[a.dtype], block_m)
    # rowwise scales are read by the consumers (no scale descriptors); block FP8 reads its one weight
    # scale per K-tile from global memory (as_desc stands in for bs_desc)
    as_desc = None if scales == "rowwise" else _scale_descriptor(a_scale.t(), BLOCK // 32 if scales == "mx" else 1,
                                                                  BLOCK)
    grid = (min(triton.cdiv(m, block_m) * triton.cdiv(n, block_n), _multiprocessors(a.device)),)
    pdl = after_producer and pdl_enabled(a.device, m, max_m=None)
    _wgmma_gemm_kernel[grid](
        a_desc, b_desc, _descriptor(c, out_gl, block_m // 2, block_n), as_desc, bs_desc or as_desc,
        a_scale, b_scale, bias if bias is not None else c, m, n, k, b_scale.stride(0),
        SCALES=scales, HAS_BIAS=bias is not None, STAGES=stages, GROUP_M=group_m,
        CONSUMER_REGS=CONSUMER_REGS, PDL=pdl, num_warps=PRODUCER_WARPS, launch_pdl=pdl,
    )
    return c


def block_fp8_gemm(a: torch.Tensor, a_scale: torch.Tensor, b: torch.Tensor, b_scale: torch.Tensor,
                   bias: torch.Tensor | None = None, out_dtype: torch.dtype = torch.bfloat16, *,
                   stages: int = STAGES, group_m: int = GROUP_M, b_descs: tuple | None = None,
                   after_producer: bool = False) -> torch.Tensor:
    """``(a * a_scale) @ (b * b_scale)^T (+ bias)`` with DeepSeek-V3 block scales, on Hopper.

    Args:
        a: ``[M, K]`` e4m3, K contiguous; ``K % 16 == 0``.
        a_scale: ``[M, ceil(K/128)]`` fp32 dequant multipliers per 1 x 128 group, M-major with a
            16-byte aligned stride (``stride == (1, M rounded up to 4)``, what
            ``quantize_per_group(..., m_major=True, tma_aligned=True)`` writes).
        b: ``[N, K]`` e4m3 weight, K contiguous; ``N % 8 == 0``.
        b_scale: ``[ceil(N/128), ceil(K/128)]`` fp32 dequant multipliers per 128 x 128 block, contiguous.
        bias: optional ``[N]``.
        out_dtype: bf16 or fp16.
        stages, group_m: launch options (shared-memory ring depth, tile grouping), for tuning sweeps.
        b_descs: ``weight_descriptors(b, b_scale)``, when the caller keeps them.
        after_producer: the kernel just before on the stream wrote ``a`` and ``a_scale`` and lets
            its dependents start early (the quantizers' ``pdl_any_m=True``): launch with PDL, so the
            launch and the prologue overlap it (sm_90, ``QLINEAR_PDL`` not ``0``; :mod:`.pdl`).

    Returns:
        ``[M, N]`` in ``out_dtype``.

    Raises:
        ValueError: operands whose layout TMA cannot read.
    """
    _check_layout("wgmma block FP8 GEMM", a, a_scale, b, b_scale, "block")
    return _launch(a, a_scale, b, b_scale, "block", bias, out_dtype, stages, group_m, b_descs, after_producer)


def mxfp8_gemm(a: torch.Tensor, a_scale: torch.Tensor, b: torch.Tensor, b_scale_t: torch.Tensor,
               bias: torch.Tensor | None = None, out_dtype: torch.dtype = torch.bfloat16, *,
               stages: int = STAGES, group_m: int = GROUP_M, b_descs: tuple | None = None,
               after_producer: bool = False) -> torch.Tensor:
    """``(a * a_scale) @ (b * b_scale)^T (+ bias)`` for MXFP8 (OCP MX v1.0: e4m3, e8m0 scale per 32
    along K) on both operands, on Hopper's FP8 tensor cores; each 32-deep product is scaled on its own.

    Args:
        a: ``[M, K]`` e4m3, K contiguous; ``K % 32 == 0``.
        a_scale: ``[M, K/32]`` uint8 e8m0 exponents, M-major with a 16-byte aligned stride (what
            ``quantize_per_group(x, 32, e8m0=True, m_major=True, tma_aligned=True)`` writes).
        b: ``[N, K]`` e4m3 weight, K contiguous; ``N % 8 == 0``.
        b_scale_t: ``[K/32, N]`` fp32 weight scales ``2**(e - 127)``, the ``[N, K/32]`` e8m0 scales
            decoded and transposed, contiguous (what :func:`mx_weight_scales` makes).
        bias, out_dtype, stages, group_m, after_producer: as :func:`block_fp8_gemm`.
        b_descs: ``weight_descriptors(b, b_scale_t, "mx")``, when the caller keeps them.

    Returns:
        ``[M, N]`` in ``out_dtype``.

    Raises:
        ValueError: operands whose layout TMA cannot read, or K not a multiple of 32.
    """
    if a.shape[1] % 32:
        raise ValueError(f"wgmma MXFP8 GEMM needs K % 32 == 0 (whole e8m0 groups), got K={a.shape[1]}")
    _check_layout("wgmma MXFP8 GEMM", a, a_scale, b, b_scale_t, "mx")
    return _launch(a, a_scale, b, b_scale_t, "mx", bias, out_dtype, stages, group_m, b_descs, after_producer)


def rowwise_gemm(a: torch.Tensor, a_scale: torch.Tensor, b: torch.Tensor, b_scale: torch.Tensor,
                 bias: torch.Tensor | None = None, out_dtype: torch.dtype = torch.bfloat16, *,
                 stages: int | None = None, group_m: int = GROUP_M, b_descs: tuple | None = None,
                 after_producer: bool = False, block_m: int | None = None) -> torch.Tensor:
    """``(a * a_scale) @ (b * b_scale)^T (+ bias)`` with per-token activation and per-channel weight
    scales (W8A8: INT8 with exact int32 sums on the tensor cores, or e4m3 with each K-tile's product
    added in fp32 on the CUDA cores), on Hopper; the two scales multiply the finished sum.

    Args:
        a: ``[M, K]`` int8 or e4m3, K contiguous; ``K % 16 == 0``.
        a_scale: ``[M]`` or ``[M, 1]`` fp32 dequant multipliers per token, contiguous.
        b: ``[N, K]`` weight of a's dtype, K contiguous; ``N % 8 == 0``.
        b_scale: ``[N]`` or ``[N, 1]`` fp32 dequant multipliers per output channel, contiguous.
        bias, out_dtype, group_m, after_producer: as :func:`block_fp8_gemm`.
        b_descs: ``weight_descriptors(b, b_scale, "rowwise")``, when the caller keeps them.
        block_m: output tile rows, 128 or 256 (INT8 only: each consumer warpgroup then owns 128
            rows, two wgmmas per K step on one B tile); None: :func:`rowwise_block_m` for INT8, 128
            for e4m3 (its fp32 sum and the product in flight fill the registers of 64 rows).
        stages: shared-memory ring depth; None: :data:`STAGES` for 128-row tiles,
            :data:`TALL_STAGES` for 256.

    Returns:
        ``[M, N]`` in ``out_dtype``.

    Raises:
        ValueError: operands whose layout TMA cannot read, scales of the wrong size or dtype,
            operands of two dtypes, or ``block_m`` not 128 or 256 (e4m3: not 128).
    """
    _check_layout("wgmma rowwise GEMM", a, a_scale, b, b_scale, "rowwise")
    tall_ok = a.dtype == torch.int8
    if block_m is None:
        block_m = rowwise_block_m(a.shape[0], b.shape[0], _multiprocessors(a.device)) if tall_ok else BLOCK
    if block_m not in ((BLOCK, 2 * BLOCK) if tall_ok else (BLOCK,)):
        raise ValueError(f"wgmma rowwise GEMM tiles are 128 rows (INT8: or 256), got block_m={block_m} "
                         f"for {a.dtype}")
    stages = stages or (STAGES if block_m == BLOCK else TALL_STAGES)
    return _launch(a, a_scale, b, b_scale, "rowwise", bias, out_dtype, stages, group_m, b_descs, after_producer,
                   block_m)
