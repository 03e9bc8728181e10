"""The quantized Linear module and whole-model online quantization."""
from .gated_mlp import FusedSiluMulMLP, fuse_gated_mlps
from .linear import QuantizedLinear, SchemeNotApplicable
from .quantize import DEFAULT_IGNORE, LayerPlan, LayerReport, QuantizationReport, plan, quantize

__all__ = [
    "DEFAULT_IGNORE",
    "FusedSiluMulMLP",
    "LayerPlan",
    "LayerReport",
    "QuantizationReport",
    "QuantizedLinear",
    "SchemeNotApplicable",
    "fuse_gated_mlps",
    "plan",
    "quantize",
]
