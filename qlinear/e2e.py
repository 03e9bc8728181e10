"""End-to-end timing of a Llama-3.1-8B-shaped decoder with random weights (no download).

Decode: one new token per sequence through every layer, captured in a CUDA graph (as serving
engines run decode) and timed as graph replays. Prefill: one forward over ``prefill_tokens``
tokens, timed eagerly. Every scheme starts from the same seeded weights.

With ``compile=True`` each decoder layer is compiled with ``torch.compile`` (PyTorch's regional
compilation: one layer's code compiled, reused by all), bf16 baseline included, so norms, RoPE and
activations run fused as in serving engines (vLLM compiles its models); the quantized layers' kernels
stay opaque ops, and per-token activation quantization is fused into the op before each layer
(:mod:`qlinear.layers.compiled`).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

LLAMA_31_8B = dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                   num_key_value_heads=8, vocab_size=128256, max_position_embeddings=8192, rope_theta=500000.0)


@dataclass
class E2EResult:
    scheme: str
    decode_ms: dict[int, float]  # batch -> ms per decode step
    prefill_ms: float
    kernels: str


def build_model(layers: int | None = None, device: str = "cuda", seed: int = 0, **overrides):
    """A Llama-3.1-8B-shaped ``LlamaForCausalLM`` in bf16 with random weights, built on ``device``."""
    from transformers import LlamaConfig, LlamaForCausalLM

    shape = {**LLAMA_31_8B, **overrides}
    if layers is not None:
        shape["num_hidden_layers"] = layers
    config = LlamaConfig(**shape)
    torch.manual_seed(seed)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device(device):
            model = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(previous)
    return model.eval()


@torch.inference_mode()
def decode_step_ms(model, batch: int, replays: int = 20) -> float:
    """Milliseconds per decode step at ``batch`` sequences, as CUDA-graph replays.

    The step is a forward of one new token per sequence without a KV cache: every linear layer,
    norm and the LM head run as in decode; attention sees only the new token. A 512-token cache
    would add ~67 MB of reads per sequence (0.4% of the bf16 weight bytes at batch 1).
    """
    graph = capture_decode_step(model, batch)
    for _ in range(3):
        graph.replay()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(replays):
        start.record()
        graph.replay()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return sorted(times)[len(times) // 2]


@torch.inference_mode()
def capture_decode_step(model, batch: int) -> torch.cuda.CUDAGraph:
    """A CUDA graph of one decode step of ``model`` at ``batch`` sequences (:func:`decode_step_ms`),
    after two warm-up steps (which compile, for a compiled model)."""
    device = next(model.parameters()).device
    token = torch.randint(0, model.config.vocab_size, (batch, 1), device=device)
    # transformers builds no mask for one token, except while a CUDA graph is being captured; given
    # one, warm-up and capture run the same code.
    mask = attend_all_mask(batch, 1, device)
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(2):
            model(token, attention_mask=mask, use_cache=False)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        model(token, attention_mask=mask, use_cache=False)
    return graph


def attend_all_mask(batch: int, tokens: int, device) -> torch.Tensor:
    """A 4-D boolean attention mask ``[batch, 1, tokens, tokens]``, causal (all True for one token),
    which transformers passes to attention as given."""
    return torch.ones(tokens, tokens, dtype=torch.bool, device=device).tril().expand(batch, 1, tokens, tokens)


@torch.inference_mode()
def prefill_ms(model, tokens: int = 4096) -> float:
    from .bench import median_us

    device = next(model.parameters()).device
    ids = torch.randint(0, model.config.vocab_size, (1, tokens), device=device)
    model(ids, use_cache=False, logits_to_keep=1)  # a compiled model compiles here, outside the timing
    return median_us(lambda: model(ids, use_cache=False, logits_to_keep=1), warmup_ms=100, rep_ms=400) / 1000.0


class _FreeLinear(torch.nn.Module):
    """Stands in for a linear layer at no cost: returns a zero output of the right shape, allocated on
    the first call and reused (no kernel), so a step can be timed without its linear layers."""

    def __init__(self, out_features: int):
        super().__init__()
        self.out_features = out_features
        self._outputs: dict[tuple, torch.Tensor] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.compiler.is_compiling():
            return _uninitialized(x, self.out_features)
        shape = (*x.shape[:-1], self.out_features)
        if shape not in self._outputs:
            self._outputs[shape] = x.new_zeros(shape)
        return self._outputs[shape]


@torch.library.custom_op("qlinear_e2e::uninitialized", mutates_args=())
def _uninitialized(x: torch.Tensor, out_features: int) -> torch.Tensor:
    """The compiled stand-in's output: allocated, never written (no kernel). The compiler may not
    reuse a cached tensor as an op output, and zeros would cost a fill per call."""
    return x.new_empty((*x.shape[:-1], out_features))


@_uninitialized.register_fake
def _(x: torch.Tensor, out_features: int) -> torch.Tensor:
    return x.new_empty((*x.shape[:-1], out_features))


LINEAR_FREE = "linear-free floor"


def compile_decoder_layers(model, options: dict | None = None) -> None:
    """``torch.compile`` each decoder layer in place, with static shapes (one compile per shape);
    ``options``: Inductor config patches, as ``torch.compile(options=...)`` takes them."""
    for layer in model.model.layers:
        layer.compile(dynamic=False, options=options)


def remove_linears(model) -> int:
    """Replace every ``nn.Linear`` of the decoder (``model.model``: what :func:`qlinear.quantize`
    quantizes; the LM head stays) by :class:`_FreeLinear`. Returns how many were replaced."""
    linears = [(name, mod) for name, mod in model.model.named_modules() if isinstance(mod, torch.nn.Linear)]
    for name, mod in linears:
        parent_name, _, attr = name.rpartition(".")
        setattr(model.model.get_submodule(parent_name) if parent_name else model.model, attr,
                _FreeLinear(mod.out_features))
    return len(linears)


def run(schemes: list[str], batches=(1, 16), layers: int | None = None, prefill_tokens: int = 4096,
        compile: bool = False) -> list[E2EResult]:
    """bf16, then the same model with its decoder's linear layers taking no time (the floor every
    scheme's speedup is bounded by), then each scheme; with ``compile``, every model's decoder
    layers compiled (:func:`compile_decoder_layers`) after quantization."""
    from .layers import quantize

    results = []
    for scheme in ["bf16", LINEAR_FREE, *schemes]:
        model = build_model(layers)
        kernels = "torch.mm (cuBLAS bf16)"
        if scheme == LINEAR_FREE:
            kernels = f"{remove_linears(model)} decoder linear layers removed; LM head, norms, attention kept"
        elif scheme != "bf16":
            report = quantize(model, scheme, progress=False)
            kernels = ", ".join(sorted({r.kernel for r in report.layers if r.kernel}))
            if report.fused_mlps:
                kernels += f"; SiLU-and-multiply fused into down_proj's quantization in {len(report.fused_mlps)} MLPs"
        if compile:
            torch._dynamo.reset()  # each model compiles afresh (all share one layer code, and its recompile limit)
            compile_decoder_layers(model)
            if any(getattr(m, "compiler_quantizes_input", False) for m in model.modules()):
                kernels += "; activation quantization fused by the compiler"
        decode, prefill = measure(model, batches, prefill_tokens)
        results.append(E2EResult(scheme, decode, prefill, kernels))
        print(timing_line(f"{scheme:18}", decode, prefill, prefill_tokens) + f"  [{kernels}]", flush=True)
        del model
        torch.cuda.empty_cache()
    return results


def measure(model, batches=(1, 16), prefill_tokens: int = 4096) -> tuple[dict[int, float], float]:
    """``({batch: ms per decode step}, prefill ms)`` of ``model`` (:func:`decode_step_ms`, :func:`prefill_ms`)."""
    return {b: decode_step_ms(model, b) for b in batches}, prefill_ms(model, prefill_tokens)


def timing_line(label: str, decode: dict[int, float], prefill: float, prefill_tokens: int = 4096) -> str:
    """One printed line of :func:`measure`'s results."""
    return (f"{label} " + " ".join(f"decode b={b}: {ms:7.3f} ms" for b, ms in decode.items())
            + f"  prefill {prefill_tokens}: {prefill:8.2f} ms")
