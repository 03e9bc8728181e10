"""SiLU-and-multiply fused into the per-token quantization of a gated MLP's down_proj input
(qlinear.layers.gated_mlp): the one-pass kernel against the reference quantization of silu(g) * u,
the fused MLP against the unfused one and against float64, and which modules are fused. Triton runs under TRITON_INTERPRET=1 on the CPU (set in conftest)."""
import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from qlinear.formats import dequantize, quantize as reference_quantize
from qlinear.layers import FusedSiluMulMLP, QuantizedLinear, fuse_gated_mlps, quantize
from qlinear.layers.gated_mlp import fusable
from qlinear.schemes import SCHEMES

from .test_kernels import assert_close_to_reference

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
PER_TOKEN = {"fp8_per_channel": torch.float8_e4m3fn, "int8_per_channel": torch.int8}


def _gate_up(m, k, dtype=torch.bfloat16, seed=0):
    g = torch.Generator().manual_seed(seed)
    gate = torch.randn(m, k, generator=g) * 4  # silu's both tails and its curve
    up = torch.randn(m, k, generator=g)
    return gate.to(dtype).to(DEVICE), up.to(dtype).to(DEVICE)


def _kernel_silu(gate):
    """silu as the kernel computes it: fp32 ``g / (1 + 2**(-g log2 e))``, rounded once to gate's dtype
    (on the CPU the interpreter's exp2 and division are numpy's, so numpy's here)."""
    g = gate.float().numpy()
    return torch.from_numpy(g / (np.float32(1) + np.exp2(g * np.float32(-1.4426950408889634)))).to(gate.dtype)


def _check_fused_kernel(m, k, dtype, differing_allowed):
    pytest.importorskip("triton")
    from qlinear.kernels.triton.act_quant import silu_mul_quantize_per_token

    gate, up = _gate_up(m, k, dtype)
    if gate.is_cuda:  # PyTorch's own eager ops, as the unfused model runs them
        h = F.silu(gate) * up
    else:
        h = _kernel_silu(gate) * up
        assert torch.equal(h, F.silu(gate.float()).to(dtype) * up) or dtype == torch.float16  # near-ties aside
    for scheme, qdtype in PER_TOKEN.items():
        q, s = silu_mul_quantize_per_token(gate, up, qdtype)
        ref = reference_quantize(h, SCHEMES[scheme].activation)
        differ = (q.view(torch.uint8) != ref.data.view(torch.uint8)).sum().item()
        assert differ <= differing_allowed * max(q.numel(), 10**5), (scheme, m, k, dtype, differ)
        torch.testing.assert_close(s, ref.scale, rtol=2**-7, atol=0)  # a flipped amax element: one bf16 step
        # elements that differ are neighbouring codes (e4m3 bytes of one sign order as their values)
        codes = (q.view(torch.int8) if qdtype == torch.int8 else q.view(torch.uint8)).int()
        ref_codes = (ref.data.view(torch.int8) if qdtype == torch.int8 else ref.data.view(torch.uint8)).int()
        assert (codes - ref_codes).abs().max() <= 1


@pytest.mark.parametrize("m,k", [(1, 200), (7, 576), (33, 1536), (3, 16500)])  # the last: two-pass rows
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_fused_kernel_quantizes_silu_mul_as_the_reference_does(m, k, dtype):
    """Bitwise on the CPU, against the same silu formula; on a GPU against PyTorch's eager silu,
    from which the fast exp2 and division may part at a rare rounding tie."""
    _check_fused_kernel(m, k, dtype, 0 if DEVICE == "cpu" else 2e-5)  # on a GPU, at most 2 per 100k


def test_fused_kernel_reads_inputs_of_any_stride():
    pytest.importorskip("triton")
    from qlinear.kernels.triton.act_quant import silu_mul_quantize_per_token

    gate, up = _gate_up(40, 24)
    expect = silu_mul_quantize_per_token(gate.t().contiguous(), up.t().contiguous())
    got = silu_mul_quantize_per_token(gate.t(), up.t())  # K-stride 24
    assert all(torch.equal(a.view(torch.uint8) if a.dtype != torch.float32 else a,
                           b.view(torch.uint8) if b.dtype != torch.float32 else b) for a, b in zip(got, expect))


def test_fused_kernel_refuses_mismatched_or_non_16_bit_inputs():
    pytest.importorskip("triton")
    from qlinear.kernels.triton.act_quant import silu_mul_quantize_per_token

    gate, up = _gate_up(2, 64)
    for bad_gate, bad_up in [(gate, up[:, :32]), (gate, up.half()), (gate.float(), up.float())]:
        with pytest.raises(ValueError, match="one shape and dtype"):
            silu_mul_quantize_per_token(bad_gate, bad_up)


def _mlp_model(tiny_llama, device=DEVICE):
    return tiny_llama(layers=2, device=device)


@pytest.mark.parametrize("scheme", sorted(PER_TOKEN))
def test_fused_mlp_equals_the_unfused_one_bitwise_and_keeps_the_state_dict(scheme, tiny_llama):
    model = _mlp_model(tiny_llama)
    unfused = copy.deepcopy(model)
    quantize(unfused, scheme, progress=False, fuse_mlp=False)
    report = quantize(model, scheme, progress=False)
    assert report.fused_mlps == ["model.layers.0.mlp", "model.layers.1.mlp"]
    assert all(isinstance(layer.mlp, FusedSiluMulMLP) for layer in model.model.layers)
    assert not any(isinstance(layer.mlp, FusedSiluMulMLP) for layer in unfused.model.layers)
    assert "SiLU-and-multiply fused" in report.table() and report.to_dict()["fused_mlps"] == report.fused_mlps
    assert model.state_dict().keys() == unfused.state_dict().keys()
    ids = torch.randint(0, 100, (2, 7), device=DEVICE)
    with torch.inference_mode():
        fused_logits, unfused_logits = model(ids, use_cache=False).logits, unfused(ids, use_cache=False).logits
    if DEVICE == "cpu":  # PyTorch's ops and the reference quantization inside the fused MLP
        assert torch.equal(fused_logits, unfused_logits)
    else:  # the fast silu may part from eager at a rare tie: equal but for such elements
        assert (fused_logits != unfused_logits).float().mean() < 1e-3


def test_fused_mlp_of_an_fp32_model_runs_pytorchs_ops_and_equals_the_unfused_one(tiny_llama):
    model = _mlp_model(tiny_llama, "cpu").float()  # the kernel takes 16-bit floats; fp32 goes through the reference
    unfused = copy.deepcopy(model)
    quantize(unfused, "int8_per_channel", progress=False, fuse_mlp=False)
    assert len(quantize(model, "int8_per_channel", progress=False).fused_mlps) == 2
    ids = torch.randint(0, 100, (2, 7))
    with torch.inference_mode():
        assert torch.equal(model(ids, use_cache=False).logits, unfused(ids, use_cache=False).logits)


@pytest.mark.parametrize("scheme", sorted(PER_TOKEN))
def test_fused_mlp_matches_float64_dequantize_then_matmul(scheme, tiny_llama):
    model = _mlp_model(tiny_llama)
    quantize(model, scheme, progress=False)
    mlp = model.model.layers[0].mlp
    x = torch.randn(5, 64, dtype=torch.bfloat16, device=DEVICE)
    with torch.inference_mode():
        out = mlp(x)
        h = F.silu(mlp.gate_proj(x)) * mlp.up_proj(x)  # the layers' own bf16 outputs, as the model rounds them
    hq = reference_quantize(h, SCHEMES[scheme].activation)
    ref = (hq.data.double() * hq.scale.double()) @ dequantize(mlp.down_proj.quantized_weight(), torch.float64).t()
    assert_close_to_reference(out, ref, f"{scheme} fused MLP")


@pytest.mark.parametrize("scheme", ["fp8_per_block", "nvfp4_a16", "fp8_per_tensor"])
def test_mlps_whose_down_proj_quantizes_otherwise_are_left_alone(scheme, tiny_llama):
    model = _mlp_model(tiny_llama, "cpu")
    assert quantize(model, scheme, progress=False).fused_mlps == []


def test_fuse_act_quant_0_also_leaves_the_mlps_alone(monkeypatch, tiny_llama):
    monkeypatch.setenv("QLINEAR_FUSE_ACT_QUANT", "0")
    model = _mlp_model(tiny_llama, "cpu")
    assert quantize(model, "fp8_per_channel", progress=False).fused_mlps == []


def test_only_plain_gated_silu_mlps_are_fusable(tiny_llama):
    model = _mlp_model(tiny_llama, "cpu")
    quantize(model, "int8_per_channel", progress=False, fuse_mlp=False)  # torch._int_mm: quantized input on any CPU
    mlp = model.model.layers[0].mlp
    assert fusable(mlp)
    gelu = copy.deepcopy(mlp)
    gelu.act_fn = nn.GELU()
    extra = copy.deepcopy(mlp)
    extra.dropout = nn.Dropout(0.1)
    own_param = copy.deepcopy(mlp)
    own_param.bias = nn.Parameter(torch.zeros(64))
    float_down = copy.deepcopy(mlp)
    float_down.down_proj = nn.Linear(128, 64)
    for other in (gelu, extra, own_param, float_down):
        assert not fusable(other)
    container = nn.ModuleDict({"a": gelu, "b": mlp})
    assert fuse_gated_mlps(container) == ["b"]
    assert isinstance(container["b"], FusedSiluMulMLP) and container["a"] is gelu


def test_forward_silu_mul_refuses_mismatched_inputs_naming_the_layer(tiny_llama):
    model = _mlp_model(tiny_llama, "cpu")
    quantize(model, "fp8_per_channel", progress=False)
    down = model.model.layers[0].mlp.down_proj
    assert isinstance(down, QuantizedLinear)
    gate = torch.randn(3, 128, dtype=torch.bfloat16)
    for up in (gate[:, :64], gate.half()):
        with pytest.raises(ValueError, match="model.layers.0.mlp.down_proj"):
            down.forward_silu_mul(gate, up)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("m", [1, 16, 300, 4096])
@pytest.mark.parametrize("k", [576, 14336, 20000])
def test_fused_kernel_on_gpu_matches_eager_pytorch_at_model_sizes(m, k):
    _check_fused_kernel(m, k, torch.bfloat16, 2e-5)
