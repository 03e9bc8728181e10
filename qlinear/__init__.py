"""qlinear: quantized linear layers for LLM inference, one kernel contract, hardware-aware selection.

    import qlinear
    report = qlinear.quantize(model, "fp8_per_block")   # replaces nn.Linear in place
    print(report.table())
"""
from .formats import QuantizedTensor, dequantize, quantize as quantize_tensor
from .kernels import LayerConfig, LinearKernel, NoKernelError, register_kernel, select_kernel
from .layers import QuantizationReport, QuantizedLinear, SchemeNotApplicable, plan, quantize
from .platform import Platform, platform_of
from .schemes import SCHEMES, Scheme, get_scheme
from .spec import TensorSpec

__version__ = "0.1.0"

__all__ = [
    "SCHEMES",
    "LayerConfig",
    "LinearKernel",
    "NoKernelError",
    "Platform",
    "QuantizationReport",
    "QuantizedLinear",
    "QuantizedTensor",
    "Scheme",
    "SchemeNotApplicable",
    "TensorSpec",
    "dequantize",
    "get_scheme",
    "plan",
    "platform_of",
    "quantize",
    "quantize_tensor",
    "register_kernel",
    "select_kernel",
]
