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
