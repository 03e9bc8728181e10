"""The quantized Linear module and whole-model online quantization."""
from .linear import QuantizedLinear, SchemeNotApplicable
from .quantize import DEFAULT_IGNORE, LayerPlan, LayerReport, QuantizationReport, plan, quantize

__all__ = [
    "DEFAULT_IGNORE",
    "LayerPlan",
    "LayerReport",
    "QuantizationReport",
    "QuantizedLinear",
    "SchemeNotApplicable",
    "plan",
    "quantize",
]
