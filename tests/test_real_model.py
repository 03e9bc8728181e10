"""End to end on the real embedded model (SmolLM2-135M-Instruct GGUF) and real text (pydoc)."""
import copy
import json

import pytest
import torch

import qlinear
from qlinear.cli import main
from qlinear.evaluate import perplexity, token_windows
from qlinear.models import load_model
from qlinear.text import pydoc_text

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def real():
    model, tok = load_model(None, device="cpu")
    ids = tok(pydoc_text(), return_tensors="pt").input_ids[0]
    return model, token_windows(ids, 1024, 512)


def test_real_model_shapes_are_ragged_for_128_blocks(real):
    model, _ = real
    shapes = {tuple(m.weight.shape) for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and n != "lm_head"}
    assert shapes == {(576, 576), (192, 576), (1536, 576), (576, 1536)}


@pytest.mark.parametrize("scheme,limit", [("fp8_per_block", 0.03), ("int8_per_channel", 0.05), ("nvfp4_a16", 0.4)])
def test_quantized_perplexity_close_to_bf16(real, scheme, limit):
    model, windows = real
    base, _, _ = perplexity(model, windows)
    assert 5 < base < 40  # sane for a 135M model on documentation prose
    quantized = copy.deepcopy(model)
    report = qlinear.quantize(quantized, scheme, progress=False)
    assert sum(r.action == "quantize" for r in report.layers) == 210
    ppl, tokens, _ = perplexity(quantized, windows)
    assert tokens == 1024
    assert base < ppl < base * (1 + limit)


def test_cli_perplexity_json(capsys):
    assert main(["perplexity", "--scheme", "fp8_per_channel", "--tokens", "256", "--context", "128", "--json", "--device", "cpu"]) == 0
    out = json.loads(capsys.readouterr().out)
    rows = {r["scheme"]: r for r in out["results"]}
    assert set(rows) == {"bf16", "fp8_per_channel"}
    assert rows["fp8_per_channel"]["kernels"] == ["cpu_scaled_mm_fp8"]
    assert rows["fp8_per_channel"]["weight_mb"] < 0.7 * rows["bf16"]["weight_mb"]
    assert abs(rows["fp8_per_channel"]["change_pct"]) < 10


def test_cli_explain_json_shows_every_rejection(capsys):
    assert main(["explain", "--scheme", "fp8_per_channel", "--platform", "sm_80", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    layers = {layer["name"]: layer for layer in out["layers"]}
    q = layers["model.layers.0.self_attn.q_proj"]
    assert q["kernels"] == "emulation" and q["shape"] == [576, 576]
    assert [r["m"] for r in q["dispatch"]] == ["1", "2-16", "17-64", "65-1024", "1025+"]
    rejected = {r["kernel"]: r["reason"] for r in q["dispatch"][0]["rejected"]}
    assert "sm_89" in rejected["cublas_fp8"] and "sm_89" in rejected["triton_fp8_rowwise"]
    assert "takes symmetric int8" in rejected["torch_int_mm"]
    assert layers["lm_head"]["action"] == "ignore"
    assert q["compiled_activation_quantization"] == "op"  # the emulation fallback quantizes inside


def test_cli_generate_runs(capsys):
    assert main(["generate", "--scheme", "int8_per_channel", "--max-new-tokens", "8", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "torch_int_mm x210" in out and "8 tokens" in out


def test_cli_quantize_writes_a_checkpoint_that_reads_back_to_the_same_perplexity(tmp_path, capsys):
    out = tmp_path / "smollm2-fp8"
    assert main(["quantize", "--scheme", "fp8_per_channel", "--out", str(out), "--device", "cpu"]) == 0
    capsys.readouterr()
    args = ["--tokens", "256", "--context", "128", "--json", "--device", "cpu"]
    assert main(["perplexity", "--scheme", "fp8_per_channel", *args]) == 0
    online = {r["scheme"]: r for r in json.loads(capsys.readouterr().out)["results"]}["fp8_per_channel"]
    assert main(["perplexity", "--model", str(out), *args]) == 0
    (read,) = json.loads(capsys.readouterr().out)["results"]
    assert read["scheme"] == "fp8_per_channel (checkpoint)"
    assert read["perplexity"] == online["perplexity"]  # bit-exact weights, same kernels
    assert read["weight_mb"] == online["weight_mb"]
