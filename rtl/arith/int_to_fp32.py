"""``IntToFp32``: signed wide fixed-point integer -> FP32, rounded once to nearest even (the
final rounding of the exact accumulators of ``vacc``/``vaccsq``, docs/numerics.md §5, and of
the LUT-GEMM scale stage, docs/lutgemm.md)."""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Cat, Const, Module, Mux, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .fixed import FRAC_BITS
from .fpformat import FP32, Pipeline, check_latency, lzc, rne_increment, wire

__all__ = ["IntToFp32"]

N_STEPS = 3
"""Combinational steps of the converter: magnitude, normalise, round."""


class IntToFp32(wiring.Component):
    """Signed ``width``-bit integer ``a`` in units of 2^-``frac_bits`` -> FP32 ``result`` (one
    RNE rounding, = the FP32 nearest to ``a * 2^-frac_bits``, ties to even; exact zero -> +0).
    ``nan`` high forces the canonical NaN ``0x7FC00000`` (the caller's sticky flag: an input
    held a NaN, or an inf the fixed point cannot carry).

    With ``exp_bits`` > 0 the scale is a run-time input too: an unsigned ``exp`` port, and the
    value is ``a * 2^(exp - frac_bits)`` (the MFU lane dot product's tile exponent).

    Ports: ``a`` (signed ``width``), ``nan``, ``valid_in``, ``en`` (clock enable, default 1) in;
    ``result`` (32-bit pattern), ``valid_out`` out. Same timing contract as the arithmetic blocks
    (:mod:`dfx.rtl.arith`): one operand per en-high cycle, ``latency`` en-cycles to the result,
    registers spread over the 3 steps (magnitude, normalise, round); ``latency`` 0 is
    combinational. Every non-zero input is an FP32 normal and nothing overflows: the smallest,
    2^-frac_bits, is at least 2^-126 (``frac_bits <= 126``), and the largest magnitude,
    2^(width - 1 - frac_bits), is at most 2^127 (``width <= 128 + frac_bits``).
    """

    def __init__(self, width: int, latency: int = 1, *, frac_bits: int = FRAC_BITS,
                 exp_bits: int = 0):
        if not isinstance(frac_bits, int) or isinstance(frac_bits, bool) or not (
                0 <= frac_bits <= 126):
            raise ValueError(f"frac_bits must be an integer in 0..126, not {frac_bits!r}")
        if not isinstance(exp_bits, int) or isinstance(exp_bits, bool) or not 0 <= exp_bits <= 7:
            raise ValueError(f"exp_bits must be an integer in 0..7, not {exp_bits!r}")
        top = 128 + frac_bits - ((1 << exp_bits) - 1)  # the largest exp must not overflow
        if not isinstance(width, int) or isinstance(width, bool) or not 2 <= width <= top:
            raise ValueError(f"width must be an integer in 2..{top}, not {width!r}")
        self._width = width
        self._frac = frac_bits
        self._exp_bits = exp_bits
        self._latency = check_latency(latency)
        super().__init__(
            {
                "a": In(signed(width)),
                **({"exp": In(exp_bits)} if exp_bits else {}),
                "nan": In(1),
                "valid_in": In(1),
                "en": In(1, init=1),
                "result": Out(32),
                "valid_out": Out(1),
            }
        )

    @property
    def width(self) -> int:
        return self._width

    @property
    def frac_bits(self) -> int:
        return self._frac

    @property
    def latency(self) -> int:
        return self._latency

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        w = self._width
        p = Pipeline(m, self._latency, N_STEPS, self.en, prefix="i2f")
        a = self.a
        # step 1: sign and magnitude (w bits: |-2^(w-1)| needs all of them)
        mag = wire(m, Mux(a[-1], -a, a).as_unsigned()[:w], "mag")
        exp_in = self.exp if self._exp_bits else Const(0, 1)
        s = p.cut(mag=mag, sign=a[-1], nan=self.nan, exp_in=exp_in)
        # step 2: leading one to the top bit; its position gives the exponent
        mw = max(w, 26)  # room for 23 fraction bits, guard and one sticky bit below the one
        mag = Cat(Const(0, mw - w), s["mag"])
        lz = lzc(m, mag, "lz")
        norm = wire(m, (mag << lz)[:mw], "norm")
        # value = norm * 2^(-lz - frac - (mw - w)) with the leading one at bit mw - 1:
        # biased exponent = (mw - 1 - lz) - (mw - w) - frac + 127 = w + 126 - frac - lz
        exp = (w + 126 - self._frac - lz + s["exp_in"])[:8]
        s = p.cut(norm=norm, exp=exp, zero=s["mag"] == 0, sign=s["sign"], nan=s["nan"])
        # step 3: round to nearest even (a carry out of the fraction bumps the exponent)
        norm = s["norm"]
        frac = norm[mw - 24 : mw - 1]
        guard = norm[mw - 25]
        sticky = norm[: mw - 25].any()
        inc = rne_increment(frac[0], guard, sticky)
        packed = (Cat(frac, s["exp"]) + inc)[:31]
        result = Mux(
            s["nan"],
            FP32.nan_bits,
            Mux(s["zero"], Const(0, 32), Cat(packed, s["sign"])),
        )
        result = p.cut(result=result)["result"]
        p.done()
        m.d.comb += [self.result.eq(result), self.valid_out.eq(p.delay_valid(self.valid_in))]
        return m
