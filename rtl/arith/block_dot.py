"""``BlockDot``: one MFU lane's dot product of d FP16 pairs -> FP32 (DFX §2.4 MAC tree),
bit-exact with the golden ``block_dot32`` (docs/numerics.md §3).

Deviation from DFX, whose lane is a tree of FP16 adders: the d exact products are aligned to
the largest product exponent E with F = ``DOT_FRAC_BITS`` more fraction bits (two's
complement, shifted right: floor), summed by an integer adder tree and rounded once to FP32.
There is no FP32 adder in the tree: its cost is d shifters and d - 1 integer adders of
23 + F .. 23 + F + log2 d bits, where an FP32 adder tree needs d - 1 alignment shifters,
normalisers and rounders (issue 12, docs/BENCHMARKS.md "Resource estimate").

The sign of each product is applied to b's 11-bit significand before the multiply (12-bit two's
complement, ``(sig ^ sign) + sign``), so the DSP's product is already signed and the alignment
shifts it directly: one 12-bit carry chain per product where negating the 22-bit product
after the multiply took a 23-bit chain and a 23-bit multiplexer (issue 12). The terms' values
are the same, so the sum is bit for bit unchanged.

Pipeline: the significand products (one DSP each) with the exponent maximum beside them take
``mul_latency`` registers; alignment, the log2 d tree levels and the rounding
(:class:`~.int_to_fp32.IntToFp32`, run-time exponent) take ``dot_latency``, spread evenly.
"""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Cat, Const, Module, Mux, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from dfx.isa.golden.fp import DOT_FRAC_BITS

from .fpformat import FP16, FP32, Pipeline, check_latency, check_pow2, spread, unpack, wire
from .int_to_fp32 import IntToFp32

__all__ = ["BlockDot"]

_EXP_BITS = 6  # exponent sums: 2 .. 60
_CVT_STEPS = 3  # IntToFp32: magnitude, normalise, round


def _max_level(m: Module, level: list[Value], name: str) -> list[Value]:
    return [
        wire(m, Mux(a > b, a, b), f"{name}_{i}")
        for i, (a, b) in enumerate(zip(level[0::2], level[1::2], strict=True))
    ]


class BlockDot(wiring.Component):
    """FP16 vectors ``a``, ``b`` (d elements) -> FP32 ``result`` = ``block_dot32(a, b)``.

    Ports: ``a``, ``b`` (arrays of d 16-bit patterns), ``valid_in``, ``en`` (clock enable,
    default 1) in; ``result`` (32-bit pattern), ``valid_out`` out. Timing contract of the
    arithmetic blocks: one operand set per en-high cycle, ``latency`` = ``mul_latency`` +
    ``dot_latency`` en-cycles to its result; ``en`` low freezes every register.
    """

    def __init__(self, d: int, *, mul_latency: int, dot_latency: int,
                 frac_bits: int = DOT_FRAC_BITS):
        self._d = check_pow2(d, "d")
        self._mul_latency = check_latency(mul_latency, name="mul_latency")
        self._dot_latency = check_latency(dot_latency, name="dot_latency")
        frac_bits = check_latency(frac_bits, name="frac_bits")
        if frac_bits > 40:
            raise ValueError(f"frac_bits must be an integer in 0..40, not {frac_bits!r}")
        self._frac = frac_bits
        super().__init__(
            {
                "a": In(16).array(d),
                "b": In(16).array(d),
                "valid_in": In(1),
                "en": In(1, init=1),
                "result": Out(32),
                "valid_out": Out(1),
            }
        )

    @classmethod
    def from_core(cls, core: Any) -> BlockDot:
        """The MFU lane of a :class:`dfx.isa.config.CoreConfig`: d = ``core.mpu.d``,
        ``mpu.mul_latency``, ``mpu.dot_latency``."""
        return cls(core.mpu.d, mul_latency=core.mpu.mul_latency,
                   dot_latency=core.mpu.dot_latency)

    @property
    def d(self) -> int:
        return self._d

    @property
    def depth(self) -> int:
        """Levels of the exponent-maximum and integer adder trees, log2 d."""
        return self._d.bit_length() - 1

    @property
    def term_bits(self) -> int:
        """Width of an aligned product: sign + 22-bit significand product + F fraction bits."""
        return 23 + self._frac

    @property
    def sum_bits(self) -> int:
        """Width of the integer tree's sum."""
        return self.term_bits + self.depth

    @staticmethod
    def pipeline_latency(mul_latency: int, dot_latency: int) -> int:
        """Register stages from operands to result: the products, then the reduction."""
        return mul_latency + dot_latency

    @property
    def latency(self) -> int:
        return self.pipeline_latency(self._mul_latency, self._dot_latency)

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        en, d, depth, frac = self.en, self._d, self.depth, self._frac

        # ---- products (mul_latency): unpack | significand product; exponent maximum beside
        pm = Pipeline(m, self._mul_latency, 2, en, prefix="mul")
        pe = Pipeline(m, self._mul_latency, max(1, depth), en, prefix="emax")
        cut: dict[str, Value] = {}
        exps, nan, pinf, ninf = [], [], [], []
        for i in range(d):
            ua, ub = unpack(m, FP16, self.a[i], f"a{i}"), unpack(m, FP16, self.b[i], f"b{i}")
            special = ua.is_inf | ua.is_nan | ub.is_inf | ub.is_nan
            live = wire(m, ~(ua.is_zero | ub.is_zero | special), f"live{i}")
            sign = ua.sign ^ ub.sign
            is_nan = ua.is_nan | ub.is_nan | (ua.is_inf & ub.is_zero) | (ua.is_zero & ub.is_inf)
            is_inf = (ua.is_inf | ub.is_inf) & ~is_nan
            e = wire(m, Mux(live, ua.eff_exp + ub.eff_exp, 0)[:_EXP_BITS], f"e{i}")
            exps.append(e)
            nan.append(is_nan)
            pinf.append(is_inf & ~sign)
            ninf.append(is_inf & sign)
            # +-sig_b: one's complement (merges into the unpack LUTs) + sign (a carry chain)
            ones = wire(m, Cat(ub.sig, Const(0, 1)) ^ sign.replicate(12), f"sbx{i}")
            sb = wire(m, (ones + sign)[:12].as_signed(), f"sb{i}")
            cut |= {f"sa{i}": Mux(live, ua.sig, 0), f"sb{i}": sb, f"e{i}": e}
        flags = {
            name: wire(m, Cat(*bits).any(), f"{name}_any")
            for name, bits in (("nan", nan), ("pinf", pinf), ("ninf", ninf))
        }
        s = pm.cut(**cut, **flags)
        prods = {f"p{i}": (s[f"sa{i}"] * s[f"sb{i}"])[:23].as_signed() for i in range(d)}
        keep = {k: v for k, v in s.items() if not k.startswith(("sa", "sb"))}
        s = pm.cut(**prods, **keep)
        pm.done()

        level: list[Value] = list(exps)
        for k in range(max(1, depth)):
            if len(level) > 1:
                level = _max_level(m, level, f"emax{k}")
            level = list(pe.cut(**{f"x{j}": v for j, v in enumerate(level)}).values())
        pe.done()
        (emax,) = level

        # ---- alignment, integer tree (before the rounding's share of dot_latency)
        counts = spread(self._dot_latency, 1 + depth + _CVT_STEPS)
        tree_latency = sum(counts[: 1 + depth])
        pd = Pipeline(m, tree_latency, 1 + depth, en, prefix="dot")
        tb = self.term_bits
        terms = []
        for i in range(d):
            sv = wire(m, s[f"p{i}"] << frac, f"sv{i}")  # 23 + F bits, signed
            shift = wire(m, (emax - s[f"e{i}"])[:_EXP_BITS], f"sh{i}")
            terms.append(wire(m, sv >> shift, f"t{i}"))
        carry = {"emax": emax, **{k: s[k] for k in ("nan", "pinf", "ninf")}}
        out = pd.cut(**{f"t{i}": t for i, t in enumerate(terms)}, **carry)
        level = [out[f"t{i}"] for i in range(d)]
        carry = {k: out[k] for k in carry}
        for k in range(depth):
            w = tb + k + 1
            level = [
                wire(m, (a.as_signed() + b.as_signed())[:w].as_signed(), f"sum{k}_{j}")
                for j, (a, b) in enumerate(zip(level[0::2], level[1::2], strict=True))
            ]
            out = pd.cut(**{f"x{j}": v for j, v in enumerate(level)}, **carry)
            level = [out[f"x{j}"] for j in range(len(level))]
            carry = {k2: out[k2] for k2 in carry}
        pd.done()
        (total,) = level

        # ---- one rounding: total * 2^(E - 50 - F), then the IEEE rules of inf and NaN
        cvt_latency = self._dot_latency - tree_latency
        m.submodules.cvt = cvt = IntToFp32(
            self.sum_bits, cvt_latency, frac_bits=50 + frac, exp_bits=_EXP_BITS
        )
        m.d.comb += [
            cvt.a.eq(total), cvt.exp.eq(carry["emax"]), cvt.nan.eq(0), cvt.en.eq(en),
        ]
        fl = Pipeline(m, cvt_latency, 1, en, prefix="flags").cut(
            nan=carry["nan"] | (carry["pinf"] & carry["ninf"]),
            pinf=carry["pinf"], ninf=carry["ninf"],
        )
        result = Mux(
            fl["nan"],
            FP32.nan_bits,
            Mux(fl["pinf"], Const(FP32.inf_bits(), 32),
                Mux(fl["ninf"], Const(FP32.inf_bits(1), 32), cvt.result)),
        )
        m.d.comb += self.result.eq(result)
        valid = pm.delay_valid(self.valid_in)
        valid = Pipeline(m, self._dot_latency, 1, en, prefix="dv").delay_valid(valid)
        m.d.comb += self.valid_out.eq(valid)
        return m
