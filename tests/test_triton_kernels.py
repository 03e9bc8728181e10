"""Triton kernels against the float64 reference. On the CPU they run under TRITON_INTERPRET=1
(set in conftest) at small sizes; on a GPU the same tests run compiled."""
import pytest
import torch

triton = pytest.importorskip("triton")

from qlinear.formats import quantize  # noqa: E402
from qlinear.kernels import Dispatch, TritonFp8BlockKernel, TritonFp8RowwiseKernel, TritonInt8Kernel  # noqa: E402
from qlinear.kernels.triton.act_quant import quantize_per_group, quantize_per_token, silu_mul_quantize_per_token  # noqa: E402
from qlinear.schemes import SCHEMES  # noqa: E402

from .test_kernels import assert_close_to_reference, reference  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
KERNELS = [("fp8_per_block", TritonFp8BlockKernel), ("fp8_per_channel", TritonFp8RowwiseKernel),
           ("int8_per_channel", TritonInt8Kernel)]


def _x(m, k, seed=0, dtype=torch.bfloat16):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(m, k, generator=g) * 3).to(dtype).to(DEVICE)


def test_int8_activation_rounds_ties_to_even_and_saturates():
    # amax 127 gives scale 127 / 127 = 1 and inverse 1: the codes are the values rounded, ties to even
    row = [0.5, 1.5, 2.5, -0.5, -2.5, -3.5, 126.5, -126.5, 3.25, -127.0, 127.0, 0.0]
    x = torch.tensor([row, [2 * v for v in row]], dtype=torch.bfloat16, device=DEVICE)
    q, s = quantize_per_token(x, torch.int8)
    assert s.flatten().tolist() == [1.0, 2.0]
    expected = [0, 2, 2, 0, -2, -4, 126, -126, 3, -127, 127, 0]
    assert q[0].tolist() == expected and q[1].tolist() == expected
    # silu(32) rounds to 32 in bf16, so h = 32 * (x / 32) = x exactly
    gated, gated_scale = silu_mul_quantize_per_token(torch.full_like(x, 32.0), x / 32, torch.int8)
    assert gated.tolist() == [expected, expected] and torch.equal(gated_scale, s)


@pytest.mark.parametrize("m,k", [(1, 200), (7, 576), (33, 1536), (3, 16500)])  # the last: two-pass rows
def test_activation_quantization_is_bit_identical_to_formats(m, k):
    x = _x(m, k)
    for dtype, spec in [(torch.float8_e4m3fn, SCHEMES["fp8_per_channel"].activation),
                        (torch.int8, SCHEMES["int8_per_channel"].activation)]:
        q, s = quantize_per_token(x, dtype)
        ref = quantize(x, spec)
        assert torch.equal(q.view(torch.uint8), ref.data.view(torch.uint8)) and torch.equal(s, ref.scale)
    for name, group, e8m0, per_16_bytes in [("fp8_per_block", 128, False, 4), ("mxfp8", 32, True, 16)]:
        if k % group:
            continue
        ref = quantize(x, SCHEMES[name].activation)
        for m_major, tma_aligned in [(False, False), (True, False), (True, True)]:
            q, s = quantize_per_group(x, group, m_major=m_major, tma_aligned=tma_aligned, e8m0=e8m0)
            assert torch.equal(q.view(torch.uint8), ref.data.view(torch.uint8)) and torch.equal(s, ref.scale)
            m_stride = -(-m // per_16_bytes) * per_16_bytes if tma_aligned else m
            assert s.stride() == ((1, m_stride) if m_major else (s.shape[1], 1))
    with pytest.raises(ValueError, match="m_major=True"):
        quantize_per_group(x, 128, tma_aligned=True)


def test_e4m3_rounding_carries_into_the_exponent():
    # 7.96 rounds up to 8.0 (a new binade): the case the interpreter's own cast gets wrong.
    x = torch.tensor([[7.96, -124.2, 0.0013, 448.0] + [0.0] * 124], device=DEVICE)
    q, s = quantize_per_group(x * 1.0, 128)
    assert q.float()[0, :4].tolist() == quantize(x, SCHEMES["fp8_per_block"].activation).data.float()[0, :4].tolist()


def _layer(name, kernel, n, k, seed=1):
    from qlinear.layers import QuantizedLinear

    g = torch.Generator().manual_seed(seed)
    w, b = torch.randn(n, k, generator=g).to(DEVICE), torch.randn(n, generator=g).to(DEVICE)
    qw = quantize(w, SCHEMES[name].weight)
    return QuantizedLinear(qw, b, SCHEMES[name], Dispatch.single(kernel), "t"), qw, b


@pytest.mark.parametrize("name,kernel", KERNELS, ids=[f"{n}-{k.name}" for n, k in KERNELS])
@pytest.mark.parametrize("n,k", [(64, 256), (100, 200)])
def test_triton_kernels_match_reference(name, kernel, n, k):
    layer, qw, b = _layer(name, kernel, n, k)
    for m in (1, 7, 16, 83):
        x = _x(m, k, seed=m)
        y = layer(x)
        assert y.dtype == x.dtype and y.shape == (m, n)
        assert_close_to_reference(y, reference(SCHEMES[name], qw, b, x), f"{kernel.name} {name} M={m} {n}x{k}")


def test_split_k_and_swapped_decode_paths_match_reference():
    from qlinear.kernels.triton.scaled_gemm import GemmConfig, scaled_gemm

    name = "fp8_per_block"
    _, qw, _ = _layer(name, TritonFp8BlockKernel, 64, 640)
    x = _x(3, 640, dtype=torch.float32)
    b = torch.randn(64, device=DEVICE)
    ref = reference(SCHEMES[name], qw, b, x)
    for split, swap, tma in [(1, False, False), (2, False, False), (5, False, False), (1, True, False), (3, True, False),
                             (1, True, True), (3, True, True)]:
        cfg = GemmConfig(16, 32, 128, group_m=1, split_k=split, tma=tma)
        y = scaled_gemm(x, qw.data, None, qw.scale, a_mode="group", b_mode="block", config=cfg,
                        out_dtype=torch.float32, bias=b, quant_a=True, swap_ab=swap)
        assert_close_to_reference(y, ref, f"split_k={split} swap_ab={swap} tma={tma}")
        again = scaled_gemm(x, qw.data, None, qw.scale, a_mode="group", b_mode="block", config=cfg,
                            out_dtype=torch.float32, bias=b, quant_a=True, swap_ab=swap)
        assert torch.equal(y, again), "split-K slices are summed in a fixed order: repeatable bits"
    from qlinear.kernels.triton.split_k import _counters

    assert all(int(c.abs().sum()) == 0 for c in _counters.values()), "each launch leaves its counters at zero"


# --- weight-only (W4A16, W8A16) and MXFP8 kernels -------------------------------------------------

from qlinear.kernels import TritonMxfp8Kernel, TritonW4A16Kernel, TritonW8A16Kernel  # noqa: E402
from qlinear.kernels import DequantMMKernel  # noqa: E402
from qlinear.kernels.triton.dequant_gemm import MXFP4, NVFP4, DequantConfig, dequant_gemm, dequantize_weight  # noqa: E402
from qlinear.kernels.triton.gemv import GemvConfig, weight_only_gemv  # noqa: E402

WEIGHT_ONLY = [("nvfp4_a16", TritonW4A16Kernel), ("mxfp4_a16", TritonW4A16Kernel), ("nvfp4", TritonW4A16Kernel),
               ("mxfp8", TritonW8A16Kernel), ("fp8_a16", TritonW8A16Kernel), ("mxfp8", TritonMxfp8Kernel),
               ("nvfp4_a16", DequantMMKernel), ("mxfp4_a16", DequantMMKernel), ("mxfp8", DequantMMKernel),
               ("fp8_a16", DequantMMKernel)]
WEIGHT_ONLY_IDS = [f"{n}-{k.name}" for n, k in WEIGHT_ONLY]


def computed_scheme(name, kernel):
    """The scheme a kernel really computes: a kernel that skips the activation quantization (and says
    so in ``deviation``) is checked against the weight-only reference."""
    import dataclasses

    from qlinear.kernels import LayerConfig

    scheme = SCHEMES[name]
    if kernel.deviation(LayerConfig(scheme, 64, 256)):
        return dataclasses.replace(scheme, activation=None)
    return scheme


@pytest.mark.parametrize("name,kernel", WEIGHT_ONLY, ids=WEIGHT_ONLY_IDS)
@pytest.mark.parametrize("n,k", [(64, 256), (100, 192)])
def test_weight_only_and_mx_kernels_match_reference(name, kernel, n, k):
    layer, qw, b = _layer(name, kernel, n, k)
    for m in (1, 7, 16, 83):
        x = _x(m, k, seed=m)
        y = layer(x)
        assert y.dtype == x.dtype and y.shape == (m, n)
        ref = reference(computed_scheme(name, kernel), qw, b, x)
        assert_close_to_reference(y, ref, f"{kernel.name} {name} M={m} {n}x{k}")


def test_w4a4_on_the_weight_only_kernel_says_it_skips_activation_quantization():
    from qlinear.kernels import LayerConfig

    note = TritonW4A16Kernel.deviation(LayerConfig(SCHEMES["nvfp4"], 64, 256))
    assert "skipping" in note and "e2m1" in note
    assert TritonW4A16Kernel.deviation(LayerConfig(SCHEMES["nvfp4_a16"], 64, 256)) == ""


def every_e2m1_code_weight(name, n, k):
    """An NVFP4/MXFP4 ``[n, k]`` weight (k a multiple of 512) whose rows each hold all 256 byte
    values (every pair of codes, both signs, +-0), shifted per row, with the scale range's ends:
    NVFP4 e4m3 scales from the subnormal 2**-9 to 448, MXFP4 scales 2**-20 .. 2**4."""
    from qlinear.formats.quantized import QuantizedTensor

    scheme = SCHEMES[name]
    packed = torch.arange(256, dtype=torch.int32).repeat(n, k // 512).to(torch.uint8)
    for r in range(n):
        packed[r] = packed[r].roll(37 * r)
    groups = k // scheme.weight.group_size
    if scheme.weight.scale_dtype == "e4m3":
        levels = torch.tensor([2.0**-9, 2.0**-7 * 1.375, 0.1, 1.0, 7.5, 100.0, 240.0, 448.0])
        scale = levels[torch.arange(n * groups) % 8].reshape(n, groups).to(torch.float8_e4m3fn)
        return QuantizedTensor(packed, scale, scheme.weight, (n, k), global_scale=torch.tensor(3.0e-3))
    scale = (torch.arange(n * groups) % 25 + 127 - 20).reshape(n, groups).to(torch.uint8)
    return QuantizedTensor(packed, scale, scheme.weight, (n, k))


@pytest.mark.parametrize("fmt,name", [(NVFP4, "nvfp4_a16"), (MXFP4, "mxfp4_a16")])
def test_every_e2m1_code_and_extreme_scales_dequantize_exactly(fmt, name):
    # x = identity picks single weights, so the output is the dequantized weight itself.
    from qlinear.formats import dequantize
    from qlinear.layers import QuantizedLinear

    scheme = SCHEMES[name]
    n, k = 8, 512
    qw = every_e2m1_code_weight(name, n, k)
    layer = QuantizedLinear(qw.to(DEVICE), None, scheme, Dispatch.single(TritonW4A16Kernel), "codes")
    kernel = layer.kernel
    eye = torch.eye(k, dtype=torch.bfloat16, device=DEVICE)
    lay = kernel.layout
    expect = dequantize(qw, torch.float64)
    y = dequant_gemm(eye, layer.weight, layer.weight_scale, lay.post_scale, wfmt=lay.wfmt, group=lay.group,
                     config=DequantConfig(32, 16, 128), scale_bias=lay.scale_bias, out_dtype=torch.float32)
    torch.testing.assert_close(y.double().cpu(), expect.t(), rtol=2**-22, atol=0)
    # the decode GEMV, one token at a time: x = e_j picks column j (every nibble position of a word,
    # both words of an NVFP4 group, the last group)
    for j in [*range(16), 255, 256, k - 1]:
        y = weight_only_gemv(eye[j:j + 1], layer.weight, layer.weight_scale, lay.post_scale, wfmt=lay.wfmt,
                      scale_bias=lay.scale_bias, config=GemvConfig(8, 16, 2), out_dtype=torch.float32)
        torch.testing.assert_close(y[0].double().cpu(), expect[:, j], rtol=2**-22, atol=0)
    # the prefill path's bf16 copy holds the same values before the post scale
    w16 = dequantize_weight(layer.weight, layer.weight_scale, k, wfmt=lay.wfmt, group=lay.group,
                            scale_bias=lay.scale_bias)
    torch.testing.assert_close((w16.double() * lay.post_scale.double()).cpu(), expect, rtol=2**-22, atol=0)


@pytest.mark.parametrize("name", ["nvfp4_a16", "mxfp4_a16"])
@pytest.mark.parametrize("n,k", [(64, 512), (100, 576)])  # K=576: 72 words, a masked last step
def test_e2m1_decode_gemv_matches_reference(name, n, k):
    layer, qw, b = _layer(name, TritonW4A16Kernel, n, k)
    lay = layer.kernel.layout
    x = _x(1, k, seed=5) * 3.0
    ref = reference(SCHEMES[name], qw, b, x)
    for cfg in (GemvConfig(32, 16, 1), GemvConfig(16, 32, 2), GemvConfig(64, 8, 3)):
        y = weight_only_gemv(x, layer.weight, layer.weight_scale, lay.post_scale, wfmt=lay.wfmt, scale_bias=lay.scale_bias,
                      config=cfg, bias=b, out_dtype=torch.float32)
        assert y.shape == (1, n)
        assert_close_to_reference(y, ref, f"gemv {name} {n}x{k} {cfg.key()}")
    # the layer routes one token to it (and the split-K counters are left at zero)
    assert layer.kernel.gemv_config.split_k >= 1
    assert_close_to_reference(layer(x), ref, f"layer {name} M=1")


@pytest.mark.parametrize("name", ["mxfp8_a16", "fp8_a16"])
@pytest.mark.parametrize("n,k", [(64, 512), (100, 544)])  # K=544: 136 words, a masked last step
def test_e4m3_decode_gemv_matches_reference(name, n, k):
    layer, qw, b = _layer(name, TritonW8A16Kernel, n, k)
    lay = layer.kernel.layout
    per_channel = name == "fp8_a16"
    x = _x(1, k, seed=6) * 3.0
    ref = reference(SCHEMES[name], qw, b, x)
    for cfg in (GemvConfig(32, 16, 1), GemvConfig(16, 64, 2), GemvConfig(64, 8, 3)):
        y = weight_only_gemv(x, layer.weight, None if per_channel else layer.weight_scale, lay.post_scale,
                             wfmt=lay.wfmt, scale_bias=lay.scale_bias, config=cfg, bias=b, out_dtype=torch.float32,
                             channel_scale=layer.weight_scale if per_channel else None)
        assert_close_to_reference(y, ref, f"gemv {name} {n}x{k} {cfg.key()}")
    assert_close_to_reference(layer(x), ref, f"layer {name} M=1")


def test_e4m3_gemv_config_takes_wider_steps_for_mxfp8_down_projections():
    from qlinear.kernels.triton.dequant_configs import pick_gemv_config
    from qlinear.kernels.triton.dequant_gemm import FP8_CHANNEL, MXFP8

    # measured on an H200 (bench/results/h200_issue4_gemv_e4m3_ab.txt): MXFP8 at K >= 3N ran faster with
    # 32 x 128-word steps; per-channel e4m3 there, and MXFP8 elsewhere, kept 64 x 64
    assert pick_gemv_config(4096, 14336, MXFP8) == GemvConfig(32, 128, 4)
    assert pick_gemv_config(4096, 14336, FP8_CHANNEL) == GemvConfig(64, 64, 4)
    assert pick_gemv_config(14336, 4096, MXFP8) == GemvConfig(64, 64, 2)
    assert pick_gemv_config(28672, 4096, MXFP8) == GemvConfig(64, 64, 1)
    assert pick_gemv_config(4096, 4096, MXFP8) == GemvConfig(64, 64, 4)


def test_every_e4m3_byte_and_extreme_mx_scales_through_the_gemv_exactly():
    # every non-NaN e4m3 byte (both signs, subnormals, +-0) in each row, MX scales 2**-20 .. 2**4;
    # x = e_j picks column j, so the output is the dequantized weight itself
    from qlinear.formats import dequantize
    from qlinear.formats.quantized import QuantizedTensor
    from qlinear.layers import QuantizedLinear

    scheme = SCHEMES["mxfp8_a16"]
    n, k = 4, 256
    codes = torch.tensor([c for c in range(256) if c & 0x7F != 0x7F] + [0, 0x80], dtype=torch.uint8)
    data = torch.stack([codes.roll(61 * r) for r in range(n)]).view(torch.float8_e4m3fn)
    scale = (torch.arange(n * k // 32) % 25 + 127 - 20).reshape(n, k // 32).to(torch.uint8)
    qw = QuantizedTensor(data, scale, scheme.weight, (n, k))
    layer = QuantizedLinear(qw.to(DEVICE), None, scheme, Dispatch.single(TritonW8A16Kernel), "bytes")
    lay = layer.kernel.layout
    expect = dequantize(qw, torch.float64)
    eye = torch.eye(k, dtype=torch.bfloat16, device=DEVICE)
    for j in [*range(8), 31, 32, 200, k - 1]:
        y = weight_only_gemv(eye[j:j + 1], layer.weight, layer.weight_scale, lay.post_scale, wfmt=lay.wfmt,
                             scale_bias=lay.scale_bias, config=GemvConfig(4, 16, 2), out_dtype=torch.float32)
        torch.testing.assert_close(y[0].double().cpu(), expect[:, j], rtol=2**-22, atol=0)


def test_e2m1_decode_gemv_refuses_what_it_cannot_run():
    layer, _, _ = _layer("nvfp4_a16", TritonW4A16Kernel, 16, 256)
    lay = layer.kernel.layout
    with pytest.raises(ValueError, match="one token"):
        weight_only_gemv(_x(2, 256, seed=1), layer.weight, layer.weight_scale, lay.post_scale, wfmt=lay.wfmt,
                  config=GemvConfig(16, 16))
    with pytest.raises(ValueError, match="weight_only_gemv"):  # the MMA kernel leaves one token to it
        dequant_gemm(_x(1, 256, seed=1), layer.weight, layer.weight_scale, lay.post_scale, wfmt=lay.wfmt, group=16,
                     config=DequantConfig(16, 1, 128))


def test_split_k_reduction_in_one_launch_matches_one_slice():
    layer, qw, b = _layer("nvfp4_a16", TritonW4A16Kernel, 96, 1024)
    post = layer.kernel.layout.post_scale
    for m, block_m in ((5, 16), (1, 16)):
        x = _x(m, 1024, seed=3)
        ref = reference(SCHEMES["nvfp4_a16"], qw, b, x)
        for s in (1, 2, 3, 8):
            y = dequant_gemm(x, layer.weight, layer.weight_scale, post, wfmt=NVFP4, group=16,
                             config=DequantConfig(32, block_m, 128, split_k=s), bias=b, out_dtype=torch.float32)
            assert_close_to_reference(y, ref, f"split_k={s} block_m={block_m}")
    # the arrival counters are left at zero for the next launch
    from qlinear.kernels.triton.split_k import _counters

    assert all(int(c.abs().sum()) == 0 for c in _counters.values())


def test_mx_scales_spanning_too_many_binades_are_refused_with_the_reason():
    from qlinear.formats.quantized import QuantizedTensor
    from qlinear.layers import QuantizedLinear

    scheme = SCHEMES["mxfp4_a16"]
    packed = torch.full((4, 32), 0x22, dtype=torch.uint8, device=DEVICE)  # every element 1.0
    scale = torch.tensor([[1], [140], [200], [250]], dtype=torch.uint8, device=DEVICE).expand(4, 2).contiguous()
    qw = QuantizedTensor(packed, scale, scheme.weight, (4, 64))
    with pytest.raises(ValueError, match="layer wide: weight_scale .* binades"):
        QuantizedLinear(qw, None, scheme, Dispatch.single(TritonW4A16Kernel), "wide")


def test_mxfp8_activation_quantization_is_bit_identical_to_formats():
    x = _x(9, 256, seed=4) * torch.logspace(-4, 4, 256, device=DEVICE).to(torch.bfloat16)
    x[2, :32] = 0
    q, s = quantize_per_group(x, 32, e8m0=True)
    ref = quantize(x, SCHEMES["mxfp8"].activation)
    assert s.dtype == torch.uint8
    assert torch.equal(q.view(torch.uint8), ref.data.view(torch.uint8)) and torch.equal(s, ref.scale)


BATCH_INVARIANT_CASES = [(c, i) for c, i in zip(KERNELS + WEIGHT_ONLY, ["block", "rowwise", "int8"] + WEIGHT_ONLY_IDS)
                         if c[1].batch_invariant]


@pytest.mark.parametrize("name,kernel", [c for c, _ in BATCH_INVARIANT_CASES], ids=[i for _, i in BATCH_INVARIANT_CASES])
def test_batch_invariant_mode_is_bitwise(monkeypatch, name, kernel):
    monkeypatch.setenv("QLINEAR_BATCH_INVARIANT", "1")
    layer, _, _ = _layer(name, kernel, 64, 256)
    batch = _x(130, 256, seed=5)  # crosses the 64-row tile boundary twice
    alone = layer(batch[:1])
    full = layer(batch)
    perm = torch.randperm(130, generator=torch.Generator().manual_seed(0))
    permuted = layer(batch[perm])
    assert torch.equal(full[0], alone[0])
    assert torch.equal(permuted[int((perm == 0).nonzero())], alone[0])
    assert torch.equal(layer(batch[:65])[64], full[64])  # row 64 alone in its tile vs. in a full batch


def test_pdl_only_at_decode_sizes_on_sm90_compiled(monkeypatch):
    from qlinear.kernels.triton import pdl

    cuda = torch.device("cuda", 0)
    monkeypatch.setattr(pdl, "INTERPRETED", False)
    monkeypatch.setattr(pdl, "_capable", lambda index: True)
    assert pdl.pdl_enabled(cuda, 1) and pdl.pdl_enabled(cuda, pdl.PDL_MAX_M)
    assert not pdl.pdl_enabled(cuda, pdl.PDL_MAX_M + 1)  # prefill keeps plain launches
    assert pdl.pdl_enabled(cuda, 4096, max_m=None)  # but not before the persistent Gluon GEMMs
    assert not pdl.pdl_enabled(torch.device("cpu"), 1)
    monkeypatch.setenv("QLINEAR_PDL", "0")
    assert not pdl.pdl_enabled(cuda, 1)
    monkeypatch.delenv("QLINEAR_PDL")
    monkeypatch.setattr(pdl, "_capable", lambda index: False)  # Ampere: no griddepcontrol
    assert not pdl.pdl_enabled(cuda, 1)


def test_wgmma_block_gemm_refuses_layouts_tma_cannot_read():
    from qlinear.kernels.triton.wgmma_gemm import block_fp8_gemm

    a = torch.zeros(4, 200, dtype=torch.float8_e4m3fn)  # K = 200: rows of 200 bytes are not 16-byte multiples
    b = torch.zeros(64, 200, dtype=torch.float8_e4m3fn)
    scales = torch.ones(2, 4).t()
    with pytest.raises(ValueError, match="K % 16 == 0"):
        block_fp8_gemm(a, scales, b, torch.ones(1, 2))


def test_wgmma_gemms_refuse_scales_tma_cannot_read():
    from qlinear.kernels.triton.wgmma_gemm import block_fp8_gemm, mxfp8_gemm

    a = torch.zeros(5, 256, dtype=torch.float8_e4m3fn)
    b = torch.zeros(64, 256, dtype=torch.float8_e4m3fn)
    unaligned = torch.ones(2, 5).t()  # M-major, but a 20-byte stride: TMA needs 16-byte multiples
    with pytest.raises(ValueError, match="16-byte aligned"):
        block_fp8_gemm(a, unaligned, b, torch.ones(1, 2))
    aligned_e8m0 = torch.full((8, 16), 127, dtype=torch.uint8)[:, :5].t()
    weight_e8m0 = torch.full((64, 8), 127, dtype=torch.uint8)
    with pytest.raises(ValueError, match="fp32 for MX"):  # undecoded e8m0 weight scales
        mxfp8_gemm(a, aligned_e8m0, b, weight_e8m0.t().contiguous())


def test_wgmma_rowwise_gemm_refuses_wrong_scales_and_mixed_operands():
    from qlinear.kernels.triton.wgmma_gemm import rowwise_gemm

    a = torch.zeros(5, 256, dtype=torch.int8)
    b = torch.zeros(64, 256, dtype=torch.int8)
    with pytest.raises(ValueError, match="one per row of A and of B"):  # a per-tensor scale where one per token is read
        rowwise_gemm(a, torch.ones(1), b, torch.ones(64))
    with pytest.raises(ValueError, match="one per row of A and of B"):  # bf16 channel scales
        rowwise_gemm(a, torch.ones(5, 1), b, torch.ones(64, dtype=torch.bfloat16))
    with pytest.raises(ValueError, match="operands of one dtype"):  # int8 activations, e4m3 weight
        rowwise_gemm(a, torch.ones(5, 1), b.to(torch.float8_e4m3fn), torch.ones(64))
    with pytest.raises(ValueError, match="K % 16 == 0"):
        rowwise_gemm(a[:, :200], torch.ones(5), b[:, :200], torch.ones(64))
    with pytest.raises(ValueError, match=r"128 rows \(INT8: or 256\), got block_m=192"):
        rowwise_gemm(a, torch.ones(5), b, torch.ones(64), block_m=192)
    with pytest.raises(ValueError, match=r"128 rows \(INT8: or 256\), got block_m=256 for torch.float8_e4m3fn"):
        rowwise_gemm(a.to(torch.float8_e4m3fn), torch.ones(5), b.to(torch.float8_e4m3fn), torch.ones(64), block_m=256)


@pytest.mark.parametrize("dtype,block_k,promote_k", [(torch.float8_e4m3fn, 256, 256), (torch.float8_e4m3fn, 128, 128),
                                                     (torch.int8, 256, 0)], ids=["e4m3-k256", "e4m3-k128", "int8"])
def test_e4m3_products_join_the_fp32_sum_at_least_every_256_of_k(monkeypatch, dtype, block_k, promote_k):
    # Hopper's FP8 MMA adds into its accumulator with fewer bits than fp32 (the GPU test
    # test_fp8_kernels_keep_their_accuracy_over_a_long_k measures it): the launch asks Triton to move
    # e4m3 products into an fp32 sum every PROMOTE_EVERY of K (max_num_imprecise_acc), at most once
    # per K-tile; INT8 sums in int32, exactly, and asks for nothing
    from qlinear.kernels.triton import scaled_gemm as sg

    launches = []

    class Capture:
        def __getitem__(self, grid):
            return lambda *args, **kwargs: launches.append(kwargs)

    monkeypatch.setattr(sg, "_scaled_gemm_kernel", Capture())
    a, b = torch.zeros(16, 512, dtype=dtype), torch.zeros(64, 512, dtype=dtype)
    for swap in (False, True):
        sg.scaled_gemm(a, b, torch.ones(16, 1), torch.ones(64, 1), a_mode="token", b_mode="channel",
                       config=sg.GemmConfig(64, 16 if swap else 64, block_k), swap_ab=swap)
    assert sg.PROMOTE_EVERY == 256
    assert [launch["PROMOTE_K"] for launch in launches] == [promote_k, promote_k]


def test_rowwise_tiles_are_256_rows_only_where_the_rounds_of_tiles_favour_them():
    from qlinear.kernels.triton.wgmma_gemm import rowwise_block_m

    # 4096 x 4096 on 132 SMs: 1024 tiles of 128 rows = 8 rounds (1024 rows per SM), 512 of 256 = 4 rounds: even
    assert rowwise_block_m(4096, 4096, 132) == 256
    # 4096 x 28672: 7168 tiles / 132 = 55 rounds x 128 = 7040 rows; 3584 / 132 = 28 rounds x 256 = 7168 (x 0.94)
    assert rowwise_block_m(4096, 28672, 132) == 256
    # 512 x 28672: 896 tiles = 7 rounds x 128 = 896 rows; 448 = 4 rounds x 256 = 1024: the last round is short
    assert rowwise_block_m(512, 28672, 132) == 128
    assert rowwise_block_m(512, 4096, 132) == 128  # one round either way, half the SMs idle with 256
    assert rowwise_block_m(100, 4096, 132) == 128


def test_mx_weight_scales_are_the_decoded_e8m0_transposed():
    from qlinear.kernels.triton.wgmma_gemm import mx_weight_scales

    stored = torch.tensor([[0, 127, 130], [120, 254, 1]], dtype=torch.uint8)  # [N=2, K/32=3]
    scales = mx_weight_scales(stored)
    assert scales.dtype == torch.float32 and scales.is_contiguous()
    assert scales.tolist() == [[2.0**-127, 2.0**-7], [1.0, 2.0**127], [8.0, 2.0**-126]]
