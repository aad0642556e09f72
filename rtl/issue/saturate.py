"""Saturating arithmetic for the issue plan's range checks (``isa/spec.yaml`` execution rules).

The operands of a range check are 64-bit register sums, but a check only asks whether a range
passes a bound (a memory space's size, the VRF's length). Every value at or above ``cap`` (the
bound + 1) fails that check whatever it is, so it can be replaced by ``cap`` before it is
multiplied: the products stay within 64 bits (one or two DSP48E2 each, not a 64 x 64
multiplier), the check's verdict does not change, and so neither does the fault the core
reports (tests/rtl/issue/test_plan.py compares it with the functional simulator's).
"""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Cat, Const, Mux, unsigned

__all__ = ["sat", "sat_keep_low", "sat_mul"]

_NATIVE = 64
"""Widest product built directly (the simulators' native word; wider ones are split)."""


def sat(x: Any, cap: int) -> Any:
    """min(max(x, 0), cap) as ``unsigned(cap.bit_length())`` (``x`` signed or unsigned)."""
    shape = unsigned(cap.bit_length())
    low = Mux(x < 0, 0, x) if x.shape().signed else x
    return Mux(low > cap, cap, low).as_unsigned()[: shape.width]


def sat_keep_low(x: Any, cap_bits: int, low_bits: int) -> Any:
    """``x`` (>= 0) if below 2^cap_bits, else 2^cap_bits with ``x``'s low ``low_bits`` bits:
    the same residue modulo 2^low_bits, and at least 2^cap_bits."""
    if low_bits >= cap_bits:
        raise ValueError(f"low_bits ({low_bits}) must be below cap_bits ({cap_bits})")
    big = Cat(x[:low_bits], Const(0, cap_bits - low_bits), Const(1, 1))
    return Mux(x >= (1 << cap_bits), big, x.as_unsigned()[: cap_bits + 1])


def sat_mul(a: Any, b: Any, cap: int) -> Any:
    """min(a * b, cap) for unsigned ``a``, ``b`` no wider than ``cap`` (clamp them with
    :func:`sat` first), as ``unsigned(cap.bit_length())``. A product wider than 64 bits is
    formed from two narrow ones: if neither factor is below 2^h (2h > the width of cap), the
    product is at least 2^2h > cap."""
    k = cap.bit_length()
    wa, wb = len(a), len(b)
    if wa > k or wb > k:
        raise ValueError(f"factors of {wa} and {wb} bits exceed the cap's {k} bits")
    if wa + wb <= _NATIVE:
        p = a * b
    else:
        h = (k + 2) // 2
        if h + k > _NATIVE:
            raise ValueError(f"cap {cap} is too wide for a split product")
        p = Mux(a < (1 << h), a[:h] * b,
                Mux(b < (1 << h), a * b[:h], cap))
    return Mux(p > cap, cap, p)[:k]
