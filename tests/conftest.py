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
