"""GPU tests (marker ``gpu``): run on the device machine with ``pytest -m gpu``."""
import copy

import pytest
import torch

import qlinear
from qlinear.formats import dequantize, fake_quantize, quantize
from qlinear.kernels import CublasFp8Kernel, EmulationKernel, IntMMInt8Kernel, LayerConfig, Selection, select_kernel
from qlinear.layers import QuantizedLinear
from qlinear.platform import platform_of
from qlinear.schemes import SCHEMES

from .test_kernels import assert_close_to_reference

pytestmark = pytest.mark.gpu
MS = [1, 7, 16, 83, 4096]
SHAPES = [(4096, 4096), (576, 1536), (100, 200)]  # aligned, SmolLM2 down_proj, ragged (pads to 16)


def _check(name, kernel, n, k, m):
    scheme = SCHEMES[name]
    g = torch.Generator(device="cuda").manual_seed(n + k + m)
    w = torch.randn(n, k, device="cuda", generator=g)
    b = torch.randn(n, device="cuda", generator=g)
    qw = quantize(w, scheme.weight)
    layer = QuantizedLinear(qw, b, scheme, Selection(kernel), "gpu")
    x = torch.randn(m, k, device="cuda", generator=g, dtype=torch.bfloat16)
    y = layer(x)
    xr = fake_quantize(x, scheme.activation) if scheme.activation else x.float()
    ref = xr.double() @ dequantize(qw, torch.float64).t() + b.double()
    assert y.dtype == torch.bfloat16 and y.shape == (m, n)
    assert_close_to_reference(y, ref, f"{kernel.name} {name} {m}x{n}x{k}")


@pytest.mark.parametrize("name", ["fp8_per_tensor", "fp8_per_channel"])
@pytest.mark.parametrize("n,k", SHAPES)
@pytest.mark.parametrize("m", MS)
def test_cublas_fp8_matches_reference(name, n, k, m):
    _check(name, CublasFp8Kernel, n, k, m)


@pytest.mark.parametrize("n,k", SHAPES)
@pytest.mark.parametrize("m", MS)
def test_int_mm_int8_matches_reference(n, k, m):
    _check("int8_per_channel", IntMMInt8Kernel, n, k, m)


@pytest.mark.parametrize("name", list(SCHEMES))
def test_emulation_runs_every_scheme_on_gpu(name):
    _check(name, EmulationKernel, 96, 192, 7)  # K=192: whole MX/NVFP4 groups, a ragged 128-block


def test_selection_on_this_gpu():
    here = platform_of("cuda")
    cfg = lambda s: LayerConfig(SCHEMES[s], 576, 1536)  # noqa: E731
    if here.cuda_at_least(89):
        assert select_kernel(cfg("fp8_per_channel"), here).kernel is CublasFp8Kernel
        assert select_kernel(cfg("fp8_per_tensor"), here).kernel is CublasFp8Kernel
    nv = select_kernel(cfg("nvfp4"), here)
    assert nv.kernel is EmulationKernel and any("cublas_fp8" == r.kernel for r in nv.rejected)


def test_quantized_model_forward_on_gpu():
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(hidden_size=576, intermediate_size=1536, num_hidden_layers=2, num_attention_heads=9,
                      num_key_value_heads=3, vocab_size=1000)
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg).to("cuda", torch.bfloat16).eval()
    ids = torch.randint(0, 1000, (2, 64), device="cuda")
    emulated = copy.deepcopy(model)
    with torch.no_grad():
        report = qlinear.quantize(model, "fp8_per_channel", progress=False)
        qlinear.quantize(emulated, "fp8_per_channel", backend="emulation", progress=False)
        out, ref = model(ids).logits.float(), emulated(ids).logits.float()
    assert {r.kernel for r in report.layers if r.kernel} == {"cublas_fp8"}
    # Same quantized operands: cuBLAS and the float32 emulation differ only by rounding.
    assert float((out - ref).norm() / ref.norm()) < 2e-2


def test_apply_has_no_host_sync_and_captures_in_cuda_graph():
    lin = torch.nn.Linear(1536, 576, bias=True).to("cuda", torch.bfloat16)
    layer = QuantizedLinear.from_linear(lin, "fp8_per_channel", name="graph")
    x = torch.randn(16, 1536, device="cuda", dtype=torch.bfloat16)
    expect = layer(x)
    graph = torch.cuda.CUDAGraph()
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        layer(x)
    torch.cuda.current_stream().wait_stream(s)
    with torch.cuda.graph(graph):
        out = layer(x)
    x.copy_(torch.randn_like(x))
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(out, layer(x)) and not torch.equal(out, expect)
