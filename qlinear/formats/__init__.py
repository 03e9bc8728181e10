"""Numerics of every quantization format qlinear knows: pure PyTorch, CPU and GPU."""
from .quantized import QuantizedTensor, dequantize, fake_quantize, quantize, sqnr_db

__all__ = ["QuantizedTensor", "dequantize", "fake_quantize", "quantize", "sqnr_db"]
