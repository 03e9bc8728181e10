"""Rounding helpers shared by the Triton kernels.

Compiled, the fp32 -> e4m3 cast is the hardware's round-to-nearest-even with saturation. Under
``TRITON_INTERPRET=1`` the cast does not carry a mantissa overflow into the exponent (7.96 became
4.0 in Triton 3.6), so there the value is rounded with explicit fp32 arithmetic first; both give
the same bits (tests compare both against :mod:`qlinear.formats`). Likewise the interpreter's
fp32 -> bf16 cast truncates (Triton 3.6), so there bf16 rounding is done on the bits.
"""
import os

import triton
import triton.language as tl

RNE_MAGIC = tl.constexpr(12582912.0)  # 1.5 * 2**23
INTERPRETED = os.environ.get("TRITON_INTERPRET", "0") == "1"


@triton.jit
def round_half_even(v):
    """Round fp32 ``v`` (|v| < 2**22) to an integer, ties to even, by the fp32 adder's own rounding.

    Only for values that are already rounded: ``x * s + MAGIC`` would be contracted into one FMA
    and round the exact product instead of the fp32 one, so a caller puts an operation between
    the multiply and this add (a clamp, as :func:`to_int8` does).
    """
    return (v + RNE_MAGIC) - RNE_MAGIC


@triton.jit
def to_int8(v, QMAX: tl.constexpr):
    """fp32 ``v`` -> int8: nearest integer, ties to even, saturating at ``±QMAX`` (<= 127).

    Rounded by the fp32 adder (``v + 1.5 * 2**23`` has unit steps) and read from the sum's low
    mantissa bits: full-rate FP32/integer instructions, where ``rint`` then an int conversion
    spend two conversion-pipe instructions per element (a quarter of the FP32 rate on sm_90).
    The clamp also keeps the add from being contracted with the multiply that produced ``v``.
    The same bits compiled and interpreted.
    """
    biased = tl.clamp(v, -QMAX, QMAX) + RNE_MAGIC
    return (biased.to(tl.int32, bitcast=True) - 0x4B400000).to(tl.int8)  # 0x4B400000: the bits of RNE_MAGIC


@triton.jit
def round_to_e4m3(v):
    """fp32 -> the nearest e4m3fn value (ties to even), saturating at ±448, still as fp32.

    The grid step is 2**(e-3) for a normal value of exponent e (e >= -6) and 2**-9 below;
    scaling by that power of two is exact, so only the integer rounding rounds. A negative ``v``
    that rounds to zero gives -0, as the hardware cast does.
    """
    v = tl.clamp(v, -448.0, 448.0)
    exponent = ((v.to(tl.int32, bitcast=True) >> 23) & 0xFF) - 127
    step_exp = tl.maximum(exponent, -6) - 3
    step = ((step_exp + 127) << 23).to(tl.float32, bitcast=True)
    inv_step = ((127 - step_exp) << 23).to(tl.float32, bitcast=True)
    r = round_half_even(v * inv_step) * step
    return tl.where(r == 0.0, v * 0.0, r)  # the adder's rounding gives +0 for a tiny negative v: keep -0


@triton.jit
def to_e4m3(v, EXPLICIT: tl.constexpr):
    """Saturating round-to-nearest-even cast of fp32 ``v`` to e4m3 (``EXPLICIT`` under the interpreter)."""
    if EXPLICIT:
        return round_to_e4m3(v).to(tl.float8e4nv)
    return tl.clamp(v, -448.0, 448.0).to(tl.float8e4nv)


@triton.jit
def round_to_bf16(v):
    """fp32 ``v`` rounded to the nearest bf16 (ties to even) on its bits, still as fp32 (finite ``v``)."""
    bits = v.to(tl.int32, bitcast=True)
    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & -65536
    return bits.to(tl.float32, bitcast=True)


@triton.jit
def round_to(v, dtype: tl.constexpr, EXPLICIT: tl.constexpr):
    """fp32 ``v`` rounded to ``dtype`` (bf16 or fp16, nearest, ties to even), returned as fp32."""
    if EXPLICIT and dtype == tl.bfloat16:
        return round_to_bf16(v)
    return v.to(dtype).to(tl.float32)
