"""QuantizedLinear under torch.compile: the kernel call is one opaque op, a model compiles without
graph breaks, and identical decoder layers share one compile. A layer whose kernel quantizes x
itself equals the eager one bitwise. Per-token activation quantization (per-channel FP8, INT8) runs
outside the op, in PyTorch ops the compiler fuses into x's producer: there the compiler's own
arithmetic may move a token's scale by a few units in the last place, so such a layer is checked
against the float64 reference of the operands the compiler's quantization gives. A compiled decoder
differs from eager in its fused norms and activations, so whole-model outputs are compared within
that rounding."""
import copy

import pytest
import torch

from qlinear.e2e import attend_all_mask, compile_decoder_layers, remove_linears
from qlinear.formats import dequantize
from qlinear.formats import quantize as fmt_quantize
from qlinear.layers import QuantizedLinear, quantize
from qlinear.layers.compiled import linear as compiled_linear
from qlinear.schemes import SCHEMES

from .test_kernels import assert_close_to_reference

ONLINE_SCHEMES = [name for name, scheme in SCHEMES.items() if not scheme.static_activation]
PER_TOKEN = ("fp8_per_channel", "int8_per_channel")  # every kernel of theirs takes x quantized outside


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    yield
    torch._dynamo.reset()


def _close(compiled, eager):
    """Within what the fused norms and activations change by skipping bf16 roundings, which the FP8
    quantization of a layer's input then amplifies (seen on the 3-layer model below: 2.6% relative
    with the quantization inside the op, 3.8% with it fused into the norm)."""
    return float((compiled.float() - eager.float()).norm() / eager.float().norm()) < 5e-2


def _quantized_tensors(x, spec):
    q = fmt_quantize(x, spec)
    return q.data, q.scale


def assert_compiled_layer_matches(layer, compiled, x, what):
    """Bitwise equal to eager where the op quantizes x; otherwise the compiled quantization's scales
    within 4 units in the last place of eager mode's, and the output within 1e-3 (beyond bf16
    rounding) of float64 dequantize-then-matmul of the operands that quantization gives."""
    out, eager = compiled(x), layer(x)
    if not layer.compiler_quantizes_input:
        assert torch.equal(out, eager), what
        return
    x2 = x.reshape(-1, layer.in_features)
    spec = layer.scheme.activation
    q, scale = torch.compile(_quantized_tensors, dynamic=False, fullgraph=True)(x2, spec)
    eager_scale = fmt_quantize(x2, spec).scale
    assert ((scale - eager_scale).abs() <= 4 * torch.finfo(torch.float32).eps * eager_scale).all(), what
    ref = (q.double() * scale.double()) @ dequantize(layer.quantized_weight(), torch.float64).t()
    if layer.bias is not None:
        ref = ref + layer.bias.double()
    assert_close_to_reference(out.reshape(ref.shape), ref, what)


@pytest.mark.parametrize("scheme", ["fp8_per_channel", "int8_per_channel", "nvfp4_a16"])
def test_compiled_decoder_matches_eager_and_layers_share_one_compile(scheme, tiny_llama):
    model = tiny_llama(layers=3)
    quantize(model, scheme, progress=False)
    ids = torch.randint(0, 100, (2, 7))
    with torch.inference_mode():
        eager = model(ids, use_cache=False).logits
        compile_decoder_layers(model)
        # A recompile would mean a guard on something that differs between layers (such as a name).
        with torch._dynamo.config.patch(error_on_recompile=True):
            compiled = model(ids, use_cache=False).logits
    assert _close(compiled, eager)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 1


@pytest.mark.parametrize("scheme", ONLINE_SCHEMES)
def test_compiled_layer_is_one_graph_around_the_op_and_matches_eager(scheme):
    torch.manual_seed(0)
    layer = QuantizedLinear.from_linear(torch.nn.Linear(96, 40, bias=True, dtype=torch.bfloat16), scheme)
    graphs = []

    def inspect(gm, example_inputs):
        graphs.append(gm)
        return gm

    x = torch.randn(3, 5, 96, dtype=torch.bfloat16)
    compiled = torch.compile(layer, fullgraph=True)  # inductor
    assert compiled(x).shape == (3, 5, 40)
    assert_compiled_layer_matches(layer, compiled, x, scheme)
    torch.compile(layer, backend=inspect, fullgraph=True)(x)
    targets = {n.target for n in graphs[0].graph.nodes if n.op == "call_function"}
    # (where this torch cannot run FP8 on the CPU, the emulation fallback quantizes inside the op)
    outside = scheme in PER_TOKEN and layer.kernel.name != "emulation"
    assert layer.compiler_quantizes_input == outside
    op = torch.ops.qlinear.linear_quantized.default if outside else torch.ops.qlinear.linear.default
    assert op in targets and len({torch.ops.qlinear.linear.default, torch.ops.qlinear.linear_quantized.default} & targets) == 1
    if outside:  # the quantization is traced: the compiler sees its amax
        assert "amax" in {n.target for n in graphs[0].graph.nodes if n.op == "call_method"}


@pytest.mark.parametrize("scheme", PER_TOKEN)
@pytest.mark.parametrize("dtype", [torch.float16, torch.float32])
def test_compiler_quantized_input_of_every_float_dtype_matches_eager(scheme, dtype):
    torch.manual_seed(0)
    layer = QuantizedLinear.from_linear(torch.nn.Linear(96, 40, bias=True, dtype=torch.bfloat16), scheme)
    x = torch.randn(7, 96, dtype=dtype)
    compiled = torch.compile(layer, fullgraph=True)
    assert compiled(x).dtype == dtype
    assert_compiled_layer_matches(layer, compiled, x, f"{scheme} {dtype}")


def test_fuse_act_quant_0_keeps_the_quantization_inside_the_op(monkeypatch):
    monkeypatch.setenv("QLINEAR_FUSE_ACT_QUANT", "0")
    layer = QuantizedLinear.from_linear(torch.nn.Linear(64, 32, dtype=torch.bfloat16), "fp8_per_channel")
    graphs = []
    torch.compile(layer, backend=lambda gm, _: graphs.append(gm) or gm, fullgraph=True)(torch.randn(4, 64, dtype=torch.bfloat16))
    targets = {n.target for n in graphs[0].graph.nodes if n.op == "call_function"}
    assert torch.ops.qlinear.linear.default in targets and torch.ops.qlinear.linear_quantized.default not in targets


@pytest.mark.parametrize("scheme", ["fp8_per_block", "fp8_per_channel"])  # quantized in the op, and outside it
def test_compiled_layer_with_a_symbolic_m_equals_eager_at_every_m(scheme):
    torch.manual_seed(0)
    layer = QuantizedLinear.from_linear(torch.nn.Linear(64, 48, dtype=torch.bfloat16), scheme)
    compiled = torch.compile(layer, dynamic=True, fullgraph=True)
    inputs = [torch.randn(m, 64, dtype=torch.bfloat16) for m in (2, 9, 70, 1100)]
    for x in inputs:  # one graph; at run time the op looks up the route of each M
        compiled(x)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 1
    for x in inputs:
        assert_compiled_layer_matches(layer, compiled, x, x.shape[0])


def test_op_finds_the_layer_after_to_deepcopy_and_assigned_state_and_refuses_a_foreign_tensor():
    torch.manual_seed(0)
    layer = QuantizedLinear.from_linear(torch.nn.Linear(64, 32, dtype=torch.bfloat16), "int8_per_channel")
    x = torch.randn(4, 64, dtype=torch.bfloat16)
    expected = layer(x)
    layer.to("cpu", torch.bfloat16)  # nn.Module._apply may replace buffers
    twin = copy.deepcopy(layer)
    assert torch.equal(compiled_linear(x, layer.weight), expected)
    assert torch.equal(compiled_linear(x, twin.weight), expected)
    state = {k: v.clone() for k, v in layer.state_dict().items()}
    layer.load_state_dict(state, assign=True)  # replaces the buffers by the given tensors
    assert layer.weight is state["weight"] and torch.equal(compiled_linear(x, layer.weight), expected)
    with pytest.raises(RuntimeError, match="no live QuantizedLinear"):
        compiled_linear(x, layer.weight.clone())


def test_linear_free_floor_compiles_without_kernels_for_its_stand_ins(tiny_llama):
    model = tiny_llama()
    remove_linears(model)
    compile_decoder_layers(model)
    ids = torch.randint(0, 100, (1, 4))
    with torch.inference_mode():
        assert model(ids, use_cache=False).logits.shape == (1, 4, 100)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 1


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("scheme", ["fp8_per_channel", "fp8_per_block", "int8_per_channel", "nvfp4_a16", "mxfp8"])
def test_compiled_decoder_on_gpu_matches_eager_and_captures_in_a_cuda_graph(scheme, tiny_llama):
    model = tiny_llama(layers=2, device="cuda")
    quantize(model, scheme, progress=False)
    # The same explicit mask in every call: transformers builds none otherwise, except during capture.
    inputs = [(torch.randint(0, 100, (b, t), device="cuda"), attend_all_mask(b, t, "cuda"))
              for b, t in [(1, 1), (16, 1), (1, 300)]]  # decode and prefill routes
    with torch.inference_mode():
        eager = [model(ids, attention_mask=mask, use_cache=False).logits for ids, mask in inputs]
        compile_decoder_layers(model)
        for (ids, mask), reference in zip(inputs, eager):
            compiled = model(ids, attention_mask=mask, use_cache=False).logits
            assert _close(compiled, reference), ids.shape
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                out = model(ids, attention_mask=mask, use_cache=False).logits
            graph.replay()
            torch.cuda.synchronize()
            assert torch.equal(out, compiled), ids.shape


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("scheme", ONLINE_SCHEMES)
@pytest.mark.parametrize("fused", ["1", "0"])
def test_compiled_layer_on_gpu_matches_eager_on_every_route(scheme, fused, monkeypatch):
    monkeypatch.setenv("QLINEAR_FUSE_ACT_QUANT", fused)
    torch.manual_seed(0)
    linear = torch.nn.Linear(512, 384, bias=True, dtype=torch.bfloat16, device="cuda")
    layer = QuantizedLinear.from_linear(linear, scheme)
    assert layer.compiler_quantizes_input == (fused == "1" and scheme in PER_TOKEN)
    compiled = torch.compile(layer, dynamic=False, fullgraph=True)
    for m in (1, 16, 300):  # decode and prefill routes
        x = torch.randn(m, 512, dtype=torch.bfloat16, device="cuda")
        assert_compiled_layer_matches(layer, compiled, x, f"{scheme} M={m}")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("scheme", ["fp8_per_channel", "int8_per_channel", "nvfp4_a16"])
def test_reduce_overhead_mode_replays_the_layers_in_inductors_cuda_graphs(scheme):
    torch.manual_seed(0)
    linear = torch.nn.Linear(512, 384, dtype=torch.bfloat16, device="cuda")
    layer = QuantizedLinear.from_linear(linear, scheme)
    compiled = torch.compile(layer, mode="reduce-overhead", dynamic=False, fullgraph=True)
    plain = torch.compile(layer, dynamic=False, fullgraph=True)  # the same graph without CUDA graphs
    for m in (1, 16, 300):
        x = torch.randn(m, 512, dtype=torch.bfloat16, device="cuda")
        for _ in range(3):  # warm-up, record, replay
            assert torch.equal(compiled(x).clone(), plain(x)), m
    assert torch._dynamo.utils.counters["inductor"]["cudagraph_skips"] == 0  # inductor did not fall back to eager
