"""``ExactAccumulate``: the exact fixed-point accumulation of ``vacc``/``vaccsq`` in SFU_V
(docs/numerics.md §5; golden ``dfx.isa.golden.ops.accum``).

The VFU multiplier bank hands over each vector's d elements as FP32: ``f32(a)`` (vacc) or the
exact square ``a*a`` (vaccsq). Each is an integer in units of 2^-48 (FP16 values are multiples
of 2^-24, their squares of 2^-48), so the sum is formed exactly and rounded once:

1. **tree** (``tree_latency`` registers over 1 + log2(d) steps): each FP32 value to a signed
   81-bit integer in one's complement plus a ``+1`` bit for negative values
   (:func:`~dfx.rtl.arith.fixed.fp32_to_fixed48_ones`: no negating adder per lane), then a
   pairwise integer adder tree over the d lanes (81 + log2(d) bits) whose d - 1 adders take
   d - 1 of the ``+1`` bits as carry-in; the last one is the carry-in of the accumulator's
   lowest limb. The lanes' NaN, +inf and -inf flags are OR-ed alongside;
2. **accumulator** (``add_latency`` = A limbs, one vector per cycle): a two's-complement
   register of :func:`acc_bits` bits (exact for 2^``INDEX_BITS`` vectors of d elements, the
   largest count a command carries), cut into A limbs (:func:`~dfx.rtl.arith.fixed.limb_widths`).
   Limb k of a vector is added k cycles after the tree result, with the carry out of limb k - 1
   from the cycle before (a skewed carry-propagate adder, as the LUT-GEMM scalers'), so the next
   vector follows in the very next cycle: no dependency chain through a floating-point adder.
   The first vector of a command starts from 0 (``first``); sticky NaN / +inf / -inf flags run
   beside limb 0. The limbs of the ``last`` vector are re-aligned by A - k registers;
3. **convert** (``convert_latency`` registers, :class:`~dfx.rtl.arith.int_to_fp32.IntToFp32`):
   one RNE rounding to FP32; exact 0 is +0. A NaN, or +inf and -inf together, give the canonical
   NaN ``0x7FC00000``; otherwise an infinity gives itself (vaccsq's squares are never -inf). The
   sum never overflows FP32 and is never subnormal.

Ports: ``en`` (default 1; low freezes everything), ``prod`` (d x FP32), ``valid``, ``first``,
``last`` in; ``result`` (FP32 pattern), ``valid_out`` (the ``last`` vector's sum) out.
:attr:`latency` = tree + add + convert en-cycles from the ``last`` vector to ``valid_out``.
"""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..arith.fixed import SQ_BITS, SQ_MAX, fp32_to_fixed48_ones, limb_widths, sum_bits
from ..arith.fpformat import Pipeline, check_latency, wire
from ..arith.int_to_fp32 import IntToFp32
from ..arith.pwl_table import delay
from .vfu import check_pow2

__all__ = ["ACC_FRAC_BITS", "ExactAccumulate", "acc_bits"]

ACC_FRAC_BITS = 48
"""Fraction bits of the accumulator: one unit is 2^-48, the square of 2^-24."""


def acc_bits(d: int, count_bits: int) -> int:
    """Two's-complement width of an accumulator that holds every sum of ``2^count_bits``
    vectors of ``d`` values (FP16 values or their squares, units of 2^-48) exactly."""
    return sum_bits(d << count_bits, SQ_MAX)


class ExactAccumulate(wiring.Component):
    """Exact sum of FP16 values or their squares, rounded once to FP32 (module doc).

    Parameters: ``d`` (lanes, a power of two), ``count_bits`` (vectors per sum < 2^count_bits),
    ``tree_latency`` (>= 0), ``add_latency`` (>= 1, accumulator limbs), ``convert_latency``
    (>= 0).
    """

    def __init__(self, d: int, *, count_bits: int, tree_latency: int, add_latency: int,
                 convert_latency: int):
        self._d = check_pow2(d, "d")
        self._tree = check_latency(tree_latency, 0, "acc_tree_latency")
        self._add = check_latency(add_latency, 1, "acc_add_latency")
        self._cvt = check_latency(convert_latency, 0, "acc_convert_latency")
        self._bits = acc_bits(d, count_bits)
        self._limbs = limb_widths(self._bits, self._add)
        super().__init__(
            {
                "en": In(1, init=1),
                "prod": In(data.ArrayLayout(32, d)),
                "valid": In(1),
                "first": In(1),
                "last": In(1),
                "result": Out(32),
                "valid_out": Out(1),
            }
        )

    @property
    def acc_bits(self) -> int:
        """Width of the accumulator (units of 2^-48)."""
        return self._bits

    @property
    def limbs(self) -> list[int]:
        """Widths of the accumulator's limbs, lowest first (one per adder cycle)."""
        return list(self._limbs)

    @property
    def tree_bits(self) -> int:
        """Width of a vector's sum: 81 + log2(d) bits."""
        return SQ_BITS + self._d.bit_length() - 1

    @property
    def latency(self) -> int:
        """En-cycles from the ``last`` vector on ``prod`` to ``valid_out``."""
        return self._tree + self._add + self._cvt

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        en, d = self.en, self._d
        levels = d.bit_length() - 1

        # ---- 1. FP32 -> fixed point (units of 2^-48), integer adder tree --------------------
        p = Pipeline(m, self._tree, 1 + levels, en, prefix="acc_t")
        vals, negs, nans, pinfs, ninfs = [], [], [], [], []
        for i in range(d):
            x = wire(m, Mux(self.valid, self.prod[i], 0), f"acc_x{i}")  # operand isolation
            v, neg, nan, pinf, ninf = fp32_to_fixed48_ones(m, x, f"acc_x{i}")
            vals.append(v)
            negs.append(neg)
            nans.append(nan)
            pinfs.append(pinf)
            ninfs.append(ninf)
        tags = {
            "first": self.first,
            "last": self.last,
            "nan": Cat(*nans).any(),
            "pinf": Cat(*pinfs).any(),
            "ninf": Cat(*ninfs).any(),
        }
        # the +1 bits still owed (one per lane), carried beside the values
        s = p.cut(**tags, **{f"v{i}": v for i, v in enumerate(vals)},
                  ones=Cat(*negs))
        level = [s[f"v{i}"] for i in range(d)]
        owed = s["ones"]
        for lv in range(levels):
            n = len(level) // 2  # adders on this level: each takes one owed +1 as carry-in
            w = len(level[0]) + 1
            sums = {f"v{j}": wire(m, (level[2 * j] + level[2 * j + 1] + owed[j])[:w].as_signed(),
                                  f"acc_l{lv}_{j}") for j in range(n)}
            s = p.cut(**{k: s[k] for k in tags}, **sums, ones=owed[n:])
            level = [s[f"v{j}"] for j in range(n)]
            owed = s["ones"]
        p.done()
        t_valid = p.delay_valid(self.valid)
        (t_sum,) = level
        t_sum = wire(m, t_sum.as_signed(), "acc_tsum")
        (t_one,) = owed  # d - (d - 1) = 1 left: the accumulator's carry-in

        # ---- 2. the wide accumulator: limb k of a vector k cycles after its tree sum --------
        wa, widths = self._bits, self._limbs
        a = self._add
        ext_w = Signal(wa, name="acc_term")
        m.d.comb += ext_w.eq(t_sum)  # sign-extended to the accumulator width
        los = [sum(widths[:k]) for k in range(a)]
        carry: Any = t_one
        aligned = []
        for k, wk in enumerate(widths):
            valid_k = delay(m, t_valid, k, en, f"acc_valid{k}", reset_less=False)
            init_k = delay(m, s["first"], k, en, f"acc_init{k}")
            part = delay(m, ext_w[los[k] : los[k] + wk], k, en, f"acc_part{k}")
            limb = Signal(wk, name=f"acc_limb{k}")
            old = Mux(init_k, 0, limb)
            total = old + part + carry
            new = wire(m, total[:wk], f"acc_new{k}")
            with m.If(en & valid_k):
                m.d.sync += limb.eq(new)
            if k < a - 1:
                carry_out = Signal(name=f"acc_carry{k}")
                with m.If(en):
                    m.d.sync += carry_out.eq(total[wk])
                carry = carry_out
            aligned.append(delay(m, new, a - k, en, f"acc_al{k}"))
        # sticky special-value flags beside limb 0
        flags = Signal(3, name="acc_flags")
        v_flags = Cat(s["nan"], s["pinf"], s["ninf"])
        new_flags = wire(m, Mux(s["first"], 0, flags) | v_flags, "acc_new_flags")
        with m.If(en & t_valid):
            m.d.sync += flags.eq(new_flags)
        fl = delay(m, new_flags, a, en, "acc_al_flags")
        done = delay(m, t_valid & s["last"], a, en, "acc_done", reset_less=False)
        total_acc = Cat(*aligned).as_signed()

        # ---- 3. one rounding to FP32; specials ---------------------------------------------
        nan = wire(m, fl[0] | (fl[1] & fl[2]), "acc_nan")
        m.submodules.cvt = cvt = IntToFp32(wa, self._cvt, frac_bits=ACC_FRAC_BITS)
        inf = delay(m, ~nan & (fl[1] | fl[2]), self._cvt, en, "acc_inf")
        inf_sign = delay(m, fl[2], self._cvt, en, "acc_inf_sign")
        m.d.comb += [
            cvt.en.eq(en),
            cvt.a.eq(total_acc),
            cvt.nan.eq(nan),
            cvt.valid_in.eq(done),
            self.result.eq(Mux(inf, Cat(Const(0x7F800000, 31), inf_sign), cvt.result)),
            self.valid_out.eq(cvt.valid_out),
        ]
        return m
