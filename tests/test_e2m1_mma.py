"""The Gluon e2m1 decode GEMM (qlinear/kernels/triton/e2m1_mma.py) on the CPU.

Gluon has no interpreter, so the kernel itself runs only in the GPU tests (test_gpu.py). Here its
two ideas are checked against the float64 reference: the inline PTX that turns a lane's 4 words
into 16 scaled bf16x2 MMA registers, run by a small interpreter of the 7 instructions it uses, and
the K permutation that pairs codes (p, p+4) of a word in one register, with the activation staged
in the same permuted order. Plus the host side: configs, selection, the errors it raises.
"""
import dataclasses

import numpy as np
import pytest
import torch

pytest.importorskip("triton.experimental.gluon")

from qlinear.formats import dequantize, quantize  # noqa: E402
from qlinear.kernels import Dispatch, GluonW4A16Kernel, LayerConfig, select_dispatch  # noqa: E402
from qlinear.kernels.triton.e2m1_mma import (  # noqa: E402
    E2m1MmaConfig, decode_ptx, e2m1_mma, fits_shared_memory, pick_e2m1_mma_config, slice_extent, token_tiles)
from qlinear.layers import QuantizedLinear  # noqa: E402
from qlinear.platform import CPU, Platform, simulated_cuda  # noqa: E402
from qlinear.schemes import SCHEMES  # noqa: E402

MASK32 = np.uint64(0xFFFFFFFF)


def _bf16_to_float(bits):
    """bf16 bit patterns (any integer array) -> float64 (via float32: same exponent range, exact)."""
    return ((np.asarray(bits, dtype=np.uint64) & np.uint64(0xFFFF)).astype(np.uint32) << np.uint32(16)).view(
        np.float32).astype(np.float64)


def _float_to_bf16(values):
    """float64 -> bf16 bit patterns, round to nearest even (through float32, exact for these values)."""
    bits = np.asarray(values, dtype=np.float32).view(np.uint32).astype(np.uint64)
    return (bits + np.uint64(0x7FFF) + ((bits >> np.uint64(16)) & np.uint64(1))) >> np.uint64(16)


def _prmt(a, b, selector: int):
    source = (a & MASK32) | ((b & MASK32) << np.uint64(32))
    out = np.zeros_like(source)
    for byte in range(4):
        pick = (selector >> (4 * byte)) & 0xF
        assert not pick & 8, "prmt sign-replicate mode is never used by the decode"
        out |= ((source >> np.uint64(8 * pick)) & np.uint64(0xFF)) << np.uint64(8 * byte)
    return out


def run_ptx(ptx: str, operands: dict[int, object]) -> dict[int, np.ndarray]:
    """Execute the decode PTX on arrays of 32-bit values (one lane per element): ``operands`` maps
    ``$n`` to its values; returns every ``$n``. bf16x2 FMAs are computed in float64 and must be exact."""
    regs = {f"${n}": np.asarray(v, dtype=np.uint64) & MASK32 for n, v in operands.items()}
    shape = np.broadcast(*regs.values()).shape

    def val(token):
        token = token.strip()
        return np.full(shape, int(token, 0), dtype=np.uint64) if token[0].isdigit() else regs[token]

    for statement in ptx.replace("{", ";").replace("}", ";").split(";"):
        statement = statement.strip()
        if not statement or statement.startswith(".reg"):
            continue
        op, args = statement.split(None, 1)
        dst, *src = [a.strip() for a in args.split(",")]
        if op == "mov.b32":
            result = val(src[0])
        elif op == "and.b32":
            result = val(src[0]) & val(src[1])
        elif op == "mul.lo.u32":
            result = val(src[0]) * val(src[1])
        elif op == "shr.b32":
            result = val(src[0]) >> val(src[1])
        elif op == "shl.b32":
            result = val(src[0]) << val(src[1])
        elif op == "prmt.b32":
            result = _prmt(val(src[0]), val(src[1]), int(src[2], 0))
        elif op == "fma.rn.bf16x2":
            a, b, c = (val(t) for t in src)
            halves = []
            for shift in (np.uint64(0), np.uint64(16)):
                exact = _bf16_to_float(a >> shift) * _bf16_to_float(b >> shift) + _bf16_to_float(c >> shift)
                rounded = _float_to_bf16(exact)
                assert np.array_equal(_bf16_to_float(rounded), exact), "a bf16 product was not exact"
                halves.append(rounded)
            result = halves[0] | (halves[1] << np.uint64(16))
        else:
            raise AssertionError(f"instruction the interpreter does not know: {op}")
        regs[dst] = np.broadcast_to(result, shape) & MASK32
    return {int(k[1:]): v for k, v in regs.items() if k.startswith("$")}


def _halves(register) -> tuple[np.ndarray, np.ndarray]:
    return _bf16_to_float(register), _bf16_to_float(np.asarray(register) >> np.uint64(16))


def _lane_registers(packed_row: torch.Tensor, scale_row: torch.Tensor, chunk: int, lane: int, mx: bool,
                    scale_bias: int) -> list[list[float]]:
    """The 16 decoded registers of one lane for one row and chunk: ``[register 4p + i] = (lo, hi)``."""
    base = chunk * 64 + lane * 16  # bytes: 4 words of 8 codes
    words = [int.from_bytes(bytes(packed_row[base + 4 * i: base + 4 * i + 4].tolist()), "little") for i in range(4)]
    operands = {16 + 2 * i + d: words[i] for i in range(4) for d in (0, 1)}
    if mx:
        group = (chunk * 128 + lane * 32) // 32
        field = max(int(scale_row[group]) + scale_bias, 0)
        operands.update({24 + j: field for j in range(8)})
    else:
        group = (chunk * 128 + lane * 32) // 16
        pair = int(scale_row[group]) | int(scale_row[group + 1]) << 8
        operands.update({24 + j: pair | pair << 16 for j in range(4)})
    out = run_ptx(decode_ptx(mx), operands)
    return [[float(h) for h in _halves(out[r])] for r in range(16)]


def _actual(k: int) -> int:
    """The code position within its chunk of logical MMA position k (the module docstring's map):
    k = 32i + 16u + 8b + 2t + v holds code 32t + 8i + 4v + 2u + b."""
    i, u, b, t, v = k >> 5 & 3, k >> 4 & 1, k >> 3 & 1, k >> 1 & 3, k & 1
    return 32 * t + 8 * i + 4 * v + 2 * u + b


def _emulate(layer, x: torch.Tensor) -> torch.Tensor:
    """The kernel's data flow in float64: A [N, K] in logical order from the decoded registers,
    x staged in the same order, their product times post_scale."""
    lay = layer.kernel.layout
    mx = layer.scheme.weight.scale_dtype == "e8m0"
    scales = layer.weight_scale.view(torch.uint8) if layer.weight_scale.dtype == torch.float8_e4m3fn \
        else layer.weight_scale
    n, k = layer.out_features, layer.in_features
    a = torch.zeros(n, k, dtype=torch.float64)
    for r in range(n):
        for chunk in range(k // 128):
            for lane in range(4):
                regs = _lane_registers(layer.weight[r], scales[r], chunk, lane, mx, lay.scale_bias)
                for i in range(4):
                    for p in range(4):
                        u, b = p >> 1, p & 1
                        for v in (0, 1):
                            a[r, chunk * 128 + 32 * i + 16 * u + 8 * b + 2 * lane + v] = regs[4 * p + i][v]
    order = torch.tensor([c * 128 + _actual(j) for c in range(k // 128) for j in range(128)])
    return (x.double()[:, order] @ a.t()) * float(lay.post_scale)


@pytest.mark.parametrize("name", ["nvfp4_a16", "mxfp4_a16"])
def test_decode_ptx_and_k_permutation_reproduce_the_reference(name):
    scheme = SCHEMES[name]
    g = torch.Generator().manual_seed(7)
    w = torch.randn(3, 256, generator=g) * torch.logspace(-3, 1, 256).reshape(1, -1)  # groups of many binades
    qw = quantize(w, scheme.weight)
    layer = QuantizedLinear(qw, None, scheme, Dispatch.single(GluonW4A16Kernel), "emulated")
    x = torch.randn(5, 256, generator=g).to(torch.bfloat16)
    ref = x.double() @ dequantize(qw, torch.float64).t()
    # every in-register product is exact (the interpreter asserts it), so only fp64 summation order differs
    torch.testing.assert_close(_emulate(layer, x), ref, rtol=1e-12, atol=1e-12 * float(ref.abs().max()))


def test_decode_ptx_gives_every_code_pair_and_extreme_scales_exactly():
    # every pair of codes (p, p+4) at every nibble position p of a word, both scale groups of a lane:
    # e4m3 scales from the subnormal 2**-9 to 448; MX exponent fields across the range prepare allows
    e2m1 = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0] + [-v for v in (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)])
    lo, hi = (c.ravel() for c in np.meshgrid(np.arange(16), np.arange(16)))
    for p in range(4):
        word = (lo.astype(np.uint64) << np.uint64(4 * p)) | (hi.astype(np.uint64) << np.uint64(4 * p + 16))
        for s0, s1 in ((0x01, 0x7E), (0x38, 0x12)):  # 2**-9, 448; 1.0, 2**-5 * 1.25
            out = run_ptx(decode_ptx(False), {**{16 + j: word for j in range(8)},
                                              **{24 + j: (s0 | s1 << 8) * 0x10001 for j in range(4)}})
            for i in range(4):
                scale = float(torch.tensor([s0 if i < 2 else s1], dtype=torch.uint8).view(torch.float8_e4m3fn))
                got_lo, got_hi = _halves(out[4 * p + i])
                assert np.array_equal(got_lo, e2m1[lo] * scale * 2**-8) and np.array_equal(got_hi, e2m1[hi] * scale * 2**-8)
        for field in (128, 200, 254):  # the e8m0 factor's bf16 exponent field (e8m0 + scale_bias)
            out = run_ptx(decode_ptx(True), {**{16 + j: word for j in range(8)}, **{24 + j: field for j in range(8)}})
            got_lo, got_hi = _halves(out[4 * p])
            factor = 2.0 ** (field - 127 - 126)
            assert np.array_equal(got_lo, e2m1[lo] * factor) and np.array_equal(got_hi, e2m1[hi] * factor)


def test_configs_fit_and_split_k_follows_the_sweeps():
    for n, k in [(4096, 4096), (14336, 4096), (4096, 14336), (28672, 4096), (576, 1536), (192, 576), (100, 224)]:
        for m in (1, 7, 16, 33, 64):
            cfg = pick_e2m1_mma_config(n, k, m)
            assert fits_shared_memory(k, m, cfg) and slice_extent(k, cfg) % (128 * cfg.chunks) == 0
            assert cfg.chunks == (2 if m <= 16 and k % 256 == 0 else 1)
    # the H200 sweep's best: ~1024 staged codes at 8 token columns, 512 at 16 ...
    assert pick_e2m1_mma_config(28672, 4096, 1) == E2m1MmaConfig(4, 2, 4)
    assert pick_e2m1_mma_config(28672, 4096, 16) == E2m1MmaConfig(4, 2, 8, m_tiles=2)
    assert pick_e2m1_mma_config(4096, 14336, 8) == E2m1MmaConfig(4, 2, 14)
    # ... unless the grid would have fewer than 4 programs per SM, or the last slice sum more than 32 KB
    assert pick_e2m1_mma_config(4096, 4096, 1) == E2m1MmaConfig(4, 2, 8)
    # 9..16 tokens: two MMA row tiles per warp where 2 programs per SM remain, the capped split doubled
    assert pick_e2m1_mma_config(4096, 14336, 16) == E2m1MmaConfig(4, 2, 16, m_tiles=2)
    assert pick_e2m1_mma_config(14336, 4096, 16) == E2m1MmaConfig(4, 2, 8, m_tiles=2)
    assert pick_e2m1_mma_config(4096, 4096, 16) == E2m1MmaConfig(4, 2, 8)  # 256 programs: one tile
    assert all(pick_e2m1_mma_config(n, k, m).m_tiles == 1 for n, k in [(4096, 4096), (28672, 4096)]
               for m in (1, 8, 33, 64))
    # one config per MMA column tile: the layer picks with 8 * tiles tokens
    assert all(pick_e2m1_mma_config(14336, 4096, m) == pick_e2m1_mma_config(14336, 4096, 8) for m in range(1, 9))
    assert [token_tiles(m) for m in (1, 8, 9, 16, 17, 33, 64)] == [1, 1, 2, 2, 4, 8, 8]
    assert slice_extent(576, E2m1MmaConfig(4, 1, 2)) == 384  # two slices of 3 and 1.5 chunks


def test_e2m1_mma_refuses_what_it_cannot_run():
    w = torch.zeros(64, 128, dtype=torch.uint8)
    s = torch.zeros(64, 16, dtype=torch.uint8)
    one = torch.ones(1)
    with pytest.raises(ValueError, match="at most 64 tokens"):
        e2m1_mma(torch.zeros(65, 256), w, s, one, mx=False, config=E2m1MmaConfig())
    with pytest.raises(ValueError, match="K % 32"):
        e2m1_mma(torch.zeros(1, 240), torch.zeros(64, 120, dtype=torch.uint8), s, one, mx=False, config=E2m1MmaConfig())
    with pytest.raises(ValueError, match="shared memory"):
        e2m1_mma(torch.zeros(64, 8192), torch.zeros(64, 4096, dtype=torch.uint8), torch.zeros(64, 512, dtype=torch.uint8),
                 one, mx=False, config=E2m1MmaConfig(4, 2, 1))


def test_gluon_w4a16_selection_is_decode_only_and_says_why():
    nv = LayerConfig(SCHEMES["nvfp4_a16"], 4096, 4096)
    assert GluonW4A16Kernel.is_supported(simulated_cuda(80))[0]
    assert not GluonW4A16Kernel.is_supported(CPU)[0]
    assert "sm_80+" in GluonW4A16Kernel.is_supported(simulated_cuda(75))[1]
    ok, reason = GluonW4A16Kernel.can_implement(dataclasses.replace(nv, min_m=65, max_m=1024))
    assert not ok and "decode sizes only" in reason
    assert GluonW4A16Kernel.can_implement(dataclasses.replace(nv, min_m=2, max_m=16))[0]
    assert not GluonW4A16Kernel.can_implement(LayerConfig(SCHEMES["mxfp8"], 4096, 4096, min_m=2, max_m=16))[0]
    w4a4 = GluonW4A16Kernel.deviation(LayerConfig(SCHEMES["nvfp4"], 64, 256))
    assert "skipping" in w4a4 and "e2m1" in w4a4


@pytest.mark.parametrize("name", ["nvfp4_a16", "mxfp4_a16", "nvfp4"])
def test_h200_defaults_send_decode_up_to_16_tokens_to_gluon_w4a16(tmp_path, monkeypatch, name):
    from qlinear import tuning

    monkeypatch.setenv("QLINEAR_TUNE_CACHE", str(tmp_path / "none.json"))  # no measured cache
    h200 = Platform("cuda", 90, "NVIDIA H200")
    cfg = LayerConfig(SCHEMES[name], 4096, 4096)
    routes = select_dispatch(cfg, h200, preferred=tuning.tuned_choices(h200, cfg)).routes
    assert [r.selection.kernel.name for r in routes] == [
        "gluon_w4a16", "gluon_w4a16", "triton_w4a16", "dequant_cublas", "dequant_cublas"]
    assert routes[0].selection.measured and routes[1].selection.measured and not routes[2].selection.measured
    # unmeasured GPUs keep the static order: the Triton kernel for every decode bucket
    assert [r.selection.kernel.name for r in select_dispatch(cfg, simulated_cuda(90)).routes][:3] == ["triton_w4a16"] * 3
