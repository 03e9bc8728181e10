"""Perplexity, throughput and memory of a (quantized) causal language model."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class PerplexityResult:
    scheme: str
    perplexity: float
    tokens: int
    seconds: float
    weight_bytes: int
    linear_bytes: int

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds else float("nan")


def weight_bytes(module: nn.Module) -> int:
    """Bytes of all parameters and buffers, counting tied tensors once."""
    seen: dict[tuple[int, int], int] = {}
    for t in [*module.parameters(), *module.buffers()]:
        seen[(t.data_ptr(), t.numel())] = t.numel() * t.element_size()
    return sum(seen.values())


def linear_bytes(model: nn.Module) -> int:
    """Bytes held by the linear layers (float or quantized), the part quantization changes."""
    from .layers import QuantizedLinear

    return sum(weight_bytes(m) for m in model.modules() if isinstance(m, (nn.Linear, QuantizedLinear)))


def token_windows(ids: torch.Tensor, tokens: int, context: int) -> torch.Tensor:
    """The first ``tokens`` ids cut into non-overlapping windows ``[n, context]``.

    Raises:
        ValueError: ``tokens`` or the ids available are fewer than ``context``.
    """
    if tokens < context:
        raise ValueError(f"tokens={tokens} (--tokens) is fewer than one context of {context} (--context)")
    usable = min(tokens, ids.numel()) // context * context
    if usable == 0:
        raise ValueError(f"text has {ids.numel()} tokens, fewer than one context of {context}")
    return ids[:usable].reshape(-1, context)


@torch.inference_mode()
def perplexity(model: nn.Module, windows: torch.Tensor, *, batch: int = 4) -> tuple[float, int, float]:
    """Perplexity over ``windows [n, context]``: exp of the mean next-token NLL inside each window.

    Returns ``(perplexity, tokens run through the model, seconds spent in forward passes)``.
    """
    device = next(model.parameters()).device
    nll, predicted, seconds = 0.0, 0, 0.0
    for start in range(0, windows.shape[0], batch):
        chunk = windows[start : start + batch].to(device)
        t0 = time.perf_counter()
        logits = model(chunk).logits.float()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds += time.perf_counter() - t0
        loss = nn.functional.cross_entropy(
            logits[:, :-1].reshape(-1, logits.shape[-1]), chunk[:, 1:].reshape(-1), reduction="sum"
        )
        nll += float(loss)
        predicted += chunk[:, 1:].numel()
    return math.exp(nll / predicted), windows.numel(), seconds


@torch.inference_mode()
def generate(model: nn.Module, tokenizer, prompt: str, max_new_tokens: int) -> tuple[str, int, float]:
    """Greedy generation with the tokenizer's chat template when it has one.

    Returns ``(new text, new tokens, seconds)``.
    """
    device = next(model.parameters()).device
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True)
    else:
        text = prompt
    inputs = tokenizer(text, return_tensors="pt").to(device)
    t0 = time.perf_counter()
    out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.eos_token_id)
    seconds = time.perf_counter() - t0
    new = out[0, inputs["input_ids"].shape[1] :]
    return tokenizer.decode(new, skip_special_tokens=True), new.numel(), seconds
