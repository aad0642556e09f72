"""``Fp16Mul``: FP16 x FP16 -> exact FP32 product, pipelined (DFX §IV-C MFU multiplier).

DFX maps its FP16 multiplier to one DSP with a 6-cycle latency (paper §IV-C; digest §2.4). This
project keeps the product in FP32 for the adder tree (docs/numerics.md): an 11 x 11-bit
significand product is at most 22 bits and its exponent always fits FP32's normal range, so the
result is exact, never rounded, never subnormal. Subnormal inputs are normalised first.
"""

from typing import Any

from amaranth.hdl import Cat, Const, Module, Mux
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .fpformat import FP16, FP32, Pipeline, check_latency, lzc, unpack, wire

__all__ = ["DEFAULT_MUL_LATENCY", "Fp16Mul"]

DEFAULT_MUL_LATENCY = 6
"""The dfx-u280 core's ``mpu.mul_latency`` (DFX §IV-C: FP16 multiplier, 6 cycles)."""


class Fp16Mul(wiring.Component):
    """FP16 ``a`` x FP16 ``b`` -> FP32 ``result`` = ``f32(a) * f32(b)`` (exact; NaN -> 0x7FC00000).

    Ports: ``a``, ``b`` (16-bit patterns), ``valid_in``, ``en`` (clock enable, default 1) in;
    ``result`` (32-bit pattern), ``valid_out`` out.

    Timing: an operand set is taken on every cycle with ``en`` high, ``valid_in`` tagging it; its
    result and ``valid_out`` appear ``latency`` en-high cycles later and hold while ``en`` is low
    (a global stall: every register, valid included, loads only when ``en`` is high).
    ``latency`` = 0 is combinational and ignores ``en``.
    The datapath has 3 steps (unpack and normalise, 11 x 11 multiply, pack) with the registers
    spread evenly after them (6 -> 2/2/2), so from latency 3 up the ``*`` has registers on both
    sides for DSP inference.
    """

    a: In(16)
    b: In(16)
    valid_in: In(1)
    en: In(1, init=1)
    result: Out(32)
    valid_out: Out(1)

    def __init__(self, latency: int = DEFAULT_MUL_LATENCY):
        self._latency = check_latency(latency)
        super().__init__()

    @classmethod
    def from_core(cls, core: Any) -> "Fp16Mul":
        """The MPU multiplier of a :class:`dfx.isa.config.CoreConfig` (``core.mpu.mul_latency``)."""
        return cls(core.mpu.mul_latency)

    @property
    def latency(self) -> int:
        """Register stages from operands to result (cycles with ``en`` high)."""
        return self._latency

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        p = Pipeline(m, self._latency, 3, self.en, prefix="mul")

        # step 1: classify, normalise subnormal significands (leading one at bit 10)
        ua, ub = unpack(m, FP16, self.a, "a"), unpack(m, FP16, self.b, "b")
        # leading zeros: 0 for normals, 1..10 for subnormals, 11 for zero
        lz_a, lz_b = lzc(m, ua.sig, "lz_a"), lzc(m, ub.sig, "lz_b")
        # exponent of each normalised significand, offset by +10 to stay unsigned: 1 .. 40
        ea = ua.eff_exp + 10 - lz_a
        eb = ub.eff_exp + 10 - lz_b
        s = p.cut(
            sign=ua.sign ^ ub.sign,
            sig_a=(ua.sig << lz_a)[:11],
            sig_b=(ub.sig << lz_b)[:11],
            # FP32 biased exponent of a product whose leading one is at bit 20: ea + eb - 20 + 97
            exp=(ea + eb + 77)[:8],
            nan=ua.is_nan | ub.is_nan | (ua.is_inf & ub.is_zero) | (ua.is_zero & ub.is_inf),
            inf=ua.is_inf | ub.is_inf,
            zero=ua.is_zero | ub.is_zero,
        )

        # step 2: the significand product (one DSP), 2^20 <= prod < 2^22 for non-zero operands
        prod = (s["sig_a"] * s["sig_b"])[:22]
        flags = {k: s[k] for k in ("sign", "exp", "nan", "inf", "zero")}
        s = p.cut(prod=prod, **flags)

        # step 3: one-bit normalisation and packing (exact: 21 fraction bits fit in 23)
        prod = s["prod"]
        top = wire(m, prod[21], "top")
        frac = Mux(top, Cat(Const(0, 2), prod[:21]), Cat(Const(0, 3), prod[:20]))
        exp = (s["exp"] + top)[:8]
        sign = s["sign"]
        result = Mux(
            s["nan"],
            FP32.nan_bits,
            Mux(
                s["inf"],
                Cat(Const(FP32.inf_bits(), 31), sign),
                Mux(s["zero"], Cat(Const(0, 31), sign), Cat(frac, exp, sign)),
            ),
        )
        out = p.cut(result=result)
        p.done()
        m.d.comb += [self.result.eq(out["result"]), self.valid_out.eq(p.delay_valid(self.valid_in))]
        return m
