"""FP16 values as exact fixed-point integers (docs/numerics.md §5, docs/lutgemm.md): the
shared arithmetic of every dfx reduction that sums many terms exactly and rounds once.

Every finite FP16 value is ``sig * 2^(eff_exp - 25)`` with an 11-bit significand and
``eff_exp`` in 1..30, i.e. an integer multiple of 2^-24 (:data:`FRAC_BITS`) of magnitude at
most ``65504 * 2^24 < 2^40`` (:data:`FIX_MAX`); its exact square is an integer multiple of
2^-48 below 2^80. Sums of such integers are exact in wide two's complement (a Kulisch
accumulator); :class:`~.int_to_fp32.IntToFp32` rounds the sum once to FP32.

* :func:`fp16_to_fixed`: an FP16 pattern -> signed integer in units of 2^-24;
* :func:`fp32_to_fixed48`: an FP32 pattern that is an FP16 value or the exact square of one
  (the VPU's ``f32(a)`` / ``a*a``) -> signed integer in units of 2^-48;
  :func:`fp32_to_fixed48_ones` the same in one's complement plus a ``+1`` bit (for adder
  trees that take the ``+1`` as carry-in instead of negating every term);
* :func:`sum_bits`, :func:`limb_widths`: widths of exact sums and of skewed limb adders.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Mux, Value

from .fpformat import FP16, FP32, unpack, wire

__all__ = [
    "FIX_BITS",
    "FIX_MAX",
    "FRAC_BITS",
    "SQ_BITS",
    "SQ_MAX",
    "fp16_to_fixed",
    "fp32_to_fixed48",
    "fp32_to_fixed48_ones",
    "limb_widths",
    "sum_bits",
]

FRAC_BITS = 24
"""Fixed-point fraction bits: one unit is 2^-24, the smallest FP16 subnormal."""

FIX_MAX = 65504 << FRAC_BITS
"""Largest magnitude of an FP16 value in fixed point (max normal 65504)."""

SQ_MAX = FIX_MAX * FIX_MAX
"""Largest magnitude of an FP16 value or its square in units of 2^-48 (65504^2 * 2^48)."""


def sum_bits(terms: int, term_max: int = FIX_MAX) -> int:
    """Two's-complement width that holds any signed sum of ``terms`` values of magnitude at
    most ``term_max`` exactly (default: FP16 values in units of 2^-24)."""
    if not isinstance(terms, int) or isinstance(terms, bool) or terms < 1:
        raise ValueError(f"terms must be >= 1, not {terms!r}")
    return (terms * term_max).bit_length() + 1


FIX_BITS = sum_bits(1)
"""Width of one FP16 value in fixed point (41 bits)."""

SQ_BITS = sum_bits(1, SQ_MAX)
"""Width of one FP16 value or its exact square in units of 2^-48 (81 bits)."""


def limb_widths(bits: int, limbs: int) -> list[int]:
    """Widths, lowest first, of the ``limbs`` limbs of a ``bits``-wide skewed carry-propagate
    adder (one limb per cycle): ``ceil(bits / limbs)`` each, the rest in the top limb;
    ValueError when the top limb would be narrower than 2 bits."""
    if not isinstance(limbs, int) or isinstance(limbs, bool) or limbs < 1:
        raise ValueError(f"limbs must be a positive integer, not {limbs!r}")
    lb = -(-bits // limbs)
    top = bits - (limbs - 1) * lb
    if top < 2:
        raise ValueError(f"{limbs} limbs cut the {bits}-bit accumulator into limbs that are "
                         f"too narrow")
    return [lb] * (limbs - 1) + [top]


def fp16_to_fixed(m, x: Value, name: str) -> tuple[Value, Value]:
    """``(value, bad)``: the FP16 pattern ``x`` as a signed :data:`FIX_BITS` integer in units of
    2^-24 (combinational, exact; ±0 -> 0), and ``bad`` = x is inf or NaN (value 0 then)."""
    u = unpack(m, FP16, x, name)
    mag = wire(m, (u.sig << (u.eff_exp - 1)[:5])[: FIX_BITS - 1], f"{name}_mag")
    bad = wire(m, u.is_inf | u.is_nan, f"{name}_bad")
    val = Mux(bad, 0, Mux(u.sign, -mag, mag))
    return wire(m, val.as_signed()[:FIX_BITS].as_signed(), f"{name}_fix"), bad


_EXP_MIN48 = 127 - 48
"""Biased FP32 exponent of 2^-48, the smallest square of an FP16 value (2^-24 squared)."""

_SHIFT_MAX = SQ_BITS - 1
"""Largest useful left shift of a significand (exponent of 65504^2 is 127 + 31)."""


def _fp32_mag48(m, x: Value, name: str):
    """``(mag, unpacked)``: the magnitude of FP32 ``x`` in units of 2^-48 (see
    :func:`fp32_to_fixed48`), 0 for inf / NaN and outside the contract."""
    u = unpack(m, FP32, x, name)
    out = wire(m, (u.exp < _EXP_MIN48) | (u.exp > _EXP_MIN48 + _SHIFT_MAX), f"{name}_out")
    sh = wire(m, Mux(out, 0, u.exp - _EXP_MIN48)[:7], f"{name}_sh")
    wide = (u.sig << sh)[23 : 23 + SQ_BITS - 1]
    mag = wire(m, Mux(out | u.is_inf | u.is_nan, 0, wide), f"{name}_mag48")
    return mag, u


def fp32_to_fixed48(m, x: Value, name: str) -> tuple[Value, Value, Value, Value]:
    """``(value, nan, pinf, ninf)`` of the FP32 pattern ``x``: ``value`` is x as a signed
    :data:`SQ_BITS` integer in units of 2^-48 (combinational; 0 for ±0 and for inf / NaN), exact
    for every FP16 value and every exact square of one (the inputs of ``vacc``/``vaccsq``,
    docs/numerics.md §5). ``nan``, ``pinf``, ``ninf`` classify x.

    A normal x is ``sig * 2^(exp - 150)`` = ``sig * 2^(exp - 102)`` units, so the magnitude is
    ``(sig << (exp - 79)) >> 23``: those values have no bits below 2^-48. FP32 values outside
    the contract (below 2^-48 or from 2^81) read as 0."""
    mag, u = _fp32_mag48(m, x, name)
    val = Mux(u.sign, -mag, mag).as_signed()[:SQ_BITS].as_signed()
    return (wire(m, val, f"{name}_fix48"), u.is_nan, wire(m, u.is_inf & ~u.sign, f"{name}_pinf"),
            wire(m, u.is_inf & u.sign, f"{name}_ninf"))


def fp32_to_fixed48_ones(m, x: Value, name: str) -> tuple[Value, Value, Value, Value, Value]:
    """``(ones, neg, nan, pinf, ninf)``: :func:`fp32_to_fixed48`'s ``value = ones + neg``, with
    ``ones`` the signed :data:`SQ_BITS` one's complement (``~mag`` for a negative sign, a row
    of XOR gates instead of a negating adder) and ``neg`` the sign bit, to be added as a
    carry-in further on (-0 gives ``-1 + 1 = 0``)."""
    mag, u = _fp32_mag48(m, x, name)
    ext = Cat(mag, Const(0, 1))  # SQ_BITS, non-negative
    ones = wire(m, (ext ^ u.sign.replicate(SQ_BITS)).as_signed(), f"{name}_ones48")
    return (ones, u.sign, u.is_nan, wire(m, u.is_inf & ~u.sign, f"{name}_pinf"),
            wire(m, u.is_inf & u.sign, f"{name}_ninf"))
