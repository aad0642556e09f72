"""``PwlTable``: FP16 -> FP16 piecewise-linear table functions (GELU of SFU_M, DFX §2.4; exp of
SFU_V, §2.5), bit-exact with the golden ``gelu16`` / ``exp16`` (:mod:`dfx.isa.golden.tables`,
docs/numerics.md §5).

For an FP16 input ``x`` (widened exactly to FP32) inside ``[lo, hi)``:

* ``i = floor((x - lo) / h)`` by exact fixed-point arithmetic (``h`` is a power of two, every
  FP16 value is a multiple of 2^-24);
* ``t = RN32(x - x_i)``, ``y = RN32(y_i + RN32(m_i * t))`` with ``x_i``, ``y_i``, ``m_i`` read
  from three ROMs (:class:`amaranth.lib.memory.Memory` initialised from the golden
  :class:`~dfx.isa.golden.tables.PwlTable` arrays), one :class:`.Fp32Add`, one
  :class:`.Fp32Mul`, one :class:`.Fp32Add`;
* the result is ``round16(y)`` (:class:`.Fp32ToFp16`).

Outside: ``x < lo -> +0``; ``x >= hi -> x`` (gelu) or ``+inf`` (exp); NaN -> ``0x7E00``.
:func:`fp16_to_fp32` (exact widening) is shared with the MPU's bias and row-max paths.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from typing import Any

import numpy as np
from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from dfx.isa.golden import tables as gtab

from .fp32_add import Fp32Add
from .fp32_mul import Fp32Mul
from .fp32_to_fp16 import Fp32ToFp16
from .fpformat import FP16, FP32, check_latency, lzc, spread, unpack, wire

__all__ = ["DEFAULT_TABLE_LATENCY", "PwlTable", "delay", "fp16_to_fp32"]

DEFAULT_TABLE_LATENCY = 4
"""The dfx-u280 core's ``vpu.table_latency`` (a dfx design choice, not published)."""

FUNCTIONS = ("gelu", "exp")
"""Table functions with FP16 input and output (recip/rsqrt are FP32 scalar functions)."""

_Q = 24  # fixed-point unit 2^-24: the quantum of every FP16 value


def delay(m: Module, value: Value, n: int, en: Value, name: str, *, reset_less=True) -> Value:
    """``value`` through ``n`` registers that load while ``en`` is high (a pipeline delay)."""
    value = Value.cast(value)
    for j in range(n):
        reg = Signal(value.shape(), name=f"{name}_d{j}", reset_less=reset_less)
        with m.If(en):
            m.d.sync += reg.eq(value)
        value = reg
    return value


def fp16_to_fp32(m: Module, x: Value, name: str) -> Value:
    """Exact FP16 -> FP32 widening of bit pattern ``x`` (combinational; subnormals normalised,
    NaN -> ``0x7FC00000``): the golden ``widen16``."""
    u = unpack(m, FP16, x, name)
    # subnormal: value = frac * 2^-24 with its leading one at bit 9 - lz
    lz = lzc(m, u.frac, f"{name}_lz")  # 0..9 for a non-zero fraction
    sub_frac = (u.frac << (lz + 1))[:10]
    sub_exp = (FP32.bias - FP16.bias - lz)[:8]  # 112 - lz
    exp = Mux(u.is_sub, sub_exp, Mux(u.is_inf, FP32.exp_max, u.exp + (FP32.bias - FP16.bias)))
    frac = Mux(u.is_sub, sub_frac, u.frac)
    mag = Mux(u.is_zero, 0, Cat(Const(0, 13), frac, exp[:8]))
    return wire(m, Mux(u.is_nan, FP32.nan_bits, Cat(mag[:31], u.sign)), f"{name}_w")


def _resolve_table(table: Any) -> gtab.PwlTable:
    if not isinstance(table, gtab.PwlTable):
        raise TypeError(
            f"table must be a dfx.isa.golden.tables.PwlTable (e.g. table_from_spec('gelu', "
            f"core.tables.gelu)), not {table!r}"
        )
    if table.fn not in FUNCTIONS:
        raise ValueError(
            f"PwlTable evaluates the FP16 tables {FUNCTIONS}, not {table.fn!r} "
            "(recip/rsqrt are FP32 scalar functions of SFU_V)"
        )
    h = Fraction(table.h)
    if h < Fraction(1, 1 << _Q):
        raise ValueError(f"table step h = {table.h!r} is below 2^-24, the FP16 resolution")
    return table


class PwlTable(wiring.Component):
    """``lanes`` parallel evaluations of a golden FP16 table function (see the module doc).

    Ports: ``a`` (``lanes`` FP16 patterns), ``valid_in``, ``en`` (clock enable, default 1) in;
    ``result`` (``lanes`` FP16 patterns), ``valid_out`` out. All lanes share the three ROMs
    (one read port per lane and ROM).

    ``leaf(m, name, block)`` (optional) adds each arithmetic block and returns the object to
    connect (default: a plain submodule; the MPU passes a black-box instantiator for fast
    Verilog generation).

    Timing: like the other arithmetic blocks, one input set per en-high cycle, results
    ``latency`` en-high cycles later, ``en`` low freezes everything. ``latency`` >= 1: the first
    register is the ROM read; the remaining ``latency - 1`` are spread over the subtract,
    multiply, add and FP16 rounding (4 -> 1 + 0/1/1/1), see :attr:`stage_latencies`.
    """

    def __init__(
        self,
        table: Any,
        *,
        lanes: int = 1,
        latency: int = DEFAULT_TABLE_LATENCY,
        leaf: Callable[[Module, str, Any], Any] | None = None,
    ):
        self._leaf = leaf
        self._table = _resolve_table(table)
        self._lanes = check_latency(lanes, 1, name="lanes")
        self._latency = check_latency(latency, 1)
        sub, mul, add, cvt = spread(self._latency - 1, 4)
        self._stages = {"rom": 1, "sub": sub, "mul": mul, "add": add, "cvt": cvt}
        super().__init__(
            {
                "a": In(16).array(self._lanes),
                "valid_in": In(1),
                "en": In(1, init=1),
                "result": Out(16).array(self._lanes),
                "valid_out": Out(1),
            }
        )

    @classmethod
    def from_core(cls, core: Any, fn: str = "gelu", *, lanes: int = 1) -> PwlTable:
        """The ``fn`` table of a :class:`dfx.isa.config.CoreConfig` (``core.tables.<fn>``) with
        latency ``core.vpu.table_latency``."""
        if fn not in FUNCTIONS:
            raise ValueError(f"fn must be one of {FUNCTIONS}, not {fn!r}")
        tab = gtab.table_from_spec(fn, getattr(core.tables, fn))
        return cls(tab, lanes=lanes, latency=core.vpu.table_latency)

    @property
    def table(self) -> gtab.PwlTable:
        return self._table

    @property
    def fn(self) -> str:
        return self._table.fn

    @property
    def lanes(self) -> int:
        return self._lanes

    @property
    def latency(self) -> int:
        """Register stages from input to result (cycles with ``en`` high)."""
        return self._latency

    @property
    def stage_latencies(self) -> dict[str, int]:
        """Registers per step: ROM read, subtract, multiply, add, FP16 rounding."""
        return dict(self._stages)

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        tab, en, st = self._table, self.en, self._stages
        n = tab.points
        k = Fraction(tab.h).numerator.bit_length() - Fraction(tab.h).denominator.bit_length()
        shift = k + _Q  # i = (X - LO) >> shift, X in units of 2^-24
        lo_q = int(Fraction(tab.lo) * (1 << _Q))
        hi_q = int(Fraction(tab.hi) * (1 << _Q))
        idx_bits = max(1, (n - 1).bit_length())

        def rom(name: str, values: np.ndarray) -> memory.Memory:
            bits = [int(v) for v in np.asarray(values, dtype=np.float32).view(np.uint32)[:n]]
            mem = memory.Memory(shape=32, depth=n, init=bits)
            m.submodules[f"rom_{name}"] = mem
            return mem

        rom_x, rom_y, rom_m = rom("x", tab.x), rom("y", tab.y), rom("m", tab.m)

        def leaf(name: str, block: Any) -> Any:
            if self._leaf is not None:
                return self._leaf(m, name, block)
            m.submodules[name] = block
            return block

        for lane in range(self._lanes):
            a = self.a[lane]
            nm = f"l{lane}"
            # step 0 (combinational): classify, widen, fixed-point value and segment index
            u = unpack(m, FP16, a, f"{nm}_x")
            finite = ~(u.is_inf | u.is_nan)
            mag = u.sig << (u.eff_exp - 1)[:5]  # |x| in units of 2^-24, < 2^40
            fx = wire(m, Mux(u.sign, -mag, mag), f"{nm}_fixed")
            inside = wire(m, finite & (fx >= lo_q) & (fx < hi_q), f"{nm}_inside")
            below = ~u.is_nan & Mux(finite, fx < lo_q, u.sign)
            idx = wire(m, Mux(inside, ((fx - lo_q) >> shift)[:idx_bits], 0), f"{nm}_idx")
            x32 = fp16_to_fp32(m, a, f"{nm}_x16")

            # ROM read register (x_i), the operands delayed alongside
            rx = rom_x.read_port(domain="sync")
            m.d.comb += [rx.addr.eq(idx), rx.en.eq(en)]
            x32_r = delay(m, x32, 1, en, f"{nm}_x32")
            nan_r = delay(m, u.is_nan, 1, en, f"{nm}_nan")
            below_r = delay(m, below, 1, en, f"{nm}_below")
            above_r = delay(m, ~u.is_nan & ~below & ~inside, 1, en, f"{nm}_above")

            # t = x - x_i
            sub = leaf(f"{nm}_sub", Fp32Add(st["sub"]))
            m.d.comb += [sub.a.eq(x32_r), sub.b.eq(rx.data ^ (1 << 31)), sub.en.eq(en)]

            # m_i * t: the m ROM is read one register before the multiplier's input
            rm = rom_m.read_port(domain="sync")
            m.d.comb += [rm.addr.eq(delay(m, idx, st["sub"], en, f"{nm}_idx_m")), rm.en.eq(en)]
            mul = leaf(f"{nm}_mul", Fp32Mul(st["mul"]))
            m.d.comb += [mul.a.eq(rm.data), mul.b.eq(sub.result), mul.en.eq(en)]

            # y_i + m_i * t
            ry = rom_y.read_port(domain="sync")
            idx_y = delay(m, idx, st["sub"] + st["mul"], en, f"{nm}_idx_y")
            m.d.comb += [ry.addr.eq(idx_y), ry.en.eq(en)]
            add = leaf(f"{nm}_add", Fp32Add(st["add"]))
            m.d.comb += [add.a.eq(ry.data), add.b.eq(mul.result), add.en.eq(en)]

            # out-of-range and NaN rules, applied in FP32 (round16 maps each exactly)
            d = st["sub"] + st["mul"] + st["add"]
            if tab.fn == "gelu":
                high = delay(m, x32_r, d, en, f"{nm}_xhi")
            else:
                high = Const(FP32.inf_bits(), 32)
            y32 = Mux(
                delay(m, nan_r, d, en, f"{nm}_nan2"),
                FP32.nan_bits,
                Mux(
                    delay(m, below_r, d, en, f"{nm}_below2"),
                    0,
                    Mux(delay(m, above_r, d, en, f"{nm}_above2"), high, add.result),
                ),
            )
            cvt = leaf(f"{nm}_cvt", Fp32ToFp16(st["cvt"]))
            m.d.comb += [cvt.a.eq(y32), cvt.en.eq(en), self.result[lane].eq(cvt.result)]

        valid = delay(m, self.valid_in, self._latency, en, "valid", reset_less=False)
        m.d.comb += self.valid_out.eq(valid)
        return m
