"""Weight-tile dequantization in registers, for the weight-only GEMM (:mod:`.dequant_gemm`).

Every helper returns bf16 values that are *exact*: an e2m1 or e4m3 element times a power of two
or an e4m3 scale has at most 8 significant bits, which bf16 holds, provided the product stays in
bf16's normal range. The kernels keep it there by folding a power of two ``2**-c`` into the
per-group scale and multiplying ``2**c`` back in the fp32 epilogue (``prepare`` picks ``c`` per
tensor, see :mod:`qlinear.kernels.triton_weight_only`).

e2m1 on the GPU (no FP4 conversion instruction before sm_100): the four code bits are moved into
a bf16 bit pattern whose value is ``e2m1 * 2**-126`` (sign to bit 15, exponent and mantissa bits to
bits 8..6; code 1 = 0.5 lands on the bf16 subnormal ``2**-127``), two values per 32-bit register,
and one packed bf16 FMA applies the scale, which carries the ``2**126``. bf16 FMAs keep subnormals
(PTX ISA, ``fma.bf16x2`` has no flush-to-zero). Under ``TRITON_INTERPRET=1`` inline PTX cannot
run, so the same values are computed with float arithmetic; the tests compare both to
:mod:`qlinear.formats`.
"""
import triton
import triton.language as tl

# Packed bytes b0..b3 of one 32-bit register -> two bf16x2 registers per nibble position.
# prmt 0x5140 spreads b0, b1 to bits 0-7 and 16-23 (zero bytes between); 0x7362 does b2, b3.
# Then per pair of nibbles (one per 16-bit half): isolate them; one multiply writes two copies of
# each, one with its sign bit at bit 15 of its half and one with its magnitude bits at 6..8 (low
# nibbles: x (2**12 + 2**6); high nibbles, 4 bits further up: x (2**8 + 2**2); the copies do not
# overlap, so the sum is their OR); one mask keeps those bits; w = bits * scale (fma with -0.0).
_E2M1_ASM = tl.constexpr("""
{
.reg .b32 t<2>, n, v, w, z;
mov.b32 z, 0x80008000;
prmt.b32 t0, $4, 0, 0x5140;
prmt.b32 t1, $4, 0, 0x7362;
and.b32 n, t0, 0x000F000F; mul.lo.u32 v, n, 0x1040; and.b32 w, v, 0x81C081C0;
fma.rn.bf16x2 $0, w, $5, z;
and.b32 n, t1, 0x000F000F; mul.lo.u32 v, n, 0x1040; and.b32 w, v, 0x81C081C0;
fma.rn.bf16x2 $1, w, $6, z;
and.b32 n, t0, 0x00F000F0; mul.lo.u32 v, n, 0x104; and.b32 w, v, 0x81C081C0;
fma.rn.bf16x2 $2, w, $5, z;
and.b32 n, t1, 0x00F000F0; mul.lo.u32 v, n, 0x104; and.b32 w, v, 0x81C081C0;
fma.rn.bf16x2 $3, w, $6, z;
}
""")

E2M1_BIT_EXPONENT = 126  # the bit pattern above is e2m1 * 2**-126; scales carry 2**126
_E2M1_BIT_VALUE = tl.constexpr(2.0 ** -E2M1_BIT_EXPONENT)


@triton.jit
def _e2m1_value(code):
    """e2m1 code (int32, 0..15) -> its value as fp32 (interpreter path)."""
    mag = code & 7
    exponent = mag >> 1
    mantissa = (mag & 1).to(tl.float32)
    normal = (1.0 + 0.5 * mantissa) * tl.exp2((exponent - 1).to(tl.float32))
    value = tl.where(exponent == 0, 0.5 * mantissa, normal)
    return tl.where((code & 8) != 0, -value, value)


@triton.jit
def dequant_e2m1(packed, scale, EXPLICIT: tl.constexpr):
    """Packed e2m1 ``uint8 [R, C]`` and per-byte scales ``fp32 [R, C]`` -> ``(even, odd)`` bf16 ``[R, C]``.

    ``even`` holds the low-nibble elements (K index 2j), ``odd`` the high-nibble ones (2j+1);
    each is ``e2m1 * scale * 2**-126`` (the caller's scale carries ``2**126``). Under the
    interpreter (``EXPLICIT``) the same values come back as fp32 (they are exact in bf16).
    """
    if EXPLICIT:
        code = packed.to(tl.int32)
        scale = scale * _E2M1_BIT_VALUE  # first: e2m1 * scale alone can pass the fp32 range
        even = _e2m1_value(code & 15) * scale
        odd = _e2m1_value(code >> 4) * scale
    else:
        even, odd = tl.inline_asm_elementwise(
            _E2M1_ASM, "=r,=r,=r,=r,r,r,r", [packed, scale.to(tl.bfloat16)],
            dtype=(tl.bfloat16, tl.bfloat16), is_pure=True, pack=4,
        )
    return even, odd


@triton.jit
def e8m0_to_fp32(stored, bias):
    """e8m0 scale bytes -> fp32 ``2**(stored + bias - 127)`` by building the exponent field.

    ``bias`` (int32) shifts the result by a power of two; the field is clamped to 0 (value 0),
    which prepare only allows for all-zero groups.
    """
    field = tl.maximum(stored.to(tl.int32) + bias, 0)
    return (field << 23).to(tl.float32, bitcast=True)


# e4m3 byte (sign dropped) << 20 is the fp32 bit pattern of its value times 2**-120, subnormal
# e4m3 included (it lands on an fp32 subnormal); mul.rn.f32 (no .ftz) keeps subnormal inputs, so
# multiplying by 2**120 gives the exact value. Three instructions instead of a select of two decodes.
_E4M3_BYTE_TO_FP32 = tl.constexpr("{\n.reg .b32 t;\nand.b32 t, $1, 0x7f;\nshl.b32 t, t, 20;\n"
                                  "mul.rn.f32 $0, t, 0f7B800000;\n}")


@triton.jit
def e4m3_to_fp32(stored, EXPLICIT: tl.constexpr):
    """Non-negative e4m3 scale bytes (uint8) -> fp32, by bit arithmetic (Triton has no e4m3 type
    before sm_89, and NVFP4 weight-only kernels should run on Ampere too); the sign bit is ignored.

    Compiled: the inline PTX above. Under the interpreter (``EXPLICIT``): normal
    ``2**(e-7) * (1 + m/8)`` is the fp32 with exponent field ``e + 120``, mantissa ``m << 20``;
    subnormal (e = 0): ``m * 2**-9``.
    """
    if not EXPLICIT:
        return tl.inline_asm_elementwise(_E4M3_BYTE_TO_FP32, "=r,r", [stored.to(tl.int32)], dtype=tl.float32,
                                         is_pure=True, pack=1)
    bits = stored.to(tl.int32) & 0x7F
    exponent = bits >> 3
    normal = (((exponent + 120) << 23) | ((bits & 7) << 20)).to(tl.float32, bitcast=True)
    return tl.where(exponent == 0, (bits & 7).to(tl.float32) * 0.001953125, normal)


@triton.jit
def group_scale_factors(raw, bias, E4M3: tl.constexpr, EXPLICIT: tl.constexpr):
    """Group scale bytes -> fp32 factors: the e4m3 value (``E4M3``, NVFP4) or ``2**(e8m0 + bias - 127)`` (MX)."""
    if E4M3:
        return e4m3_to_fp32(raw, EXPLICIT)
    return e8m0_to_fp32(raw, bias)
