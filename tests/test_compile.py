"""QuantizedLinear under torch.compile: the kernel call is one opaque op, so a compiled layer equals
the eager one bitwise, a model compiles without graph breaks, and identical decoder layers share one
compile. (A compiled decoder differs from eager in its fused norms and activations, so whole-model
outputs are compared within bf16 rounding.)"""
import copy

import pytest
import torch

from qlinear.e2e import attend_all_mask, compile_decoder_layers, remove_linears
from qlinear.layers import QuantizedLinear, quantize
from qlinear.layers.compiled import linear as compiled_linear
from qlinear.schemes import SCHEMES

@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    yield
    torch._dynamo.reset()


def _close(compiled, eager):
    """Within the bf16 rounding that the fused norms and activations change (seen: ~1e-2 relative)."""
    return float((compiled.float() - eager.float()).norm() / eager.float().norm()) < 3e-2


@pytest.mark.parametrize("scheme", ["fp8_per_channel", "nvfp4_a16"])
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


ONLINE_SCHEMES = [name for name, scheme in SCHEMES.items() if not scheme.static_activation]


@pytest.mark.parametrize("scheme", ONLINE_SCHEMES)
def test_compiled_layer_is_one_graph_around_the_op_and_equals_eager_bitwise(scheme):
    torch.manual_seed(0)
    layer = QuantizedLinear.from_linear(torch.nn.Linear(96, 40, bias=True, dtype=torch.bfloat16), scheme)
    graphs = []

    def inspect(gm, example_inputs):
        graphs.append(gm)
        return gm

    x = torch.randn(3, 5, 96, dtype=torch.bfloat16)
    out = torch.compile(layer, fullgraph=True)(x)  # inductor
    assert out.shape == (3, 5, 40) and torch.equal(out, layer(x))
    torch.compile(layer, backend=inspect, fullgraph=True)(x)
    targets = [n.target for n in graphs[0].graph.nodes if n.op == "call_function"]
    assert torch.ops.qlinear.linear.default in targets


def test_compiled_layer_with_a_symbolic_m_equals_eager_at_every_m():
    torch.manual_seed(0)
    layer = QuantizedLinear.from_linear(torch.nn.Linear(64, 48, dtype=torch.bfloat16), "fp8_per_block")
    compiled = torch.compile(layer, dynamic=True, fullgraph=True)
    for m in (2, 9, 70, 1100):  # one graph; at run time the op looks up the route of each M
        x = torch.randn(m, 64, dtype=torch.bfloat16)
        assert torch.equal(compiled(x), layer(x)), m
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 1


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
def test_compiled_layer_on_gpu_equals_eager_bitwise_on_every_route(scheme):
    torch.manual_seed(0)
    linear = torch.nn.Linear(512, 384, bias=True, dtype=torch.bfloat16, device="cuda")
    layer = QuantizedLinear.from_linear(linear, scheme)
    compiled = torch.compile(layer, dynamic=False, fullgraph=True)
    for m in (1, 16, 300):  # decode and prefill routes
        x = torch.randn(m, 512, dtype=torch.bfloat16, device="cuda")
        assert torch.equal(compiled(x), layer(x)), m


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("scheme", ["fp8_per_channel", "int8_per_channel", "nvfp4_a16"])
def test_reduce_overhead_mode_replays_the_layers_in_inductors_cuda_graphs(scheme):
    torch.manual_seed(0)
    linear = torch.nn.Linear(512, 384, dtype=torch.bfloat16, device="cuda")
    layer = QuantizedLinear.from_linear(linear, scheme)
    compiled = torch.compile(layer, mode="reduce-overhead", dynamic=False, fullgraph=True)
    for m in (1, 16, 300):
        for _ in range(3):  # warm-up, record, replay
            x = torch.randn(m, 512, dtype=torch.bfloat16, device="cuda")
            out = compiled(x).clone()
            assert torch.equal(out, layer(x)), m
    assert torch._dynamo.utils.counters["inductor"]["cudagraph_skips"] == 0  # inductor did not fall back to eager
