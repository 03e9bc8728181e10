"""Whole-model online quantization: patterns, skipping, bad weights, reports."""
import math

import pytest
import torch
from torch import nn

import qlinear
from qlinear.formats import dequantize
from qlinear.layers import QuantizedLinear, SchemeNotApplicable, plan
from qlinear.layers.patterns import matches
from qlinear.schemes import ONLINE_SCHEMES


class Tiny(nn.Module):
    def __init__(self, k=64, odd=False):
        super().__init__()
        self.embed = nn.Embedding(10, k)
        self.blocks = nn.ModuleList(
            nn.ModuleDict({"q_proj": nn.Linear(k, k), "up_proj": nn.Linear(k, 2 * k, bias=False)}) for _ in range(2)
        )
        self.odd = nn.Linear(48, 8) if odd else None
        self.lm_head = nn.Linear(k, 10, bias=False)

    def forward(self, ids):
        h = self.embed(ids)
        for b in self.blocks:
            h = h + b["up_proj"](b["q_proj"](h))[..., : h.shape[-1]]
        return self.lm_head(h)


def test_quantize_replaces_linears_and_reports():
    torch.manual_seed(0)
    model = Tiny()
    ref_weight = model.blocks[0]["q_proj"].weight.detach().clone()
    report = qlinear.quantize(model, "fp8_per_channel", progress=False)
    assert isinstance(model.blocks[0]["q_proj"], QuantizedLinear)
    assert isinstance(model.lm_head, nn.Linear)  # ignored by default
    assert isinstance(model.embed, nn.Embedding)
    rows = {r.name: r for r in report.layers}
    q = rows["blocks.0.q_proj"]
    expected = plan(Tiny(), "fp8_per_channel", platform=qlinear.platform_of("cpu"))[0].dispatch.kernel_names()
    assert q.action == "quantize" and q.kernel == expected and q.shape == (64, 64)
    assert q.bytes_before == 64 * 64 * 4 + 64 * 4
    assert q.bytes_after == 64 * 64 + 64 * 4 + 64 * 4  # e4m3 weight, N fp32 scales, fp32 bias
    # The report's SQNR is the weight's, recomputed here independently.
    layer = model.blocks[0]["q_proj"]
    deq = layer.weight.float() * layer.weight_scale.reshape(-1, 1)
    expect = 10 * math.log10(float(ref_weight.pow(2).sum() / (ref_weight - deq).pow(2).sum()))
    assert q.sqnr_db == pytest.approx(expect, abs=1e-3)
    assert rows["lm_head"].action == "ignore" and rows["lm_head"].kernel is None
    model(torch.tensor([[1, 2, 3]]))


def test_patterns_exact_suffix_glob_regex():
    assert matches("model.lm_head", "lm_head")
    assert not matches("model.lm_head_extra", "lm_head")
    assert matches("blocks.1.q_proj", "blocks.*.q_proj")
    assert matches("blocks.1.up_proj", "re:blocks\\.\\d+\\.(up|q)_proj")
    assert not matches("xblocks.1.up_proj", "re:blocks\\.\\d\\.up_proj")
    model = Tiny()
    qlinear.quantize(model, "int8_per_channel", ignore=["lm_head", "blocks.0.*", "re:.*up_proj"], progress=False)
    assert isinstance(model.blocks[1]["q_proj"], QuantizedLinear)
    assert isinstance(model.blocks[0]["q_proj"], nn.Linear)
    assert isinstance(model.blocks[1]["up_proj"], nn.Linear)


def test_layer_the_scheme_cannot_take_raises_naming_it_and_leaves_model_untouched():
    model = Tiny(odd=True)
    with pytest.raises(SchemeNotApplicable, match=r"layer odd \[8x48\]: mxfp8 needs in_features divisible by 32"):
        qlinear.quantize(model, "mxfp8", progress=False)
    assert not any(isinstance(m, QuantizedLinear) for m in model.modules())


def test_skip_unsupported_keeps_layer_in_float_and_reports_it():
    model = Tiny(odd=True)
    qlinear.quantize(model, "nvfp4_a16", skip_unsupported=True, progress=False)
    assert isinstance(model.odd, QuantizedLinear)  # 48 % 16 == 0: NVFP4 takes it
    model = Tiny(odd=True)
    report = qlinear.quantize(model, "mxfp4_a16", skip_unsupported=True, progress=False)
    odd = next(r for r in report.layers if r.name == "odd")
    assert odd.action == "skip" and "divisible by 32" in odd.reason
    assert isinstance(model.odd, nn.Linear) and isinstance(model.blocks[0]["q_proj"], QuantizedLinear)


def test_nan_weights_raise_with_layer_and_count_before_any_change():
    model = Tiny()
    with torch.no_grad():
        model.blocks[1]["up_proj"].weight[0, :3] = float("nan")
        model.blocks[1]["up_proj"].weight[1, 0] = float("inf")
    with pytest.raises(ValueError, match="layer blocks.1.up_proj: weight has 4 NaN/Inf values"):
        qlinear.quantize(model, "fp8_per_block", progress=False)
    assert not any(isinstance(m, QuantizedLinear) for m in model.modules())


def test_plan_touches_no_weights_and_reports_kernels():
    model = Tiny()
    before = {n: p.clone() for n, p in model.named_parameters()}
    plans = plan(model, "nvfp4", platform=qlinear.platform_of("cpu"))
    assert [p.action for p in plans].count("quantize") == 4
    assert all(p.dispatch.kernel_names() == "emulation" for p in plans if p.dispatch)
    assert all(torch.equal(before[n], p) for n, p in model.named_parameters())


def test_static_activation_scheme_is_refused_online_with_the_reason():
    model = Tiny()
    with pytest.raises(ValueError, match="fp8_static uses calibrated static input scales.*fp8_per_tensor"):
        qlinear.quantize(model, "fp8_static", progress=False)
    assert all(isinstance(m, torch.nn.Linear) for n, m in model.named_modules() if n.endswith("proj"))


@pytest.mark.parametrize("scheme", ONLINE_SCHEMES)
def test_quantized_model_output_close_to_float(scheme):
    torch.manual_seed(0)
    model = Tiny()
    ids = torch.tensor([[1, 2, 3, 4]])
    ref = model(ids)
    qlinear.quantize(model, scheme, progress=False)
    out = model(ids)
    rel = float((out - ref).detach().norm() / ref.detach().norm())
    assert rel < (0.25 if "4" in scheme else 0.06), rel


def test_report_to_dict_and_table():
    model = Tiny()
    report = qlinear.quantize(model, "fp8_a16", progress=False)
    d = report.to_dict()
    assert d["scheme"] == "fp8_a16" and len(d["layers"]) == 5
    assert d["bytes_after"] < d["bytes_before"]
    assert "blocks.0.q_proj" in report.table() and "total" in report.table()


def test_weight_dequantizes_to_what_the_layer_computes():
    lin = nn.Linear(64, 16, bias=False)
    layer = QuantizedLinear.from_linear(lin, "mxfp4_a16", name="x")
    x = torch.randn(3, 64)
    expect = x.double() @ dequantize(layer.quantized_weight(), torch.float64).t()
    assert torch.allclose(layer(x).double(), expect, atol=1e-5)


def test_convert_to_runs_the_converted_format_and_reports_its_error():
    """nvfp4_a16 converted to fp8_per_block: the layer holds exactly requantize(quantize(w)) and runs
    the FP8 block scheme; the report's SQNR is the converted weight against the float original."""
    from qlinear.formats import quantize as quantize_tensor
    from qlinear.formats import requantize, sqnr_db

    torch.manual_seed(0)
    model = Tiny()
    original = model.blocks[0]["q_proj"].weight.detach().clone()
    report = qlinear.quantize(model, "nvfp4_a16", convert_to="fp8_per_block", progress=False)
    assert report.scheme == "nvfp4_a16->fp8_per_block"
    layer = model.blocks[0]["q_proj"]
    assert layer.scheme.name == "fp8_per_block" and layer.weight.dtype == torch.float8_e4m3fn
    expect, _ = requantize(quantize_tensor(original, qlinear.SCHEMES["nvfp4_a16"].weight), layer.scheme.weight)
    assert torch.equal(layer.weight.view(torch.uint8), expect.data.view(torch.uint8))
    assert torch.equal(layer.weight_scale, expect.scale)
    row = {r.name: r for r in report.layers}["blocks.0.q_proj"]
    assert row.sqnr_db == pytest.approx(sqnr_db(original, dequantize(expect)))
    direct = sqnr_db(original, dequantize(quantize_tensor(original, qlinear.SCHEMES["nvfp4_a16"].weight)))
    assert direct - 1.0 < row.sqnr_db < direct  # converting costs a little on top of NVFP4's own error


def test_convert_to_a_static_scheme_is_refused():
    with pytest.raises(ValueError, match="fp8_static uses calibrated static input scales"):
        qlinear.quantize(Tiny(), "nvfp4_a16", convert_to="fp8_static", progress=False)
