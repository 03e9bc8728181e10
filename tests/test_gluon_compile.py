"""The Gluon kernels compiled for Hopper (sm_90a) on the CPU: what each public launcher would launch,
captured instead of launched, then compiled to SASS by Triton's bundled ptxas.

Gluon has no CPU interpreter, so without this the CPU suite never sees these kernels build. Each
compile is checked for what breaks on the device before any numbers do: the shared memory a
block asks for (a ring one stage too deep does not launch), spills to local memory, and the
instructions a launch option exists for (two wgmmas per warpgroup and K step with 256-row
tiles; ``griddepcontrol.wait`` in the producer and both consumers under PDL).
"""
from __future__ import annotations

import os
import re
import subprocess

import pytest
import torch

triton = pytest.importorskip("triton")

from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.experimental.gluon._runtime import GluonASTSource  # noqa: E402
from triton.runtime.jit import mangle_type  # noqa: E402

from qlinear.kernels.triton import e2m1_mma as e2m1  # noqa: E402
from qlinear.kernels.triton import wgmma_gemm as wgmma  # noqa: E402

WGMMA_KERNEL = wgmma._wgmma_gemm_kernel  # kept: the tests put a capture in the modules' place
E2M1_KERNEL = e2m1._e2m1_mma_kernel
HOPPER_SHARED_MEMORY = 227 * 1024  # the most one block may opt into on sm_90 (CUDA programming guide, H100)
HOPPER_SMS = 132
TOOLS = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin")


class _Capture:
    """Stands in for a Gluon kernel: ``kernel[grid](*args, **kwargs)`` records the launch."""

    def __init__(self):
        self.launches = []

    def __getitem__(self, grid):
        return lambda *args, **kwargs: self.launches.append((args, kwargs))


def _launched(monkeypatch, module, name: str, call) -> tuple[tuple, dict]:
    capture = _Capture()
    monkeypatch.setattr(module, name, capture)
    call()
    (launch,) = capture.launches
    return launch


def _compile(kernel, args: tuple, kwargs: dict):
    """Compile ``kernel`` for sm_90a with the signature and constexprs of one captured launch."""
    options = {key: kwargs.pop(key) for key in ("num_warps", "launch_pdl") if key in kwargs}
    signature, constexprs = {}, {}
    for param, value in zip(kernel.params, list(args) + [kwargs.pop(p.name) for p in kernel.params[len(args):]]):
        if param.is_constexpr or value is None:
            signature[param.name], constexprs[param.name] = "constexpr", value
        else:
            signature[param.name] = mangle_type(value)
    assert not kwargs, f"launch arguments the kernel does not take: {sorted(kwargs)}"
    source = GluonASTSource(fn=kernel, signature=signature, constexprs=constexprs, attrs={})
    return triton.compile(source, target=GPUTarget("cuda", 90, 32), options=options)


def _cuobjdump(compiled, tmp_path, flag: str) -> str:
    """Triton's bundled cuobjdump with ``flag`` on the compiled cubin."""
    tool = os.path.join(TOOLS, "cuobjdump")
    if not os.path.exists(tool):
        pytest.skip("triton's bundled cuobjdump is missing")
    cubin = tmp_path / "kernel.cubin"
    cubin.write_bytes(compiled.asm["cubin"])
    return subprocess.run([tool, flag, str(cubin)], capture_output=True, text=True, check=True).stdout


def _resources(compiled, tmp_path) -> dict[str, int]:
    """cuobjdump's resource usage of the compiled cubin: REG, STACK, LOCAL, SHARED (bytes)."""
    usage = _cuobjdump(compiled, tmp_path, "-res-usage")
    return {key: int(value) for key, value in re.findall(r"(REG|STACK|LOCAL|SHARED):(\d+)", usage)}


def _sass(compiled, tmp_path) -> str:
    return _cuobjdump(compiled, tmp_path, "-sass")


def _assert_fits_hopper(compiled, tmp_path) -> None:
    assert compiled.metadata.shared <= HOPPER_SHARED_MEMORY, compiled.metadata.shared
    usage = _resources(compiled, tmp_path)
    assert usage["STACK"] == 0 and usage["LOCAL"] == 0, f"spills to local memory: {usage}"


def _wgmma_count(compiled) -> int:
    return len(re.findall(r"\bwgmma\.mma_async\b", compiled.asm["ptx"]))


def _operands(dtype, m=512, n=256, k=512):
    a = torch.zeros(m, k, dtype=dtype)
    b = torch.zeros(n, k, dtype=dtype)
    return a, b


@pytest.fixture
def on_hopper(monkeypatch):
    """Launchers that ask the GPU for its SM count and PDL support get an H100/H200's answers."""
    monkeypatch.setattr(wgmma, "_multiprocessors", lambda device: HOPPER_SMS)
    monkeypatch.setattr(wgmma, "pdl_enabled", lambda device, m, max_m=None: True)


def test_int8_rowwise_gemm_tile_heights_build_within_hopper_limits(monkeypatch, tmp_path, on_hopper):
    a, b = _operands(torch.int8)
    counts = {}
    for block_m in (128, 256):
        launch = _launched(monkeypatch, wgmma, "_wgmma_gemm_kernel", lambda: wgmma.rowwise_gemm(
            a, torch.ones(a.shape[0]), b, torch.ones(b.shape[0]), block_m=block_m, after_producer=True))
        compiled = _compile(WGMMA_KERNEL, *launch)
        _assert_fits_hopper(compiled, tmp_path)
        assert compiled.asm["ptx"].count("griddepcontrol.wait") == 3  # producer and both consumers
        counts[block_m] = _wgmma_count(compiled)
    assert counts[256] == 2 * counts[128] > 0  # two m64 wgmmas per warpgroup and K step on one B tile


def test_e4m3_rowwise_gemm_sums_each_k_tile_in_fp32(monkeypatch, tmp_path, on_hopper):
    # Hopper's FP8 MMA adds into its accumulator with fewer bits than fp32: each K-tile's product
    # starts from zero (as in the block loop) and is added on the CUDA cores; its fp32 sum and the
    # products in flight leave no registers for 256-row tiles, so its tiles are 128 rows.
    a, b = _operands(torch.float8_e4m3fn)
    launch = _launched(monkeypatch, wgmma, "_wgmma_gemm_kernel", lambda: wgmma.rowwise_gemm(
        a, torch.ones(a.shape[0]), b, torch.ones(b.shape[0]), after_producer=True))
    assert launch[0][2].block_shape == [64, 128]  # c: 64 rows per warpgroup (block_m 128)
    compiled = _compile(WGMMA_KERNEL, *launch)
    _assert_fits_hopper(compiled, tmp_path)
    adds = len(re.findall(r"\bFADD\b", _sass(compiled, tmp_path)))
    assert adds >= 2 * 3 * 64, adds  # both warpgroups: 64 fp32 adds per product, three loop tails


def test_tall_tiles_ring_is_the_deepest_that_fits(monkeypatch, on_hopper):
    # 48 KB stages and two 32 KB output tiles: one stage more than TALL_STAGES would not launch
    a, b = _operands(torch.int8)
    shared = {}
    for stages in (wgmma.TALL_STAGES, wgmma.TALL_STAGES + 1):
        launch = _launched(monkeypatch, wgmma, "_wgmma_gemm_kernel", lambda: wgmma.rowwise_gemm(
            a, torch.ones(a.shape[0]), b, torch.ones(b.shape[0]), block_m=256, stages=stages))
        shared[stages] = _compile(WGMMA_KERNEL, *launch).metadata.shared
    assert shared[wgmma.TALL_STAGES] <= HOPPER_SHARED_MEMORY < shared[wgmma.TALL_STAGES + 1], shared


def _m_major(m: int, groups: int, dtype) -> torch.Tensor:
    """Activation scales laid out as ``quantize_per_group(..., m_major=True, tma_aligned=True)`` writes them."""
    return torch.zeros(groups, -(-m * dtype.itemsize // 16) * 16 // dtype.itemsize, dtype=dtype)[:, :m].t()


def test_block_and_mx_gemms_build_within_hopper_limits(monkeypatch, tmp_path, on_hopper):
    a, b = _operands(torch.float8_e4m3fn)
    m, k = a.shape
    for call in (
        lambda: wgmma.block_fp8_gemm(a, _m_major(m, k // 128, torch.float32), b, torch.ones(2, 4), after_producer=True),
        lambda: wgmma.mxfp8_gemm(a, _m_major(m, k // 32, torch.uint8), b, torch.ones(16, 256), after_producer=True),
    ):
        compiled = _compile(WGMMA_KERNEL, *_launched(monkeypatch, wgmma, "_wgmma_gemm_kernel", call))
        _assert_fits_hopper(compiled, tmp_path)
        assert compiled.asm["ptx"].count("griddepcontrol.wait") == 3


@pytest.mark.parametrize("mx", [False, True], ids=["nvfp4", "mxfp4"])
@pytest.mark.parametrize("m,m_tiles", [(1, 1), (16, 2)])
def test_e2m1_decode_gemm_builds_without_spills(monkeypatch, tmp_path, mx, m, m_tiles):
    n, k = 256, 1024
    x = torch.zeros(m, k, dtype=torch.bfloat16)
    w = torch.zeros(n, k // 2, dtype=torch.uint8)
    scales = torch.zeros(n, k // (32 if mx else 16), dtype=torch.uint8)
    config = e2m1.E2m1MmaConfig(4, 2, 1, m_tiles=m_tiles)  # 16 tokens, two row tiles per warp: as picked at 9..16
    launch = _launched(monkeypatch, e2m1, "_e2m1_mma_kernel", lambda: e2m1.e2m1_mma(
        x, w, scales, torch.ones(1), mx=mx, config=config))
    compiled = _compile(E2M1_KERNEL, *launch)
    _assert_fits_hopper(compiled, tmp_path)
    assert compiled.asm["ptx"].count("mma.sync.aligned.m16n8k16") > 0
