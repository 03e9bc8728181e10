"""Gated MLPs (``down_proj(silu(gate_proj(x)) * up_proj(x))``: Llama, Qwen, Mistral) whose down
projection takes x quantized per token: SiLU-and-multiply fused into that quantization.

Unfused, ``h = silu(gate) * up`` is written out and read back to be quantized (eager mode), or,
compiled, Inductor fuses the quantization into the SiLU-and-multiply but, the row being wider than
its one-pass reductions (1024 elements), reads gate and up twice: once for the row's amax, once to
quantize. One Triton program per row here reads gate and up once and writes only the quantized h
and its scale (:func:`qlinear.kernels.triton.act_quant.silu_mul_quantize_per_token`), with h
rounded where PyTorch's eager ops round it and silu computed with the fast exp2 and division (see
there: the same h but within a few fp32 units of a bf16 rounding tie). Elsewhere than CUDA the
fused MLP runs PyTorch's own ops and the reference quantization, and equals the unfused one bit for
bit. The same fusion in vLLM is a compiler pass over its graph (SiLU-and-multiply + quant).

:func:`fuse_gated_mlps` (called by :func:`qlinear.quantize`) replaces each module whose children
are exactly ``gate_proj``, ``up_proj``, ``down_proj`` (:class:`QuantizedLinear`) and ``act_fn`` (SiLU),
where ``down_proj`` takes quantized input (:attr:`QuantizedLinear.compiler_quantizes_input`),
by a :class:`FusedSiluMulMLP` holding the same three layers under the same names (the state dict
keeps its keys).
"""
from __future__ import annotations

import torch
from torch import nn

from .linear import QuantizedLinear

PROJECTIONS = ("gate_proj", "up_proj", "down_proj")


class FusedSiluMulMLP(nn.Module):
    """``down_proj(silu(gate_proj(x)) * up_proj(x))`` with the SiLU-and-multiply done in the
    quantization of ``down_proj``'s input (:meth:`QuantizedLinear.forward_silu_mul`).

    Accepts ``x [..., hidden]`` as the MLP it replaces did; returns ``[..., hidden]`` in x's dtype.
    """

    def __init__(self, gate_proj: nn.Module, up_proj: nn.Module, down_proj: QuantizedLinear):
        super().__init__()
        self.gate_proj, self.up_proj, self.down_proj = gate_proj, up_proj, down_proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj.forward_silu_mul(self.gate_proj(x), self.up_proj(x))


def _is_silu(module: nn.Module) -> bool:
    if isinstance(module, nn.SiLU):
        return True
    try:
        from transformers.activations import SiLUActivation
    except ImportError:
        return False
    return type(module) is SiLUActivation


def is_gated_silu_mlp(module: nn.Module) -> bool:
    """Whether ``module`` computes ``down_proj(silu(gate_proj(x)) * up_proj(x))`` by its structure: its
    children are exactly ``gate_proj``, ``up_proj``, ``down_proj`` and a SiLU ``act_fn``, and it has no
    parameters or buffers of its own (or it is a :class:`FusedSiluMulMLP` already)."""
    if isinstance(module, FusedSiluMulMLP):
        return True
    children = dict(module.named_children())
    if set(children) != {*PROJECTIONS, "act_fn"} or not _is_silu(children["act_fn"]):
        return False
    own = [*module.named_parameters(recurse=False), *module.named_buffers(recurse=False)]
    return not own


def fusable(module: nn.Module) -> bool:
    """Whether :func:`fuse_gated_mlps` replaces ``module``: a gated SiLU MLP (:func:`is_gated_silu_mlp`),
    not fused yet, whose ``down_proj`` is a :class:`QuantizedLinear` taking per-token quantized input."""
    if isinstance(module, FusedSiluMulMLP) or not is_gated_silu_mlp(module):
        return False
    down = module.down_proj
    return isinstance(down, QuantizedLinear) and down.compiler_quantizes_input


def gated_silu_mlp_names(model: nn.Module) -> list[str]:
    """Names of the modules of ``model`` that are gated SiLU MLPs (:func:`is_gated_silu_mlp`)."""
    return [name for name, module in model.named_modules() if name and is_gated_silu_mlp(module)]


def fuse_gated_mlps(model: nn.Module) -> list[str]:
    """Replace, in place, every :func:`fusable` module of ``model`` by a :class:`FusedSiluMulMLP`.

    Returns the names of the replaced modules."""
    names = [name for name, module in model.named_modules() if name and fusable(module)]
    for name in names:
        mlp = model.get_submodule(name)
        model.set_submodule(name, FusedSiluMulMLP(*(getattr(mlp, p) for p in PROJECTIONS)))
    return names
