"""``PwlTable``: FP16 -> FP16 piecewise-linear table functions (GELU of SFU_M, DFX §2.4; exp of
SFU_V, §2.5), bit-exact with the golden ``gelu16`` / ``exp16`` (:mod:`dfx.isa.golden.tables`,
docs/numerics.md §5).

For an FP16 input ``x`` inside ``[lo, hi)``:

* ``i = floor((x - lo) / h)`` by exact fixed-point arithmetic (``h`` is a power of two, every
  FP16 value is a multiple of 2^-24);
* ``t = RN32(x - x_i)``: the breakpoints are ``x_i = lo + i h`` exactly (the golden table
  checks that each is exact in FP32; :func:`_resolve_table` checks ``table.x``), so
  ``x - x_i`` is the low ``log2(h) + 24`` bits of the fixed-point ``x - lo``, rounded once
  (:class:`.IntToFp32`; exact when ``h <= 1``): no ``x_i`` ROM and no subtracter;
* ``y = RN32(y_i + RN32(m_i * t))`` with ``y_i``, ``m_i`` read from two ROMs
  (:class:`amaranth.lib.memory.Memory` initialised from the golden
  :class:`~dfx.isa.golden.tables.PwlTable` arrays), one :class:`.Fp32Mul`, one
  :class:`.Fp32Add`;
* the result is ``round16(y)`` (:class:`.Fp32ToFp16`).

Outside: ``x < lo -> +0``; ``x >= hi -> x`` (gelu) or ``+inf`` (exp); NaN -> ``0x7E00``.

One unit may hold several tables (the VFU's exp and gelu, which never issue in the same cycle):
a ``sel`` input picks the table of each input set, the ROMs hold every table one after the
other, and the lanes' arithmetic is shared.
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
from .int_to_fp32 import IntToFp32

__all__ = ["DEFAULT_TABLE_LATENCY", "ROM_ATTRS", "ROM_PORTS", "PwlLanes", "PwlTable", "delay",
           "fp16_to_fp32"]

DEFAULT_TABLE_LATENCY = 4
"""The dfx-u280 core's ``vpu.table_latency`` (a dfx design choice, not published)."""

FUNCTIONS = ("gelu", "exp")
"""Table functions with FP16 input and output (recip/rsqrt are FP32 scalar functions)."""

_Q = 24  # fixed-point unit 2^-24: the quantum of every FP16 value

ROM_ATTRS = {"rom_style": "block"}
"""Synthesis attribute of the table ROMs: block RAM (Yosys ``memory_libmap`` and Vivado honour
``rom_style``), one copy per two read ports. Without it Yosys' ``memory_libmap`` builds the
smaller tables (the tiny core's 256 and 512 words, read by every lane) from LUTs."""


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
    xs = [Fraction(table.lo) + i * h for i in range(table.points)]
    if [Fraction(float(v)) for v in table.x[: table.points]] != xs:
        raise ValueError("table breakpoints x_i must be exactly lo + i*h (the golden tables' are)")
    return table


def _resolve_tables(table: Any) -> tuple[gtab.PwlTable, ...]:
    tabs = tuple(table) if isinstance(table, (tuple, list)) else (table,)
    if not tabs:
        raise ValueError("tables: need at least one table")
    tabs = tuple(_resolve_table(t) for t in tabs)
    fns = [t.fn for t in tabs]
    if len(set(fns)) != len(fns):
        raise ValueError(f"tables: one table per function, got {fns}")
    return tabs


class PwlTable(wiring.Component):
    """``lanes`` parallel evaluations of a golden FP16 table function (see the module doc).

    ``table``: a golden :class:`~dfx.isa.golden.tables.PwlTable`, or a tuple of them (distinct
    functions) sharing one datapath.

    Ports: ``a`` (``lanes`` FP16 patterns), ``valid_in``, ``en`` (clock enable, default 1) in;
    with several tables ``sel`` in (index into :attr:`tables`, taken with ``a``); ``result``
    (``lanes`` FP16 patterns), ``valid_out`` out. Every :data:`ROM_PORTS` lanes share one
    copy of the two ROMs (one read port per lane and ROM; block RAM, :data:`ROM_ATTRS`): a
    :class:`PwlLanes` each.

    ``leaf(m, name, block)`` (optional) adds each arithmetic block and returns the object to
    connect (default: a plain submodule; the MPU passes a black-box instantiator for fast
    Verilog generation).

    Timing: like the other arithmetic blocks, one input set per en-high cycle, results
    ``latency`` en-high cycles later, ``en`` low freezes everything. ``latency`` >= 1: the first
    register holds the segment's offset ``t`` (beside it the ``m_i`` ROM read starts); the
    remaining ``latency - 1`` are spread over ``t`` to FP32, multiply, add and FP16 rounding
    (4 -> 1 + 0/1/1/1), see :attr:`stage_latencies`.
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
        self._tables = _resolve_tables(table)
        self._lanes = check_latency(lanes, 1, name="lanes")
        self._latency = check_latency(latency, 1)
        sub, mul, add, cvt = spread(self._latency - 1, 4)
        self._stages = {"rom": 1, "sub": sub, "mul": mul, "add": add, "cvt": cvt}
        super().__init__(
            {
                "a": In(16).array(self._lanes),
                **({"sel": In(range(len(self._tables)))} if len(self._tables) > 1 else {}),
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
    def tables(self) -> tuple[gtab.PwlTable, ...]:
        """The golden tables, in ``sel`` order."""
        return self._tables

    @property
    def table(self) -> gtab.PwlTable:
        """The (first) golden table."""
        return self._tables[0]

    @property
    def fn(self) -> str:
        """The (first) table's function."""
        return self._tables[0].fn

    @property
    def lanes(self) -> int:
        return self._lanes

    @property
    def latency(self) -> int:
        """Register stages from input to result (cycles with ``en`` high)."""
        return self._latency

    @property
    def stage_latencies(self) -> dict[str, int]:
        """Registers per step: first register, ``t`` to FP32 ("sub"), multiply, add, FP16
        rounding."""
        return dict(self._stages)


    def elaborate(self, platform: Any) -> Module:
        m = Module()
        en, st = self.en, self._stages
        multi = len(self._tables) > 1
        sel = self.sel if multi else Const(0, 1)
        d = st["sub"] + st["mul"] + st["add"]
        sel_out = delay(m, sel, 1 + d, en, "sel_out") if multi else sel
        # one copy of the ROMs per ROM_PORTS lanes (a block RAM's read ports)
        for g, first in enumerate(range(0, self._lanes, ROM_PORTS)):
            lanes = min(ROM_PORTS, self._lanes - first)
            grp = PwlLanes(self._tables, lanes, self._stages, leaf=self._leaf)
            m.submodules[f"lanes{g}"] = grp
            m.d.comb += [grp.en.eq(en)]
            if multi:
                m.d.comb += [grp.sel.eq(sel), grp.sel_out.eq(sel_out)]
            for k in range(lanes):
                m.d.comb += [grp.a[k].eq(self.a[first + k]),
                             self.result[first + k].eq(grp.result[k])]
        valid = delay(m, self.valid_in, self._latency, en, "valid", reset_less=False)
        m.d.comb += self.valid_out.eq(valid)
        return m


ROM_PORTS = 2
"""Lanes per copy of the ROMs: a block RAM has two read ports (true dual port), so a table unit
of n lanes holds ceil(n / 2) copies, each in its :class:`PwlLanes` (what ``rom_style`` block
asks a synthesiser to build anyway, written out so each copy is a small block of its own)."""


class PwlLanes(wiring.Component):
    """Up to :data:`ROM_PORTS` lanes of a :class:`PwlTable` with their own copy of the ``y`` and
    ``m`` ROMs (the module doc's datapath, per lane). Built by :class:`PwlTable` only.

    Ports: ``a``, ``result`` (``lanes`` FP16 patterns), ``en``; with several tables ``sel``
    (taken with ``a``) and ``sel_out`` (``sel`` delayed to the output stage, shared by every
    copy in the parent).
    """

    def __init__(self, tables: tuple[gtab.PwlTable, ...], lanes: int, stages: dict[str, int],
                 *, leaf: Callable[[Module, str, Any], Any] | None = None):
        self._tables = tables
        self._lanes = lanes
        self._stages = dict(stages)
        self._leaf = leaf
        multi = len(tables) > 1
        super().__init__(
            {
                "a": In(16).array(lanes),
                **({"sel": In(range(len(tables))), "sel_out": In(range(len(tables)))}
                   if multi else {}),
                "en": In(1, init=1),
                "result": Out(16).array(lanes),
            }
        )

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        tabs, en, st = self._tables, self.en, self._stages
        multi = len(tabs) > 1
        # per table: i = (X - LO) >> shift, X in units of 2^-24; shift = log2(h) + 24
        shifts = [Fraction(t.h).numerator.bit_length() - Fraction(t.h).denominator.bit_length()
                  + _Q for t in tabs]
        lo_qs = [int(Fraction(t.lo) * (1 << _Q)) for t in tabs]
        hi_qs = [int(Fraction(t.hi) * (1 << _Q)) for t in tabs]
        idx_bits = max(1, *((t.points - 1).bit_length() for t in tabs))
        t_bits = max(1, *shifts)
        # ROM words: table j at j << idx_bits (a single table: exactly its points)
        depth = tabs[0].points if not multi else len(tabs) << idx_bits

        def rom(name: str, field: str) -> memory.Memory:
            init = [0] * depth
            for j, t in enumerate(tabs):
                vals = np.asarray(getattr(t, field), dtype=np.float32).view(np.uint32)
                init[j << idx_bits : (j << idx_bits) + t.points] = [
                    int(v) for v in vals[: t.points]
                ]
            mem = memory.Memory(shape=32, depth=depth, init=init, attrs=ROM_ATTRS)
            m.submodules[f"rom_{name}"] = mem
            return mem

        rom_y, rom_m = rom("y", "y"), rom("m", "m")
        sel = self.sel if multi else Const(0, 1)
        sel_out = self.sel_out if multi else sel

        def pick(values: list[Value]) -> Value:
            """The selected table's value (``sel`` taken with ``a``)."""
            out = values[0]
            for j in range(1, len(values)):
                out = Mux(sel == j, values[j], out)
            return out

        def leaf(name: str, block: Any) -> Any:
            if self._leaf is not None:
                return self._leaf(m, name, block)
            m.submodules[name] = block
            return block

        d = st["sub"] + st["mul"] + st["add"]
        for lane in range(self._lanes):
            a = self.a[lane]
            nm = f"l{lane}"
            # step 0 (combinational): classify, fixed-point value and segment index
            u = unpack(m, FP16, a, f"{nm}_x")
            finite = ~(u.is_inf | u.is_nan)
            mag = u.sig << (u.eff_exp - 1)[:5]  # |x| in units of 2^-24, < 2^40
            fx = wire(m, Mux(u.sign, -mag, mag), f"{nm}_fixed")
            inside = wire(m, finite & pick([(fx >= lo) & (fx < hi) for lo, hi in
                                            zip(lo_qs, hi_qs, strict=True)]), f"{nm}_inside")
            below = ~u.is_nan & Mux(finite, pick([fx < lo for lo in lo_qs]), u.sign)
            idx = pick([((fx - lo) >> sh)[:idx_bits] for lo, sh in zip(lo_qs, shifts, strict=True)])
            idx = wire(m, Mux(inside, idx, 0), f"{nm}_idx")
            addr = Cat(idx, sel) if multi else idx
            # x - x_i = (x - lo) mod h, exact in units of 2^-24 (x_i = lo + i*h)
            t_fix = pick([(fx - lo)[:sh] if sh else Const(0, 1)
                          for lo, sh in zip(lo_qs, shifts, strict=True)])
            t_fix = wire(m, t_fix, f"{nm}_t")

            # first register: t and the flags (the ROM reads start from addr alongside)
            t_r = delay(m, t_fix, 1, en, f"{nm}_t")
            nan_r = delay(m, u.is_nan, 1, en, f"{nm}_nan")
            below_r = delay(m, below, 1, en, f"{nm}_below")
            above_r = delay(m, ~u.is_nan & ~below & ~inside, 1, en, f"{nm}_above")

            # t = RN32(x - x_i)
            sub = leaf(f"{nm}_sub", IntToFp32(t_bits + 1, st["sub"], frac_bits=_Q))
            m.d.comb += [sub.a.eq(t_r), sub.en.eq(en)]

            # m_i * t: the m ROM is read one register before the multiplier's input
            rm = rom_m.read_port(domain="sync")
            addr_m = delay(m, addr, st["sub"], en, f"{nm}_idx_m")
            m.d.comb += [rm.addr.eq(addr_m), rm.en.eq(en)]
            mul = leaf(f"{nm}_mul", Fp32Mul(st["mul"]))
            m.d.comb += [mul.a.eq(rm.data), mul.b.eq(sub.result), mul.en.eq(en)]

            # y_i + m_i * t
            ry = rom_y.read_port(domain="sync")
            addr_y = delay(m, addr, st["sub"] + st["mul"], en, f"{nm}_idx_y")
            m.d.comb += [ry.addr.eq(addr_y), ry.en.eq(en)]
            add = leaf(f"{nm}_add", Fp32Add(st["add"]))
            m.d.comb += [add.a.eq(ry.data), add.b.eq(mul.result), add.en.eq(en)]

            # out-of-range and NaN rules, applied in FP32 (round16 maps each exactly)
            highs = []
            for t in tabs:
                if t.fn == "gelu":  # x itself, delayed as FP16 and widened at the end
                    highs.append(fp16_to_fp32(m, delay(m, a, 1 + d, en, f"{nm}_xhi"), f"{nm}_x16"))
                else:
                    highs.append(Const(FP32.inf_bits(), 32))
            high = highs[0]
            for j in range(1, len(highs)):
                high = Mux(sel_out == j, highs[j], high)
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
        return m
