"""Numerics of every quantization format qlinear knows: pure PyTorch, CPU and GPU."""
from .quantized import (
    QuantizedTensor,
    concat_rows,
    dequantize,
    fake_quantize,
    quantize,
    quantize_in_row_chunks,
    requantize,
    sqnr_db,
)

__all__ = ["QuantizedTensor", "concat_rows", "dequantize", "fake_quantize", "quantize", "quantize_in_row_chunks", "requantize", "sqnr_db"]
