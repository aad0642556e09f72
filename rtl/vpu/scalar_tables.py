"""``ScalarTable``: FP32 reciprocal and reciprocal square root of SFU_V by table (DFX §2.5).

The range reduction and evaluation are the golden model's ``recip32`` / ``rsqrt32``
(``dfx.isa.golden.tables``, docs/numerics.md §5), bit for bit:

* ``x = ±m 2^e`` with ``m`` in [1, 2) (subnormals normalised); for rsqrt ``e`` is made even and
  ``m`` in [1, 4);
* ``i = floor((m - lo) / h)``, ``t = m - x_i`` (exact: ``m mod h`` in fixed point),
  ``r = RN32(y_i + RN32(m_i * t))`` with ``y_i, m_i`` from a ROM of the golden ``PwlTable``;
* the result is ``RN32(r 2^-e)`` (recip, sign of x) or ``RN32(r 2^(-e/2))`` (rsqrt), with
  gradual underflow and overflow to inf;
* specials: recip ``±0 -> ±inf``, ``±inf -> ±0``; rsqrt ``+0 -> +inf``, ``-0 -> -inf``,
  ``x < 0 -> NaN``, ``+inf -> +0``; NaN -> ``0x7FC00000``.
"""

import math
from typing import Any

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from dfx.isa.golden import fp as gfp
from dfx.isa.golden import tables as gtab

from ..arith.fp32_add import Fp32Add
from ..arith.fp32_mul import Fp32Mul
from ..arith.fpformat import FP32, check_latency, lzc, rne_increment, shift_right_sticky, unpack
from ..arith.fpformat import wire as _wire
from ..arith.pwl_table import ROM_ATTRS

__all__ = ["ScalarTable", "scale_pow2"]

FRAC = FP32.frac_bits  # 23: the mantissa m is handled as fixed point with 23 fraction bits


def _reg(m: Module, value: Value, en: Value, name: str, *, reset_less: bool = True) -> Signal:
    value = Value.cast(value)
    r = Signal(value.shape(), name=name, reset_less=reset_less)
    with m.If(en):
        m.d.sync += r.eq(value)
    return r


def _delay(m: Module, value: Value, n: int, en: Value, name: str, *, reset_less: bool = True):
    for j in range(n):
        value = _reg(m, value, en, f"{name}_d{j}", reset_less=reset_less)
    return Value.cast(value)


def _signed(m: Module, v: Value, name: str) -> Signal:
    """An unsigned value zero-extended into a signed signal (for exponent arithmetic)."""
    s = Signal(signed(len(v) + 2), name=name)
    m.d.comb += s.eq(v)
    return s


def scale_pow2(m: Module, r: Value, k: Value, name: str) -> Value:
    """``RN32(r * 2^k)`` of a finite FP32 ``r`` (bit pattern) and a signed integer ``k``:
    gradual underflow with round-to-nearest-even, overflow to inf (combinational).

    NaN and inf inputs are not handled here (callers select their special results).
    """
    u = unpack(m, FP32, r, f"{name}_r")
    lz = lzc(m, u.sig, f"{name}_lz")  # 0 for normals, 24 for zero
    sig = _wire(m, (u.sig << lz)[:24], f"{name}_sig")  # leading one at bit 23
    new_e = Signal(signed(12), name=f"{name}_e")  # biased exponent of the result
    m.d.comb += new_e.eq(_signed(m, u.eff_exp, f"{name}_ee") - lz + k)
    # subnormal result: shift right by 1 - new_e >= 1 (kept bits below the exponent field)
    sh = _wire(m, Mux(new_e < -40, 41, 1 - new_e)[:6], f"{name}_sh")
    kept_g, sticky = shift_right_sticky(m, Cat(Const(0, 1), sig), sh, f"{name}_sub")
    inc = rne_increment(kept_g[1], kept_g[0], sticky)
    sub = (kept_g[1:24] + inc)[:31]  # a carry lands in the exponent field: smallest normal
    normal = Cat(sig[:23], new_e[:8])
    mag = Mux(
        u.is_zero,
        0,
        Mux(new_e >= FP32.exp_max, FP32.inf_bits(), Mux(new_e >= 1, normal, sub)),
    )
    return _wire(m, Cat(mag[:31], u.sign), f"{name}_out")


class ScalarTable(wiring.Component):
    """FP32 ``a`` -> FP32 ``result`` = golden ``recip32(a)`` or ``rsqrt32(a)`` (see module doc).

    Ports: ``a``, ``valid_in``, ``en`` (clock enable, default 1) in; ``result``, ``valid_out``
    out; the same timing contract as :mod:`dfx.rtl.arith` (one operand per cycle, ``en`` low
    freezes everything). Pipeline: unpack and ROM read (1), ``m_i * t`` (``mul_latency``),
    ``y_i + p`` (``add_latency``), scale and specials (1):
    ``latency = mul_latency + add_latency + 2``.

    ``table``: a golden ``PwlTable`` of ``fn``, or a spec with ``lo, hi, points`` (a core
    config ``TableSpec``). Its ROM holds ``points`` words of ``{y_i, m_i}`` (64 bits), in block RAM
    (:data:`~dfx.rtl.arith.pwl_table.ROM_ATTRS`).
    """

    a: In(32)
    valid_in: In(1)
    en: In(1, init=1)
    result: Out(32)
    valid_out: Out(1)

    FUNCTIONS = ("recip", "rsqrt")

    def __init__(self, fn: str, table: Any = None, *, mul_latency: int = 1, add_latency: int = 1):
        if fn not in self.FUNCTIONS:
            raise ValueError(f"fn must be one of {self.FUNCTIONS}, not {fn!r}")
        tab = gtab.default_table(fn) if table is None else gtab.table_from_spec(fn, table)
        mant, ex = math.frexp(tab.h)
        k = 1 - ex  # h = 2^-k
        if mant != 0.5 or not 0 <= k <= FRAC:
            raise ValueError(
                f"table: the {fn} step h = {tab.h!r} must be 2^-k with 0 <= k <= {FRAC}"
            )
        self._fn = fn
        self._tab = tab
        self._k = k
        self._mul_latency = check_latency(mul_latency, name="mul_latency")
        self._add_latency = check_latency(add_latency, name="add_latency")
        super().__init__()

    @property
    def fn(self) -> str:
        return self._fn

    @property
    def table(self) -> "gtab.PwlTable":
        """The golden table the ROM is built from."""
        return self._tab

    @property
    def latency(self) -> int:
        """Register stages from operand to result: mul_latency + add_latency + 2."""
        return self._mul_latency + self._add_latency + 2

    def rom_init(self) -> list[int]:
        """ROM words ``(bits(y_i) << 32) | bits(m_i)``, i = 0 .. points-1."""
        y = gfp.f32_bits(self._tab.y[: self._tab.points]).astype(int)
        mm = gfp.f32_bits(self._tab.m).astype(int)
        return [(int(a) << 32) | int(b) for a, b in zip(y, mm, strict=True)]

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        en = self.en
        tab, k = self._tab, self._k
        rsqrt = self._fn == "rsqrt"

        # --- stage 0: classify, normalise, range reduction, ROM address -------------------
        u = unpack(m, FP32, self.a, "x")
        lz = lzc(m, u.sig, "x_lz")  # 0 for normals, 1..23 for subnormals
        sig = _wire(m, (u.sig << lz)[:24], "x_sig")  # m = sig * 2^-23 in [1, 2)
        e = Signal(signed(10), name="x_e")  # unbiased exponent of x = m 2^e
        m.d.comb += e.eq(_signed(m, u.eff_exp, "x_ee") - FP32.bias - lz)
        if rsqrt:
            odd = e[0]
            mfix = _wire(m, (Cat(sig, Const(0, 1)) << odd)[:25], "mfix")  # m in [1, 4)
            e_red = _wire(m, (e - odd.as_unsigned()).as_signed(), "e_even")
            shift = Signal(signed(10), name="shift")
            m.d.comb += shift.eq(-(e_red >> 1))  # e_red even: exact halving
        else:
            mfix = Cat(sig, Const(0, 1))
            shift = Signal(signed(10), name="shift")
            m.d.comb += shift.eq(-e)
        w_t = FRAC - k  # fraction bits of t = m mod h
        base = round(tab.lo / tab.h)  # lo / h, an integer (checked by the golden table)
        idx_bits = max(1, (tab.points - 1).bit_length())
        idx = _wire(m, (mfix >> w_t) - base, "idx")[:idx_bits]
        t_int = mfix[:w_t] if w_t else Const(0, 1)

        rom = memory.Memory(
            shape=unsigned(64), depth=tab.points, init=self.rom_init(), attrs=ROM_ATTRS
        )
        m.submodules.rom = rom
        rd = rom.read_port()
        m.d.comb += [rd.addr.eq(idx), rd.en.eq(en)]

        if rsqrt:
            nan = u.is_nan | (u.sign & ~u.is_zero)
            special = Mux(
                u.is_zero,
                Cat(Const(FP32.inf_bits(), 31), u.sign),
                Const(0, 32),  # +inf -> +0
            )
            is_special = nan | u.is_zero | u.is_inf
            sign = Const(0, 1)
        else:
            nan = u.is_nan
            special = Mux(
                u.is_zero, Cat(Const(FP32.inf_bits(), 31), u.sign), Cat(Const(0, 31), u.sign)
            )
            is_special = nan | u.is_zero | u.is_inf
            sign = u.sign
        s1 = {
            "t_int": _reg(m, t_int, en, "s1_t"),
            "shift": _reg(m, shift, en, "s1_shift"),
            "nan": _reg(m, nan, en, "s1_nan"),
            "special": _reg(m, special, en, "s1_special"),
            "is_special": _reg(m, is_special, en, "s1_is_special"),
            "sign": _reg(m, sign, en, "s1_sign"),
        }
        valid = _reg(m, self.valid_in, en, "s1_valid", reset_less=False)

        # --- stage 1: t to FP32 (exact), m_i * t -------------------------------------------
        t_int = s1["t_int"]
        tw = len(t_int)
        t_lz = lzc(m, t_int, "t_lz")  # tw when t = 0
        t_norm = _wire(m, (t_int << t_lz)[:tw], "t_norm")  # leading one at bit tw-1
        t_frac = Cat(Const(0, FRAC - (tw - 1)), t_norm[: tw - 1]) if tw > 1 else Const(0, FRAC)
        t_exp = (FP32.bias - FRAC + tw - 1 - t_lz)[:8]
        t32 = _wire(m, Mux(t_int == 0, 0, Cat(t_frac, t_exp, Const(0, 1))), "t32")
        y_i, m_i = rd.data[32:], rd.data[:32]

        mul = Fp32Mul(self._mul_latency)
        m.submodules.mul = mul
        m.d.comb += [mul.a.eq(m_i), mul.b.eq(t32), mul.valid_in.eq(valid), mul.en.eq(en)]
        keep = {k2: _delay(m, v, self._mul_latency, en, f"m_{k2}") for k2, v in s1.items()}
        y_d = _delay(m, y_i, self._mul_latency, en, "m_y")

        # --- stage 2: y_i + p ---------------------------------------------------------------
        add = Fp32Add(self._add_latency)
        m.submodules.add = add
        m.d.comb += [
            add.a.eq(y_d),
            add.b.eq(mul.result),
            add.valid_in.eq(mul.valid_out),
            add.en.eq(en),
        ]
        keep = {k2: _delay(m, v, self._add_latency, en, f"a_{k2}") for k2, v in keep.items()}

        # --- stage 3: scale by the power of two, specials ----------------------------------
        r = add.result  # finite and positive for every valid recip/rsqrt table
        scaled = scale_pow2(m, r, keep["shift"].as_signed(), "sc")
        scaled = Cat(scaled[:31], keep["sign"])
        out = Mux(
            keep["nan"],
            FP32.nan_bits,
            Mux(keep["is_special"], keep["special"], scaled),
        )
        res = _reg(m, out, en, "out")
        v_out = _reg(m, add.valid_out, en, "out_valid", reset_less=False)
        m.d.comb += [self.result.eq(res), self.valid_out.eq(v_out)]
        return m
