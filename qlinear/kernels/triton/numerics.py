"""Rounding helpers shared by the Triton kernels, written as explicit fp32 arithmetic.

The e4m3 rounding is done before the cast (the cast then only changes the type), so the result
is the same under the compiler and under ``TRITON_INTERPRET=1``, whose fp32->fp8 cast does not
carry a mantissa overflow into the exponent (7.96 became 4.0 in Triton 3.6).
"""
import triton
import triton.language as tl

RNE_MAGIC = tl.constexpr(12582912.0)  # 1.5 * 2**23


@triton.jit
def round_half_even(v):
    """Round fp32 ``v`` (|v| < 2**22) to an integer, ties to even, by the fp32 adder's own rounding."""
    return (v + RNE_MAGIC) - RNE_MAGIC


@triton.jit
def round_to_e4m3(v):
    """fp32 -> the nearest e4m3fn value (ties to even), saturating at ±448, still as fp32.

    The grid step is 2**(e-3) for a normal value of exponent e (e >= -6) and 2**-9 below;
    scaling by that power of two is exact, so only the integer rounding rounds.
    """
    v = tl.clamp(v, -448.0, 448.0)
    exponent = ((v.to(tl.int32, bitcast=True) >> 23) & 0xFF) - 127
    step_exp = tl.maximum(exponent, -6) - 3
    step = ((step_exp + 127) << 23).to(tl.float32, bitcast=True)
    inv_step = ((127 - step_exp) << 23).to(tl.float32, bitcast=True)
    return round_half_even(v * inv_step) * step
