"""Triton kernels against the float64 reference. On the CPU they run under TRITON_INTERPRET=1
(set in conftest) at small sizes; on a GPU the same tests run compiled."""
import pytest
import torch

triton = pytest.importorskip("triton")

from qlinear.formats import quantize  # noqa: E402
from qlinear.kernels import Dispatch, TritonFp8BlockKernel, TritonFp8RowwiseKernel, TritonInt8Kernel  # noqa: E402
from qlinear.kernels.triton.act_quant import quantize_per_group, quantize_per_token  # noqa: E402
from qlinear.schemes import SCHEMES  # noqa: E402

from .test_kernels import assert_close_to_reference, reference  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
KERNELS = [("fp8_per_block", TritonFp8BlockKernel), ("fp8_per_channel", TritonFp8RowwiseKernel),
           ("int8_per_channel", TritonInt8Kernel)]


def _x(m, k, seed=0, dtype=torch.bfloat16):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(m, k, generator=g) * 3).to(dtype).to(DEVICE)


@pytest.mark.parametrize("m,k", [(1, 200), (7, 576), (33, 1536), (3, 16500)])  # the last: two-pass rows
def test_activation_quantization_is_bit_identical_to_formats(m, k):
    x = _x(m, k)
    for dtype, spec in [(torch.float8_e4m3fn, SCHEMES["fp8_per_channel"].activation),
                        (torch.int8, SCHEMES["int8_per_channel"].activation)]:
        q, s = quantize_per_token(x, dtype)
        ref = quantize(x, spec)
        assert torch.equal(q.view(torch.uint8), ref.data.view(torch.uint8)) and torch.equal(s, ref.scale)
    ref = quantize(x, SCHEMES["fp8_per_block"].activation)
    for m_major in (False, True):
        q, s = quantize_per_group(x, 128, m_major=m_major)
        assert torch.equal(q.view(torch.uint8), ref.data.view(torch.uint8)) and torch.equal(s, ref.scale)
        assert s.stride(0) == (1 if m_major else s.shape[1])


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
    for split, swap in [(1, False), (2, False), (5, False), (1, True), (3, True)]:
        cfg = GemmConfig(16, 32, 128, group_m=1, split_k=split)
        y = scaled_gemm(x, qw.data, None, qw.scale, a_mode="group", b_mode="block", config=cfg,
                        out_dtype=torch.float32, bias=b, quant_a=True, swap_ab=swap)
        assert_close_to_reference(y, ref, f"split_k={split} swap_ab={swap}")


@pytest.mark.parametrize("name,kernel", KERNELS, ids=["block", "rowwise", "int8"])
def test_batch_invariant_mode_is_bitwise(monkeypatch, name, kernel):
    monkeypatch.setenv("QLINEAR_BATCH_INVARIANT", "1")
    layer, _, _ = _layer(name, kernel, 64, 256)
    batch = _x(130, 256, seed=5)  # crosses the 64-row tile boundary twice
    alone = layer(batch[:1])
    full = layer(batch)
    perm = torch.randperm(130, generator=torch.Generator().manual_seed(0))
    permuted = layer(batch[perm])
    where = int((perm == 0).nonzero())
    assert torch.equal(full[0], alone[0])
    assert torch.equal(permuted[where], alone[0])
    assert torch.equal(layer(batch[:65])[64], full[64])  # row 64 alone in its tile vs. in a full batch
