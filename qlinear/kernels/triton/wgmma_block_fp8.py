"""Block FP8 GEMM for Hopper in Gluon: async wgmma with the scale promotion off the tensor cores' path.

``C [M, N] = sum over K-tiles t of (A_t @ B_t^T) * a_scale[:, t] * b_scale[n // 128, t]`` for
e4m3 ``A [M, K]`` (1 x 128 activation groups, scales M-major ``[ceil(K/128), M]`` storage) and e4m3
``B [N, K]`` (128 x 128 weight blocks, scales ``[ceil(N/128), ceil(K/128)]``), the DeepSeek-V3
recipe. Each K-tile's product must be scaled before it joins the fp32 sum, so the tensor cores
would idle while the CUDA cores scale, if the product were awaited right after it was issued (what
Triton 3.6 compiles ``acc += tl.dot(a, b) * s`` to: ``wgmma.wait_group 0`` per K-tile). Here each
K-tile's wgmma goes into its own register accumulator and is issued *before* the previous tile's
product is awaited (``wgmma.wait_group 1``) and promoted, so the next product runs while the last
is scaled; operands stream through a ring of shared-memory stages filled by TMA.

Hopper only (``wgmma`` is sm_90a); 128 x 128 output tiles, 8 warps (two warpgroups of 64 rows).
TMA needs 16-byte aligned rows: ``K % 16 == 0`` and ``N % 8 == 0`` (bf16 output); ragged M, N and K
are otherwise handled by TMA's zero fill and clipped stores. The result does not depend on M
(fixed tiles, no split-K).
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
NUM_WARPS = 8
GROUP_M = 8  # output tiles sharing a weight column, launched together for L2 reuse
STAGES = 4  # shared-memory ring depth: 4 x 32 KB of operands
K_ALIGN, N_ALIGN = 16, 8  # TMA: rows of A/B (e4m3) and of C (bf16) must be 16-byte multiples


@gluon.jit
def _load(a_desc, b_desc, a_smem, b_smem, ready, t, k_tiles, off_m, off_n, STAGES: gl.constexpr):
    """Start the TMA loads of K-tile ``t`` (if it exists) into its stage of the ring."""
    if t < k_tiles:
        stage = t % STAGES
        k = t * a_desc.block_type.shape[1]
        mbarrier.expect(ready.index(stage), a_desc.block_type.nbytes + b_desc.block_type.nbytes)
        tma.async_copy_global_to_shared(a_desc, [off_m, k], ready.index(stage), a_smem.index(stage))
        tma.async_copy_global_to_shared(b_desc, [off_n, k], ready.index(stage), b_smem.index(stage))


@gluon.jit
def _issue(a_smem, b_smem, ready, t, into, STAGES: gl.constexpr):
    """Wait for K-tile ``t``'s operands and start its product into ``into`` (overwritten, not added to)."""
    stage = t % STAGES
    mbarrier.wait(ready.index(stage), (t // STAGES) & 1)
    return warpgroup_mma(a_smem.index(stage), b_smem.index(stage).permute((1, 0)), into, use_acc=False,
                         is_async=True)


@gluon.jit
def _tile_scale(a_scale_ptr, b_scale_ptr, rows, row_ok, block_n, t, stride_ask, stride_bsn):
    """Per-row multiplier of K-tile ``t``'s product: activation group scale x weight block scale."""
    a_scale = gl.load(a_scale_ptr + t * stride_ask + rows, mask=row_ok, other=0.0)
    return a_scale * gl.load(b_scale_ptr + block_n * stride_bsn + t)


@gluon.jit
def _block_fp8_kernel(a_desc, b_desc, c_desc, a_scale_ptr, b_scale_ptr, bias_ptr, M, N, K, stride_ask, stride_bsn,
                      HAS_BIAS: gl.constexpr, STAGES: gl.constexpr, GROUP_M: gl.constexpr,
                      num_warps: gl.constexpr):
    BM: gl.constexpr = c_desc.block_type.shape[0]
    BN: gl.constexpr = c_desc.block_type.shape[1]
    mma: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[num_warps, 1],
                                                  instr_shape=[16, BN, 32])

    # Grouped tile order: GROUP_M row-tiles walk the same weight columns together (L2 reuse).
    pid = gl.program_id(0)
    tiles_m = gl.cdiv(M, BM)
    per_group = GROUP_M * gl.cdiv(N, BN)
    first_m = (pid // per_group) * GROUP_M
    rows_in_group = gl.minimum(tiles_m - first_m, GROUP_M)
    off_m = (first_m + (pid % per_group) % rows_in_group) * BM
    block_n = (pid % per_group) // rows_in_group
    off_n = block_n * BN
    rows = off_m + gl.arange(0, BM, layout=gl.SliceLayout(1, mma))
    row_ok = rows < M
    k_tiles = gl.cdiv(K, a_desc.block_type.shape[1])

    a_smem = gl.allocate_shared_memory(a_desc.dtype, [STAGES] + a_desc.block_type.shape, a_desc.layout)
    b_smem = gl.allocate_shared_memory(b_desc.dtype, [STAGES] + b_desc.block_type.shape, b_desc.layout)
    ready = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    for s in gl.static_range(STAGES):
        mbarrier.init(ready.index(s), count=1)
    for s in gl.static_range(STAGES):
        _load(a_desc, b_desc, a_smem, b_smem, ready, s, k_tiles, off_m, off_n, STAGES)

    acc = gl.zeros([BM, BN], gl.float32, layout=mma)
    # Two product accumulators, x and y, take alternate K-tiles; the loop body is unrolled over a
    # pair so neither is ever copied while its wgmma is in flight (a copy makes ptxas serialize
    # every wgmma of the kernel, warning C7514).
    x = _issue(a_smem, b_smem, ready, 0, gl.zeros([BM, BN], gl.float32, layout=mma), STAGES)
    x_scale = _tile_scale(a_scale_ptr, b_scale_ptr, rows, row_ok, block_n, 0, stride_ask, stride_bsn)
    y = gl.zeros([BM, BN], gl.float32, layout=mma)
    y_scale = x_scale
    for pair in range(0, (k_tiles - 1) // 2):
        t = 1 + 2 * pair
        y = _issue(a_smem, b_smem, ready, t, y, STAGES)
        y_scale = _tile_scale(a_scale_ptr, b_scale_ptr, rows, row_ok, block_n, t, stride_ask, stride_bsn)
        x = warpgroup_mma_wait(num_outstanding=1, deps=(x,))
        acc += x * gl.expand_dims(x_scale, 1)
        # K-tile t-1's product is complete, so its stage is free: refill it STAGES tiles ahead.
        _load(a_desc, b_desc, a_smem, b_smem, ready, t - 1 + STAGES, k_tiles, off_m, off_n, STAGES)
        x = _issue(a_smem, b_smem, ready, t + 1, x, STAGES)
        x_scale = _tile_scale(a_scale_ptr, b_scale_ptr, rows, row_ok, block_n, t + 1, stride_ask, stride_bsn)
        y = warpgroup_mma_wait(num_outstanding=1, deps=(y,))
        acc += y * gl.expand_dims(y_scale, 1)
        _load(a_desc, b_desc, a_smem, b_smem, ready, t + STAGES, k_tiles, off_m, off_n, STAGES)
    if k_tiles % 2 == 0:  # one K-tile left after the pairs
        last = _issue(a_smem, b_smem, ready, k_tiles - 1, y, STAGES)
        last_scale = _tile_scale(a_scale_ptr, b_scale_ptr, rows, row_ok, block_n, k_tiles - 1, stride_ask,
                                 stride_bsn)
        done = warpgroup_mma_wait(num_outstanding=1, deps=(x,))
        acc += done * gl.expand_dims(x_scale, 1)
        last = warpgroup_mma_wait(num_outstanding=0, deps=(last,))
        acc += last * gl.expand_dims(last_scale, 1)
    else:
        done = warpgroup_mma_wait(num_outstanding=0, deps=(x,))
        acc += done * gl.expand_dims(x_scale, 1)
    for s in gl.static_range(STAGES):
        mbarrier.invalidate(ready.index(s))

    if HAS_BIAS:
        cols = off_n + gl.arange(0, BN, layout=gl.SliceLayout(0, mma))
        acc += gl.expand_dims(gl.load(bias_ptr + cols, mask=cols < N, other=0.0).to(gl.float32), 0)
    c_smem = gl.allocate_shared_memory(c_desc.dtype, c_desc.block_type.shape, c_desc.layout)
    c_smem.store(acc.to(c_desc.dtype))
    fence_async_shared()
    tma.async_copy_shared_to_global(c_desc, [off_m, off_n], c_smem)
    tma.store_wait(pendings=0)


@functools.cache
def _smem_layout(block: tuple[int, int], dtype) -> gl.NVMMASharedLayout:
    return gl.NVMMASharedLayout.get_default_for(list(block), dtype)


def _descriptor(t: torch.Tensor, dtype, rows: int = BLOCK) -> TensorDescriptor:
    return TensorDescriptor.from_tensor(t, [rows, BLOCK], _smem_layout((rows, BLOCK), dtype))


def weight_descriptor(b: torch.Tensor) -> TensorDescriptor:
    """The TMA descriptor of an e4m3 weight ``[N, K]`` for :func:`block_fp8_gemm` (built once per layer:
    building descriptors costs microseconds of host time per call)."""
    return _descriptor(b, gl.float8e4nv)


def block_fp8_gemm(a: torch.Tensor, a_scale: torch.Tensor, b: torch.Tensor, b_scale: torch.Tensor,
                   bias: torch.Tensor | None = None, out_dtype: torch.dtype = torch.bfloat16, *,
                   stages: int = STAGES, group_m: int = GROUP_M, block_m: int = BLOCK, num_warps: int = NUM_WARPS,
                   b_desc: TensorDescriptor | None = None) -> torch.Tensor:
    """``(a * a_scale) @ (b * b_scale)^T (+ bias)`` with DeepSeek-V3 block scales, on Hopper.

    Args:
        a: ``[M, K]`` e4m3, K contiguous; ``K % 16 == 0``.
        a_scale: ``[M, ceil(K/128)]`` fp32 dequant multipliers per 1 x 128 group, M-major
            (``stride(0) == 1``, what ``quantize_per_group(..., m_major=True)`` writes).
        b: ``[N, K]`` e4m3 weight, K contiguous; ``N % 8 == 0``.
        b_scale: ``[ceil(N/128), ceil(K/128)]`` fp32 dequant multipliers per 128 x 128 block, contiguous.
        bias: optional ``[N]``.
        out_dtype: bf16 or fp16.
        stages, group_m, block_m, num_warps: launch options (shared-memory ring depth, tile grouping,
            rows per tile and warps: 64 rows per warpgroup), for tuning sweeps.
        b_desc: ``weight_descriptor(b)``, when the caller keeps one.

    Returns:
        ``[M, N]`` in ``out_dtype``.

    Raises:
        ValueError: operands whose layout TMA cannot read.
    """
    m, k = a.shape
    n = b.shape[0]
    if (k % K_ALIGN or n % N_ALIGN or a.stride(1) != 1 or b.stride(1) != 1 or a_scale.stride(0) != 1
            or b_scale.stride(1) != 1):
        raise ValueError(f"wgmma block FP8 GEMM needs K % {K_ALIGN} == 0, N % {N_ALIGN} == 0, K-contiguous "
                         "operands, M-major activation scales and contiguous weight scales; got "
                         f"a {tuple(a.shape)} stride {a.stride()}, b {tuple(b.shape)} stride {b.stride()}, "
                         f"a_scale stride {a_scale.stride()}, b_scale stride {b_scale.stride()}")
    c = torch.empty((m, n), device=a.device, dtype=out_dtype)
    out_gl = gl.bfloat16 if out_dtype == torch.bfloat16 else gl.float16
    grid = (triton.cdiv(m, block_m) * triton.cdiv(n, BLOCK),)
    _block_fp8_kernel[grid](
        _descriptor(a, gl.float8e4nv, block_m), b_desc or weight_descriptor(b), _descriptor(c, out_gl, block_m),
        a_scale, b_scale, bias if bias is not None else c, m, n, k, a_scale.stride(1), b_scale.stride(0),
        HAS_BIAS=bias is not None, STAGES=stages, GROUP_M=group_m, num_warps=num_warps,
    )
    return c
