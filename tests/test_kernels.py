"""Every kernel that runs here against the float64 dequantize-then-matmul reference."""
import pytest
import torch

from qlinear.formats import dequantize, fake_quantize, quantize
from qlinear.kernels import Dispatch, EmulationKernel, LayerConfig, all_kernels
from qlinear.layers import QuantizedLinear
from qlinear.platform import platform_of, simulated_cuda
from qlinear.schemes import SCHEMES

HERE = platform_of("cpu")
SHAPES = [(64, 128), (100, 200), (96, 160)]  # aligned, ragged (N, K not multiples of 16 / 128)
MS = [1, 7, 16, 83]


def runnable(scheme):
    for kernel in all_kernels():
        config = LayerConfig(scheme, 256, 256)
        if kernel.is_supported(HERE)[0] and kernel.can_implement(config)[0]:
            yield kernel


CASES = [
    pytest.param(name, kernel, id=f"{name}-{kernel.name}")
    for name, scheme in SCHEMES.items()
    for kernel in runnable(scheme)
]


def static_input_scale(scheme):
    """For static-activation schemes, a calibrated-style scale under which randn inputs beyond 2.5
    saturate (so the tests see clipping too); None for dynamic schemes."""
    return torch.tensor(2.5 / 448) if scheme.static_activation else None


def build(scheme, kernel, n, k, bias, seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(n, k, generator=g)
    b = torch.randn(n, generator=g) if bias else None
    qw = quantize(w, scheme.weight)
    layer = QuantizedLinear(qw, b, scheme, Dispatch.single(kernel), "test", input_scale=static_input_scale(scheme))
    return layer, qw, b


def assert_close_to_reference(y, ref, what):
    """Mean |y - ref| / mean |ref| below 1e-3 beyond the rounding of ref to y's dtype (bf16 output
    alone costs ~1e-3 of this metric; no kernel can do better than its output dtype)."""
    floor = float((ref.to(y.dtype).double() - ref).abs().mean() / ref.abs().mean())
    rel = float((y.double() - ref).abs().mean() / ref.abs().mean())
    assert rel < floor + 1e-3, f"{what}: mean rel error {rel:.2e} (output rounding {floor:.2e})"


def reference(scheme, qw, b, x):
    act = scheme.activation
    xr = fake_quantize(x, act, scale=static_input_scale(scheme)) if act else x.float()
    y = xr.double() @ dequantize(qw, torch.float64).t()
    return y + b.double() if b is not None else y


@pytest.mark.parametrize("name,kernel", CASES)
@pytest.mark.parametrize("n,k", SHAPES)
def test_kernel_matches_reference(name, kernel, n, k):
    scheme = SCHEMES[name]
    if k % scheme.k_multiple:
        pytest.skip(f"{name} needs K % {scheme.k_multiple} == 0")
    layer, qw, b = build(scheme, kernel, n, k, bias=True)
    for m in MS:
        x = torch.randn(m, k, generator=torch.Generator().manual_seed(m))
        y = layer(x)
        ref = reference(scheme, qw, b, x)
        assert y.shape == (m, n) and y.dtype == x.dtype
        assert_close_to_reference(y, ref, f"{kernel.name} {name} M={m}")


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
@pytest.mark.parametrize("name,kernel", CASES)
def test_any_leading_shape_and_activation_dtype(name, kernel, dtype):
    scheme = SCHEMES[name]
    layer, qw, b = build(scheme, kernel, 64, 128, bias=False)
    x = torch.randn(2, 3, 128).to(dtype)
    y = layer(x)
    assert y.shape == (2, 3, 64) and y.dtype == dtype
    if scheme.activation is None or scheme.activation.granularity != "tensor" or scheme.static_activation:
        # Rows are independent unless a per-tensor dynamic activation scale couples them.
        alone = layer(x[1, 2:3].reshape(1, 128))[0]
        assert torch.allclose(y[1, 2].float(), alone.float(), rtol=1e-2, atol=1e-2)


def test_emulation_is_the_reference_for_weight_only():
    scheme = SCHEMES["nvfp4_a16"]
    layer, qw, _ = build(scheme, EmulationKernel, 32, 64, bias=False)
    x = torch.randn(5, 64)
    assert torch.allclose(layer(x).double(), x.double() @ dequantize(qw, torch.float64).t(), rtol=1e-5, atol=1e-5)


def test_wrong_input_width_names_the_layer():
    layer, _, _ = build(SCHEMES["fp8_a16"], EmulationKernel, 8, 32, bias=False)
    with pytest.raises(ValueError, match="test: input has 16 features, expected 32"):
        layer(torch.randn(2, 16))


E2M1_VALUES = torch.tensor([0, 0.5, 1, 1.5, 2, 3, 4, 6, -0.0, -0.5, -1, -1.5, -2, -3, -4, -6], dtype=torch.float64)


def _scaled_mm_model(a, b, scale_a, scale_b, out_dtype):
    """cuBLASLt block-scaled GEMM as documented: a [M, K] row-major, b [K, N] column-major; e2m1 packed
    two per byte (low nibble first) or e4m3; one e4m3 scale per 16 or e8m0 per 32 along K, both in the
    128x4 swizzled layout. Decoded here independently of qlinear.formats."""
    from qlinear.formats.swizzle import unswizzle_128x4

    def decode(t):  # rows of t run along K
        if t.dtype == torch.float4_e2m1fn_x2:
            u = t.view(torch.uint8).long()
            return E2M1_VALUES[torch.stack((u & 15, u >> 4), dim=-1).reshape(u.shape[0], -1)]
        return t.double()

    qa, qb = decode(a), decode(b.t())
    block = 16 if scale_a.dtype == torch.float8_e4m3fn else 32
    sa = unswizzle_128x4(scale_a, qa.shape[0], qa.shape[1] // block).double().repeat_interleave(block, dim=1)
    sb = unswizzle_128x4(scale_b, qb.shape[0], qb.shape[1] // block).double().repeat_interleave(block, dim=1)
    return ((qa * sa) @ (qb * sb).t()).to(out_dtype)


@pytest.mark.parametrize("name", ["nvfp4", "mxfp8"])
def test_blackwell_kernels_build_the_operands_scaled_mm_documents(monkeypatch, name):
    """The sm_100 kernels cannot run on this project's GPUs (they are rejected there, with the reason);
    their prepare/apply run here with torch._scaled_mm replaced by a model of its documented semantics,
    against the float64 reference on a ragged shape (N=144, K=96 pad to 256 x 4 scale tiles)."""
    from qlinear.kernels.scaled_mm_blockscaled import CublasMxfp8Kernel, CublasNvfp4Kernel

    kernel = {"nvfp4": CublasNvfp4Kernel, "mxfp8": CublasMxfp8Kernel}[name]
    assert not kernel.is_supported(platform_of("cpu"))[0]
    ok, reason = kernel.is_supported(simulated_cuda(90))
    assert not ok and "sm_100" in reason
    assert kernel.is_supported(simulated_cuda(100))[0]
    monkeypatch.setattr(torch, "_scaled_mm", _scaled_mm_model)
    scheme = SCHEMES[name]
    layer, qw, b = build(scheme, kernel, 144, 96, bias=True)
    for m in (1, 7, 130):
        x = torch.randn(m, 96, generator=torch.Generator().manual_seed(m)).to(torch.bfloat16)  # bf16 out, as on GPU
        assert_close_to_reference(layer(x), reference(scheme, qw, b, x), f"{kernel.name} M={m}")
