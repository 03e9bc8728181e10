"""Formats against hand-worked values and brute-force float64 references."""
import math

import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from qlinear.formats import dequantize, quantize
from qlinear.formats import e2m1, e8m0, nvfp4
from qlinear.formats.fp8 import to_e4m3
from qlinear.schemes import SCHEMES
from qlinear.spec import TensorSpec

from .reference import e2m1_grid, e4m3_grid, fp8_tiles_reference, mx_reference, round_to_grid

E4M3_TENSOR = TensorSpec("e4m3", "tensor")
E4M3_CHANNEL = TensorSpec("e4m3", "channel")
E4M3_BLOCK = TensorSpec("e4m3", "block", block_size=(128, 128))
E4M3_GROUP = TensorSpec("e4m3", "group", group_size=128, dynamic=True)


# ---- FP8 e4m3, hand-worked ----------------------------------------------------------------

def test_e4m3_per_tensor_hand_worked():
    x = torch.tensor([[448.0, -224.0], [1.0, 0.0]])
    q = quantize(x, E4M3_TENSOR)
    assert q.scale.shape == (1, 1) and q.scale.item() == 1.0  # amax 448 -> scale 1
    assert q.data.float().tolist() == [[448.0, -224.0], [1.0, 0.0]]


def test_e4m3_round_half_to_even_and_saturation():
    # Between 1.0 and 1.125 the step is 1/8; 1.0625 is the midpoint -> the even mantissa (1.0).
    # 1.1875 is the midpoint of 1.125 and 1.25 -> 1.25 (even mantissa).
    x = torch.tensor([1.0625, 1.1875, 500.0, -1000.0])
    assert to_e4m3(x).float().tolist() == [1.0, 1.25, 448.0, -448.0]


def test_e4m3_per_channel_scales_each_row():
    x = torch.tensor([[1.0, 2.0], [3.0, -4.0]])
    q = quantize(x, E4M3_CHANNEL)
    assert torch.allclose(q.scale, torch.tensor([[2 / 448], [4 / 448]]))
    # 1 / (2/448) = 224, exact in e4m3. 3 / (4/448) = 336 lies midway between 320 and 352
    # (step 32 in [256, 512)); the tie goes to the even mantissa, 320 = 1.25 * 256.
    assert q.data.float().tolist() == [[224.0, 448.0], [320.0, -448.0]]


def test_e4m3_ragged_128_blocks_use_ceil():
    torch.manual_seed(0)
    x = torch.randn(130, 200)
    x[129, 199] = 50.0  # the bottom-right 2x72 edge tile
    q = quantize(x, E4M3_BLOCK)
    assert q.scale.shape == (2, 2)
    assert q.scale[1, 1].item() == pytest.approx(50.0 / 448)
    assert q.scale[0, 0].item() == pytest.approx(float(x[:128, :128].abs().max()) / 448)
    assert q.data.shape == (130, 200)  # stays unpadded


def test_e4m3_ragged_activation_groups():
    x = torch.arange(1, 201, dtype=torch.float32).reshape(1, 200)
    q = quantize(x, E4M3_GROUP)
    assert q.scale.shape == (1, 2)
    assert q.scale[0].tolist() == pytest.approx([128 / 448, 200 / 448])


@settings(max_examples=25, deadline=None)
@given(
    rows=st.integers(1, 140), cols=st.integers(1, 300), magnitude=st.sampled_from([1e-3, 1.0, 3e2]),
    spec=st.sampled_from([E4M3_TENSOR, E4M3_CHANNEL, E4M3_BLOCK, E4M3_GROUP]), seed=st.integers(0, 2**16),
)
def test_fp8_matches_float64_tile_reference(rows, cols, magnitude, spec, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, cols, generator=g) * magnitude
    ref = fp8_tiles_reference(x, spec.tile(rows, cols))
    assert torch.equal(dequantize(quantize(x, spec), torch.float64), ref)


# ---- INT8 -----------------------------------------------------------------------------------

def test_int8_symmetric_hand_worked():
    x = torch.tensor([[127.0, -63.5, 0.5, -127.0]])
    q = quantize(x, TensorSpec("int8", "token", dynamic=True))
    assert q.scale.item() == 1.0
    assert q.data.tolist() == [[127, -64, 0, -127]]  # half to even: -63.5 -> -64, 0.5 -> 0


def test_int8_asymmetric_hand_worked():
    x = torch.tensor([[-1.0, 0.0, 2.0]])
    q = quantize(x, TensorSpec("int8", "token", dynamic=True, symmetric=False))
    assert q.scale.item() == pytest.approx(3 / 255)
    assert q.zero_point.item() == -43  # round(-128 + 1 / (3/255)) = round(-43)
    assert q.data.tolist() == [[-128, -43, 127]]
    assert dequantize(q)[0, 1].item() == 0.0  # zero is exact
    assert dequantize(q)[0].tolist() == pytest.approx([-1.0, 0.0, 2.0], abs=1e-6)


@settings(max_examples=25, deadline=None)
@given(rows=st.integers(1, 50), cols=st.integers(1, 200), symmetric=st.booleans(), seed=st.integers(0, 2**16))
@example(rows=45, cols=56, symmetric=False, seed=22862)
def test_int8_error_within_half_step(rows, cols, symmetric, seed):
    x = torch.randn(rows, cols, generator=torch.Generator().manual_seed(seed)) * 3 + (0 if symmetric else 2)
    q = quantize(x, TensorSpec("int8", "token", dynamic=True, symmetric=symmetric))
    err = (dequantize(q, torch.float64) - x.double()).abs()
    # half a step, exactly so in real arithmetic (the asymmetric zero point's rounding moves the
    # grid by at most half a step), plus a few fp32 ulps of x for the fp32 scale and zero point
    # (a 1e-6 absolute allowance failed at |x| ~ 10: 1.5e-7 over, seed 22862)
    assert bool((err <= q.scale.double() * 0.5 + 1e-6 * (1 + x.double().abs())).all())


# ---- e2m1 -------------------------------------------------------------------------------------

def test_e2m1_ties_go_to_even_code():
    x = torch.tensor([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, 5.1, 7.0, -0.3, -2.9])
    assert e2m1.decode(e2m1.encode(x)).tolist() == [0.0, 1.0, 1.0, 2.0, 2.0, 4.0, 4.0, 6.0, 6.0, -0.5, -3.0]


def test_e2m1_matches_brute_force_grid():
    x = torch.linspace(-7, 7, 2801)
    assert torch.equal(e2m1.decode(e2m1.encode(x)).double(), round_to_grid(x, e2m1_grid()))


def test_e2m1_packing_even_element_in_low_nibble():
    codes = torch.tensor([[1, 2, 15, 8]], dtype=torch.uint8)
    packed = e2m1.pack(codes)
    assert packed.tolist() == [[0x21, 0x8F]]
    assert torch.equal(e2m1.unpack(packed), codes)


# ---- MX: e8m0 scales ------------------------------------------------------------------------

def test_e8m0_exponent_rounds_up_and_encodes_with_bias():
    amax = torch.tensor([448.0, 449.0, 224.0, 1.0, 0.0])
    x = e8m0.exponent_for(amax, 448.0)
    assert x.tolist() == [0, 1, -1, -8, -127]  # 1/448 -> 2^-8.8 -> ceil -8
    assert e8m0.encode(x).tolist() == [127, 128, 126, 119, 0]
    assert e8m0.decode(torch.tensor([127, 128, 126], dtype=torch.uint8)).tolist() == [1.0, 2.0, 0.5]


def test_mxfp4_hand_worked_block():
    x = torch.zeros(1, 32)
    x[0, :4] = torch.tensor([24.0, -12.0, 5.0, 1.0])  # amax 24 -> X = ceil(log2(24/6)) = 2
    q = quantize(x, SCHEMES["mxfp4_a16"].weight)
    assert q.scale.tolist() == [[129]]
    assert dequantize(q)[0, :4].tolist() == [24.0, -12.0, 4.0, 0.0]  # 5/4=1.25->1 (tie to even), 1/4=0.25->0


@pytest.mark.parametrize("scheme,elem", [("mxfp8", "e4m3"), ("mxfp4_a16", "e2m1")])
@settings(max_examples=15, deadline=None)
@given(rows=st.integers(1, 20), blocks=st.integers(1, 6), seed=st.integers(0, 2**16), magnitude=st.sampled_from([1e-4, 1.0, 1e3]))
def test_mx_matches_float64_reference(scheme, elem, rows, blocks, seed, magnitude):
    x = torch.randn(rows, 32 * blocks, generator=torch.Generator().manual_seed(seed)) * magnitude
    assert torch.equal(dequantize(quantize(x, SCHEMES[scheme].weight), torch.float64), mx_reference(x, elem))


def test_mx_rejects_ragged_k():
    with pytest.raises(ValueError, match="divisible by 32"):
        quantize(torch.randn(4, 48), SCHEMES["mxfp8"].weight)


# ---- NVFP4 ------------------------------------------------------------------------------------

def test_nvfp4_hand_worked_two_level_scales():
    x = torch.zeros(1, 32)
    x[0, 0] = 2688.0  # tensor amax -> global = 2688/2688 = 1
    x[0, 16:20] = torch.tensor([3.0, -1.5, 0.75, 0.1])  # second block amax 3 -> block scale 0.5
    q = quantize(x, SCHEMES["nvfp4_a16"].weight)
    assert q.global_scale.item() == 1.0
    assert q.scale.float().tolist() == [[448.0, 0.5]]
    assert dequantize(q)[0, 16:20].tolist() == [3.0, -1.5, 0.75, 0.0]  # 0.75/0.5 = 1.5 exact; 0.1/0.5 = 0.2 -> 0


def test_nvfp4_global_scale_conventions_round_trip():
    multiplier = torch.tensor(0.125)
    divisor = nvfp4.global_scale_to_divisor(multiplier)
    assert divisor.item() == 8.0  # compressed-tensors stores 2688/amax
    assert nvfp4.global_scale_from_divisor(divisor).item() == 0.125


def _fp32(v: float) -> float:
    """``v`` rounded once to fp32 (a float64 +, *, / of fp32 values, so rounded, is the fp32 result)."""
    return float(torch.tensor(v, dtype=torch.float32))


@settings(max_examples=20, deadline=None)
@given(rows=st.integers(1, 30), blocks=st.integers(1, 8), seed=st.integers(0, 2**16))
@example(rows=4, blocks=6, seed=6144)  # x / (block * global) within 1e-8 of the e2m1 tie 1.75
def test_nvfp4_matches_float64_reference(rows, blocks, seed):
    # NVFP4's arithmetic is fp32: the global scale is the fp32 reciprocal of the fp32 divisor
    # 2688 * fp32(1 / amax) (what compressed-tensors computes and stores: PyTorch evaluates
    # `2688 / tensor` as the tensor's reciprocal times 2688), and elements are rounded from
    # x / fp32(block * global) in fp32. A float64 global put the example above on the other side
    # of a tie; each fp32 step is modelled here, the rounding to e2m1 and e4m3 by brute force.
    x = torch.randn(rows, 16 * blocks, generator=torch.Generator().manual_seed(seed))
    q = quantize(x, SCHEMES["nvfp4_a16"].weight)
    g = _fp32(1 / _fp32(2688 * _fp32(1 / float(x.abs().max()))))
    grid4, grid8 = e2m1_grid(), e4m3_grid()
    ref = torch.empty(rows, 16 * blocks, dtype=torch.float64)
    for r in range(rows):
        for c in range(0, 16 * blocks, 16):
            t = x[r, c : c + 16]
            s = float(round_to_grid(torch.tensor(_fp32(_fp32(float(t.abs().max()) / 6) / g)), grid8))
            scaled = (t / torch.tensor(_fp32(s * g), dtype=torch.float32)).double()  # fp32 division
            ref[r, c : c + 16] = round_to_grid(scaled, grid4) * s * g if s else 0.0
    assert torch.allclose(dequantize(q, torch.float64), ref, rtol=1e-6, atol=1e-9)


def test_nvfp4_activation_global_scale_is_per_token():
    x = torch.randn(3, 32)
    x[1] *= 1000
    q = quantize(x, SCHEMES["nvfp4"].activation)
    assert q.global_scale.shape == (3, 1)
    assert q.global_scale[1].item() == pytest.approx(float(x[1].abs().max()) / 2688)
    # A large row does not coarsen the others.
    err = (dequantize(q) - x).norm(dim=1) / x.norm(dim=1)
    assert float(err.max()) < 0.2


@pytest.mark.parametrize("name", list(SCHEMES))
def test_every_scheme_weight_sqnr_is_sane(name):
    w = torch.randn(64, 256, generator=torch.Generator().manual_seed(1))
    d = dequantize(quantize(w, SCHEMES[name].weight))
    sqnr = 10 * math.log10(float(w.pow(2).sum() / (w - d).pow(2).sum()))
    low = 15 if SCHEMES[name].weight.dtype == "e2m1" else 28
    assert low < sqnr < 60


@pytest.mark.parametrize("name", list(SCHEMES))
def test_quantizing_in_row_chunks_is_identical_to_whole(name):
    from qlinear.formats import quantize_in_row_chunks, sqnr_db

    spec = SCHEMES[name].weight
    w = (torch.randn(300, 256, generator=torch.Generator().manual_seed(3)) * 0.05).to(torch.bfloat16)
    w[290, 7] = 1.5  # the tensor maximum sits in the last chunk
    whole = quantize(w, spec)
    chunked, sqnr = quantize_in_row_chunks(w, spec, chunk_rows=128)
    for field in ("data", "scale", "global_scale", "zero_point"):
        a, b = getattr(whole, field), getattr(chunked, field)
        assert (a is None and b is None) or torch.equal(a.view(torch.uint8) if a.dtype.itemsize == 1 else a,
                                                         b.view(torch.uint8) if b.dtype.itemsize == 1 else b), field
    assert chunked.shape == whole.shape
    assert sqnr == pytest.approx(sqnr_db(w.float(), dequantize(whole)), abs=1e-6)
    unmeasured, none = quantize_in_row_chunks(w, spec, chunk_rows=128, measure=False)  # same values, no SQNR
    assert none is None and torch.equal(dequantize(unmeasured, torch.float64), dequantize(whole, torch.float64))


def test_requantize_mxfp4_to_mxfp8_is_lossless_and_nvfp4_to_fp8_costs_little():
    """e2m1 x 2^e is exactly an e4m3 value under the same e8m0 exponent, so MXFP4 -> MXFP8 loses
    nothing; NVFP4 (e2m1 x e4m3 block scale, up to 6 significant bits) -> 4-bit-significand e4m3
    rounds, but far less than NVFP4's own error."""
    from qlinear.formats import requantize, sqnr_db

    x = torch.randn(96, 256, generator=torch.Generator().manual_seed(3))
    mx4 = quantize(x, SCHEMES["mxfp4_a16"].weight)
    mx8, db = requantize(mx4, SCHEMES["mxfp8"].weight)
    assert db == float("inf") and torch.equal(dequantize(mx8, torch.float64), dequantize(mx4, torch.float64))
    nv4 = quantize(x, SCHEMES["nvfp4_a16"].weight)
    for target in ("fp8_per_block", "fp8_per_channel"):
        fp8, conversion_db = requantize(nv4, SCHEMES[target].weight)
        assert conversion_db > 25
        assert conversion_db > sqnr_db(x, dequantize(nv4)) + 5
        # against the float original: both steps' error, measured chunk by chunk as sqnr_db would
        _, total_db = requantize(nv4, SCHEMES[target].weight, reference=x)
        assert total_db == pytest.approx(sqnr_db(x, dequantize(fp8, torch.float64)), rel=1e-12)
        assert total_db < sqnr_db(x, dequantize(nv4))
    with pytest.raises(ValueError, match="reference"):
        requantize(nv4, SCHEMES["fp8_per_block"].weight, reference=x[:64])


def test_swizzle_128x4_places_each_scale_where_cublas_reads_it():
    """Hand-worked positions: row r, column c of a 128x4 tile at (r % 32) * 16 + (r // 32) * 4 + c;
    tiles follow each other along K within a 128-row band, bands along M."""
    from qlinear.formats.swizzle import swizzle_128x4, unswizzle_128x4

    rows, cols = 200, 7  # ragged: pads to 256 x 8 -> 2 x 2 tiles of 512
    s = torch.arange(1, rows * cols + 1, dtype=torch.int32).reshape(rows, cols)
    flat = swizzle_128x4(s)
    assert flat.shape == (256 * 8,)
    for r, c in [(0, 0), (1, 0), (31, 3), (32, 0), (33, 2), (127, 3), (5, 4), (130, 6), (199, 6)]:
        tile = (r // 128) * 2 + c // 4
        assert int(flat[tile * 512 + (r % 32) * 16 + ((r % 128) // 32) * 4 + c % 4]) == int(s[r, c]), (r, c)
    assert int((flat == 0).sum()) == 256 * 8 - rows * cols  # the padding, and only it, is zero
    assert torch.equal(unswizzle_128x4(flat, rows, cols), s)
    e4m3 = torch.rand(192, 12).to(torch.float8_e4m3fn)
    assert torch.equal(unswizzle_128x4(swizzle_128x4(e4m3), 192, 12).view(torch.uint8), e4m3.view(torch.uint8))
    with pytest.raises(ValueError, match=r"a swizzled \[200, 7\] scale matrix has 2048 elements, got 2047"):
        unswizzle_128x4(flat[:-1], rows, cols)
