import os

import torch

if not torch.cuda.is_available():
    # Triton kernels run under its CPU interpreter here; must be set before they are defined.
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (run on the device machine)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    monkeypatch.delenv("QLINEAR_BACKEND", raising=False)
    monkeypatch.delenv("QLINEAR_DISABLED_KERNELS", raising=False)


@pytest.fixture
def tiny_llama():
    """A factory of small Llama-architecture models with random bf16 weights (hidden 64, 4 heads, 2 KV
    heads, vocabulary 100): ``tiny_llama(layers=2, device="cpu")``."""
    from qlinear.e2e import build_model

    def build(layers: int = 2, device: str = "cpu"):
        return build_model(layers=layers, device=device, hidden_size=64, intermediate_size=128,
                           num_attention_heads=4, num_key_value_heads=2, vocab_size=100)

    return build
