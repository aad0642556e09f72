"""``Fp32Add``: FP32 + FP32 -> FP32, IEEE round-to-nearest-even, pipelined.

DFX's adder is FP16 on 2 DSPs with an 11-cycle latency (paper §IV-C MFU, §IV-D VFU; digest
§2.4-2.5). Deviation: this project accumulates in FP32 (docs/numerics.md), so this block is an
FP32 adder; its latency is a parameter and defaults to the same 11 cycles. It is a LUT/carry-chain
design (no DSP): full gradual underflow, sticky alignment for any exponent difference, exact
cancellation, overflow to inf, canonical NaN.
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

__all__ = ["DEFAULT_ADD_LATENCY", "Fp32Add", "fp32_add_datapath"]

DEFAULT_ADD_LATENCY = 11
"""The dfx-u280 core's ``mpu.add_latency`` (DFX §IV-C: FP16 adder, 11 cycles)."""

N_STEPS = 5
"""Combinational steps of the adder: swap, align, add, normalise, round."""


def fp32_add_datapath(m: Module, p: Pipeline, a: Value, b: Value) -> Value:
    """Build ``a + b`` (FP32 bit patterns) through pipeline ``p`` (5 cuts); return the result."""
    ua, ub = unpack(m, FP32, a, "a"), unpack(m, FP32, b, "b")

    # step 1: order by magnitude (x = larger), classify
    swap = wire(m, b[:31] > a[:31], "swap")
    x_sign = Mux(swap, ub.sign, ua.sign)
    x_exp = wire(m, Mux(swap, ub.eff_exp, ua.eff_exp), "x_exp")
    y_exp = Mux(swap, ua.eff_exp, ub.eff_exp)
    s = p.cut(
        sign=x_sign,
        exp=x_exp,
        sig_x=Mux(swap, ub.sig, ua.sig),
        sig_y=Mux(swap, ua.sig, ub.sig),
        diff=(x_exp - y_exp)[:8],
        sub=ua.sign ^ ub.sign,
        zero_sign=ua.sign & ub.sign,  # sign of an exact zero sum under RNE
        nan=ua.is_nan | ub.is_nan | (ua.is_inf & ub.is_inf & (ua.sign ^ ub.sign)),
        inf=ua.is_inf | ub.is_inf,
    )
    keep = ("sign", "exp", "sub", "zero_sign", "nan", "inf")

    # step 2: align y to x with guard, round and sticky bits (27 bits, sticky jammed into bit 0)
    y_shifted, y_sticky = shift_right_sticky(m, Cat(Const(0, 3), s["sig_y"]), s["diff"], "align")
    s = p.cut(sig_x=s["sig_x"], y=y_shifted | y_sticky, **{k: s[k] for k in keep})

    # step 3: add or subtract magnitudes (x >= y, so the difference is non-negative)
    x = Cat(Const(0, 3), s["sig_x"])
    total = Mux(s["sub"], x - s["y"], x + s["y"])[:28]
    s = p.cut(total=total, **{k: s[k] for k in keep})

    # step 4: normalise so the leading one is at bit 27, but not below exponent 1 (subnormals)
    total = s["total"]
    lz = lzc(m, total, "lz")  # 0 .. 28
    shift = wire(m, Mux(lz > s["exp"], s["exp"], lz)[:5], "norm_shift")
    norm = wire(m, (total << shift)[:28], "norm")
    exp = Mux(norm[27], s["exp"] + 1 - shift, 0)[:9]  # 0: subnormal (or zero)
    s = p.cut(norm=norm, exp=exp, is_zero=total == 0, **{k: s[k] for k in keep if k != "exp"})

    # step 5: round to nearest even; the carry out of the fraction bumps the exponent field
    # (subnormal -> normal, 1.11..1 -> 10.0, largest finite -> inf all come out right)
    norm, exp, sign = s["norm"], s["exp"], s["sign"]
    inc = rne_increment(norm[4], norm[3], norm[:3].any())
    packed = (Cat(norm[4:27], exp[:8]) + inc)[:31]
    inf = s["inf"] | (exp >= FP32.exp_max)
    result = Mux(
        s["nan"],
        FP32.nan_bits,
        Mux(
            inf,
            Cat(Const(FP32.inf_bits(), 31), sign),
            Mux(s["is_zero"], Cat(Const(0, 31), s["zero_sign"]), Cat(packed, sign)),
        ),
    )
    return p.cut(result=result)["result"]


class Fp32Add(wiring.Component):
    """FP32 ``a`` + FP32 ``b`` -> FP32 ``result`` (IEEE RNE, subnormals kept, NaN -> 0x7FC00000).

    Ports: ``a``, ``b`` (32-bit patterns), ``valid_in``, ``en`` (clock enable, default 1) in;
    ``result`` (32-bit pattern), ``valid_out`` out.

    Timing: an operand set is taken on every cycle with ``en`` high, ``valid_in`` tagging it; its
    result and ``valid_out`` appear ``latency`` en-high cycles later and hold while ``en`` is low
    (a global stall: every register, valid included, loads only when ``en`` is high).
    ``latency`` = 0 is combinational and ignores ``en``.
    Registers are spread evenly after the 5 steps (swap, align, add, normalise, round):
    11 -> 2/2/2/2/3.
    Signed zeros: x + (-x) = +0, (-0) + (-0) = -0. inf - inf -> NaN.
    """

    a: In(32)
    b: In(32)
    valid_in: In(1)
    en: In(1, init=1)
    result: Out(32)
    valid_out: Out(1)

    def __init__(self, latency: int = DEFAULT_ADD_LATENCY):
        self._latency = check_latency(latency)
        super().__init__()

    @classmethod
    def from_core(cls, core: Any) -> "Fp32Add":
        """The MPU adder of a :class:`dfx.isa.config.CoreConfig` (``core.mpu.add_latency``)."""
        return cls(core.mpu.add_latency)

    @property
    def latency(self) -> int:
        """Register stages from operands to result (cycles with ``en`` high)."""
        return self._latency

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        p = Pipeline(m, self._latency, N_STEPS, self.en, prefix="add")
        result = fp32_add_datapath(m, p, self.a, self.b)
        p.done()
        m.d.comb += [self.result.eq(result), self.valid_out.eq(p.delay_valid(self.valid_in))]
        return m
