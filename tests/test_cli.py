import json

from qlinear.cli import main
from qlinear.schemes import SCHEMES


def test_kernels_json(capsys):
    assert main(["kernels", "--json", "--device", "cpu"]) == 0
    out = json.loads(capsys.readouterr().out)
    rows = {r["kernel"]: r for r in out["kernels"]}
    assert rows["emulation"]["runs_here"] and rows["emulation"]["schemes"] == list(SCHEMES)
    assert not rows["cublas_fp8"]["runs_here"] and "NVIDIA GPU" in rows["cublas_fp8"]["reason"]
    assert rows["cublas_fp8"]["schemes"] == ["fp8_per_tensor", "fp8_static", "fp8_per_channel"]


def test_unknown_scheme_is_a_clear_error(capsys):
    assert main(["explain", "--scheme", "fp3", "--model", "/nonexistent"]) == 2
    err = capsys.readouterr().err
    assert "unknown scheme 'fp3'; valid schemes: fp8_per_tensor, fp8_static, fp8_per_channel" in err


def test_missing_model_path(capsys):
    assert main(["generate", "--scheme", "fp8_per_block", "--model", "/nonexistent/dir", "--device", "cpu"]) == 2
    assert "model path /nonexistent/dir does not exist" in capsys.readouterr().err


def test_cuda_device_without_a_gpu_is_a_clear_error(capsys):
    import pytest
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert main(["kernels", "--device", "cuda"]) == 2
    assert "asked for CUDA, but PyTorch" in capsys.readouterr().err
    assert main(["kernels", "--device", "tpu9"]) == 2
    assert "is not a device" in capsys.readouterr().err


def test_token_windows_name_the_option_that_is_too_small():
    import pytest
    import torch

    from qlinear.evaluate import token_windows

    ids = torch.arange(100)
    assert token_windows(ids, 64, 32).tolist() == [list(range(32)), list(range(32, 64))]
    with pytest.raises(ValueError, match=r"tokens=16 \(--tokens\) is fewer than one context of 32 \(--context\)"):
        token_windows(ids, 16, 32)
    with pytest.raises(ValueError, match="text has 100 tokens, fewer than one context of 128"):
        token_windows(ids, 256, 128)


def test_bench_graph_option_times_prefill_as_graph_replays_and_references_at_their_best(monkeypatch):
    from qlinear import bench
    from qlinear.cli import build_parser

    calls = []
    monkeypatch.setattr(bench, "graph_median_us", lambda fn: calls.append("graph") or 30.0)
    monkeypatch.setattr(bench, "median_us", lambda fn: calls.append("eager") or 20.0)
    assert bench.time_us(None, 4096) == 20.0 and calls == ["eager"]  # default: prefill eagerly
    assert bench.time_us(None, 64) == 30.0 and calls[-1] == "graph"  # decode sizes: always graphs
    calls.clear()
    assert bench.time_us(None, 4096, graph=True) == 30.0 and calls == ["graph"]
    calls.clear()
    assert bench.reference_us(None, 4096, graph=True) == 20.0 and sorted(calls) == ["eager", "graph"]  # the faster
    calls.clear()
    assert bench.reference_us(None, 16, graph=True) == 30.0 and calls == ["graph"]
    for command in (["bench", "--graph"], ["tune", "--scheme", "int8_per_channel", "--graph"]):
        assert build_parser().parse_args(command).graph
    assert not build_parser().parse_args(["bench"]).graph


def test_explain_says_who_quantizes_the_activations_under_torch_compile(tmp_path, capsys, monkeypatch, tiny_llama):
    tiny_llama(layers=1).save_pretrained(tmp_path)
    assert main(["explain", "--scheme", "fp8_per_channel", "--platform", "sm_90", "--model", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    # every shape group but lm_head's and down_proj's, whose input is silu(gate) * up quantized in one pass
    assert text.count("under torch.compile x is quantized per token by the compiler") == text.count("\n- ") - 2
    assert text.count("x = silu(gate_proj) * up_proj is computed inside this layer's per-token quantization") == 1
    assert main(["explain", "--scheme", "fp8_per_channel", "--platform", "sm_90", "--model", str(tmp_path), "--json"]) == 0
    fused = [layer["name"] for layer in json.loads(capsys.readouterr().out)["layers"] if layer.get("silu_mul_fused_into_quantization")]
    assert fused == ["model.layers.0.mlp.down_proj"]
    assert main(["explain", "--scheme", "fp8_per_block", "--platform", "sm_90", "--model", str(tmp_path)]) == 0
    assert "by the compiler" not in capsys.readouterr().out  # its decode GEMM may quantize inside
    monkeypatch.setenv("QLINEAR_FUSE_ACT_QUANT", "0")
    assert main(["explain", "--scheme", "fp8_per_channel", "--platform", "sm_90", "--model", str(tmp_path), "--json"]) == 0
    layers = json.loads(capsys.readouterr().out)["layers"]
    assert {layer.get("compiled_activation_quantization") for layer in layers} == {"op", None}


def test_explain_says_when_no_choice_was_measured_on_this_gpu(tmp_path, capsys, monkeypatch, tiny_llama):
    # a GPU without qlinear tune entries or built-in defaults (an H100, or the simulated sm_90) runs the
    # static priority list; explain says so and names the command that measures. The CPU has nothing to tune.
    monkeypatch.setenv("QLINEAR_TUNE_CACHE", str(tmp_path / "empty.json"))
    tiny_llama(layers=1).save_pretrained(tmp_path / "model")
    assert main(["explain", "--scheme", "nvfp4_a16", "--platform", "sm_90", "--model", str(tmp_path / "model")]) == 0
    assert "no choice above was measured on simulated GPU (nvfp4_a16 has no `qlinear tune`" in capsys.readouterr().out
    assert main(["explain", "--scheme", "nvfp4_a16", "--platform", "cpu", "--model", str(tmp_path / "model")]) == 0
    assert "was measured" not in capsys.readouterr().out
