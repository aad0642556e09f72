"""``Fp32ToFp16``: FP32 -> FP16 conversion, IEEE round-to-nearest-even, pipelined.

The rounding point between the FP32 datapath and FP16 storage (docs/numerics.md; the golden
model's ``round16``): one rounding from the full 24-bit significand (guard + sticky, no double
rounding), subnormal results, |x| >= 65520 -> inf, FP32 subnormals -> signed zero, canonical NaN.
Not a DFX-published unit: DFX computes in FP16 throughout (paper §IV), so its latency is this
project's choice.
"""

from typing import Any

from amaranth.hdl import Cat, Const, Module, Mux
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .fpformat import (
    FP16,
    FP32,
    Pipeline,
    check_latency,
    rne_increment,
    shift_right_sticky,
    unpack,
    wire,
)

__all__ = ["DEFAULT_CVT_LATENCY", "Fp32ToFp16"]

DEFAULT_CVT_LATENCY = 2
"""Default register stages (dfx design choice; not in the core configuration)."""

# FP16 biased exponent = FP32 biased exponent - 112 (127 - 15)
_REBIAS = FP32.bias - FP16.bias


class Fp32ToFp16(wiring.Component):
    """FP32 ``a`` -> FP16 ``result`` (= numpy ``astype(float16)``, NaN -> 0x7E00).

    Ports: ``a`` (32-bit pattern), ``valid_in``, ``en`` (clock enable, default 1) in; ``result``
    (16-bit pattern), ``valid_out`` out.

    Timing: an operand set is taken on every cycle with ``en`` high, ``valid_in`` tagging it; its
    result and ``valid_out`` appear ``latency`` en-high cycles later and hold while ``en`` is low
    (a global stall: every register, valid included, loads only when ``en`` is high).
    ``latency`` = 0 is combinational and ignores ``en``.
    Registers are spread evenly after the 3 steps (classify, shift, round): 2 -> 0/1/1.
    """

    a: In(32)
    valid_in: In(1)
    en: In(1, init=1)
    result: Out(16)
    valid_out: Out(1)

    def __init__(self, latency: int = DEFAULT_CVT_LATENCY):
        self._latency = check_latency(latency)
        super().__init__()

    @property
    def latency(self) -> int:
        """Register stages from operand to result (cycles with ``en`` high)."""
        return self._latency

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        p = Pipeline(m, self._latency, 3, self.en, prefix="cvt")

        # step 1: classify; pick the right shift that keeps 11 significand bits (normal result,
        # shift 13) or fewer (subnormal result, shift 126 - e >= 14); FP32 subnormals have
        # e_eff = 1, shift 125 -> 0.
        u = unpack(m, FP32, self.a, "a")
        e = u.eff_exp
        normal = wire(m, e >= _REBIAS + 1, "normal")
        s = p.cut(
            sign=u.sign,
            sig=u.sig,
            shift=Mux(normal, 13, Mux(e < 126 - 31, 31, 126 - e))[:5],
            # FP16 exponent field minus one; the implicit bit of the kept significand adds it back
            exp_m1=Mux(normal, e - (_REBIAS + 1), 0)[:5],
            nan=u.is_nan,
            inf=u.is_inf | (e >= _REBIAS + FP16.exp_max),
        )

        # step 2: shift the 24-bit significand (plus one guard position) with sticky
        kept_g, sticky = shift_right_sticky(m, Cat(Const(0, 1), s["sig"]), s["shift"], "sh")
        s = p.cut(
            kept=kept_g[1:12],
            guard=kept_g[0],
            sticky=sticky,
            **{k: s[k] for k in ("sign", "exp_m1", "nan", "inf")},
        )

        # step 3: round to nearest even; carries ripple into the exponent field (subnormal ->
        # normal, 65504 + half-ulp -> inf)
        kept = s["kept"]
        inc = rne_increment(kept[0], s["guard"], s["sticky"])
        packed = (Cat(Const(0, 10), s["exp_m1"]) + kept + inc)[:15]
        sign = s["sign"]
        result = Mux(
            s["nan"],
            FP16.nan_bits,
            Mux(s["inf"], Cat(Const(FP16.inf_bits(), 15), sign), Cat(packed, sign)),
        )
        out = p.cut(result=result)
        p.done()
        m.d.comb += [self.result.eq(out["result"]), self.valid_out.eq(p.delay_valid(self.valid_in))]
        return m
