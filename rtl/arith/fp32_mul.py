"""``Fp32Mul``: FP32 x FP32 -> FP32, IEEE round-to-nearest-even, pipelined.

The FP32 multiplier of the SFUs: SFU_M's scale (the 1/sqrt(d_head) multiply, DFX §2.4), the
table interpolation ``m_i * t`` (:mod:`.pwl_table`) and the SFU_V scalar multiply (§2.5). DFX's
datapath is FP16; this project's internal arithmetic is FP32 (docs/numerics.md), so this is
``numpy.float32.__mul__``: full gradual underflow (subnormal operands and results), one RNE
rounding, overflow to inf, canonical NaN (``0x7FC00000``).
"""

from typing import Any

from amaranth.hdl import Cat, Const, Module, Mux, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .fpformat import (
    FP32,
    Pipeline,
    check_latency,
    lzc,
    rne_increment,
    shift_right_sticky,
    unpack,
    wire,
)

__all__ = ["DEFAULT_FP32_MUL_LATENCY", "Fp32Mul", "fp32_mul_datapath"]

DEFAULT_FP32_MUL_LATENCY = 6
"""Default register stages: the dfx-u280 core's multiplier latency (``mpu.mul_latency``,
``vpu.mul_latency``: DFX §2.4-2.5, 6 cycles)."""

N_STEPS = 4
"""Combinational steps: normalise operands, multiply, normalise/denormalise, round."""

# Result exponents are carried with this offset so they stay unsigned: for non-zero operands the
# biased result exponent E = ea + eb - 127 (+1) lies in [-171, 382], stored as E + _EOFF.
_EOFF = 200


def fp32_mul_datapath(m: Module, p: Pipeline, a: Value, b: Value) -> Value:
    """Build ``a * b`` (FP32 bit patterns) through pipeline ``p`` (4 cuts); return the result."""
    ua, ub = unpack(m, FP32, a, "a"), unpack(m, FP32, b, "b")

    # step 1: normalise subnormal significands (leading one at bit 23); exponents offset by +24
    # so they stay unsigned: ea' = eff_exp - lz + 24 in [1, 278] for non-zero operands
    lz_a, lz_b = lzc(m, ua.sig, "lz_a"), lzc(m, ub.sig, "lz_b")
    s = p.cut(
        sign=ua.sign ^ ub.sign,
        sig_a=(ua.sig << lz_a)[:24],
        sig_b=(ub.sig << lz_b)[:24],
        # E + _EOFF before the 1-bit product normalisation: ea' + eb' - 48 - 127 + _EOFF
        exp=(ua.eff_exp + ub.eff_exp + (48 - lz_a - lz_b) + (_EOFF - 48 - 127))[:10],
        nan=ua.is_nan | ub.is_nan | (ua.is_inf & ub.is_zero) | (ua.is_zero & ub.is_inf),
        inf=ua.is_inf | ub.is_inf,
        zero=ua.is_zero | ub.is_zero,
    )
    flags = ("sign", "nan", "inf", "zero")

    # step 2: the 24 x 24 significand product, 2^46 <= prod < 2^48 for non-zero operands
    s = p.cut(prod=(s["sig_a"] * s["sig_b"])[:48], exp=s["exp"], **{k: s[k] for k in flags})

    # step 3: put the leading one at bit 47; results below the normal range are shifted right
    # (with sticky) so that bits 24..46 are the subnormal fraction and the exponent field is 0
    prod = s["prod"]
    top = wire(m, prod[47], "top")
    norm = Mux(top, prod, (prod << 1)[:48])
    eo = wire(m, (s["exp"] + top)[:10], "exp_off")
    sub = wire(m, eo <= _EOFF, "subnormal")
    shift = Mux(sub, (_EOFF + 1 - eo)[:8], 0)
    shifted, lost = shift_right_sticky(m, norm, shift, "den")
    s = p.cut(
        kept=shifted[23:48],  # 23 fraction bits + the implicit bit above, guard at [0]
        sticky=lost | shifted[:23].any(),
        exp=Mux(sub, 0, eo - _EOFF)[:8],
        ovf=eo >= _EOFF + FP32.exp_max,
        **{k: s[k] for k in flags},
    )

    # step 4: round to nearest even; the carry out of the fraction bumps the exponent field
    # (subnormal -> normal, 1.11..1 -> 10.0, largest finite -> inf)
    kept, sign = s["kept"], s["sign"]
    inc = rne_increment(kept[1], kept[0], s["sticky"])
    packed = (Cat(kept[1:24], s["exp"]) + inc)[:31]
    result = Mux(
        s["nan"],
        FP32.nan_bits,
        Mux(
            s["inf"] | s["ovf"],
            Cat(Const(FP32.inf_bits(), 31), sign),
            Mux(s["zero"], Cat(Const(0, 31), sign), Cat(packed, sign)),
        ),
    )
    return p.cut(result=result)["result"]


class Fp32Mul(wiring.Component):
    """FP32 ``a`` x FP32 ``b`` -> FP32 ``result`` (IEEE RNE, subnormals kept, NaN -> 0x7FC00000).

    Ports: ``a``, ``b`` (32-bit patterns), ``valid_in``, ``en`` (clock enable, default 1) in;
    ``result`` (32-bit pattern), ``valid_out`` out.

    Timing: an operand set is taken on every cycle with ``en`` high, ``valid_in`` tagging it; its
    result and ``valid_out`` appear ``latency`` en-high cycles later and hold while ``en`` is low
    (a global stall: every register, valid included, loads only when ``en`` is high).
    ``latency`` = 0 is combinational and ignores ``en``.
    Registers are spread evenly after the 4 steps (normalise, multiply, denormalise, round):
    6 -> 1/2/1/2, so from latency 3 up the 24 x 24 ``*`` has registers on both sides.
    Specials: 0 x inf -> NaN; a zero operand gives a signed zero; results that round below the
    smallest subnormal give a signed zero.
    """

    a: In(32)
    b: In(32)
    valid_in: In(1)
    en: In(1, init=1)
    result: Out(32)
    valid_out: Out(1)

    def __init__(self, latency: int = DEFAULT_FP32_MUL_LATENCY):
        self._latency = check_latency(latency)
        super().__init__()

    @classmethod
    def from_core(cls, core: Any) -> "Fp32Mul":
        """With the multiplier latency of a :class:`dfx.isa.config.CoreConfig`
        (``core.mpu.mul_latency``)."""
        return cls(core.mpu.mul_latency)

    @property
    def latency(self) -> int:
        """Register stages from operands to result (cycles with ``en`` high)."""
        return self._latency

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        p = Pipeline(m, self._latency, N_STEPS, self.en, prefix="fmul")
        result = fp32_mul_datapath(m, p, self.a, self.b)
        p.done()
        m.d.comb += [self.result.eq(result), self.valid_out.eq(p.delay_valid(self.valid_in))]
        return m
