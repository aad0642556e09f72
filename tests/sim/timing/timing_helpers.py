"""Helpers for the timing-model tests: micro-program binaries and the unit conversions of
docs/timing.md, written out independently of the model so that expected cycle counts are
derived from the configuration values, never copied from the model's output."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from fractions import Fraction
from types import SimpleNamespace

from dfx.isa.asm import assemble
from dfx.isa.config import CoreConfig, load_core
from dfx.isa.container import Binary, CardImage
from dfx.isa.encoding import encode_program


def micro(programs: str | list[str], core: CoreConfig | None = None,
          symbols: dict | None = None) -> Binary:
    """A binary with one card per assembly program (no segments)."""
    if isinstance(programs, str):
        programs = [programs]
    core = core or load_core("dfx-u280")
    cards = [CardImage(program=encode_program(assemble(src)), segments=[],
                       debug=[(0, "test")], symbols=dict(symbols or {})) for src in programs]
    return Binary(core=core, model={"name": "micro"}, cards=cards)


def cycles(ns: float, core: CoreConfig) -> int:
    """Whole core cycles covering ``ns`` (the documented rounding: up)."""
    return math.ceil(Fraction(str(ns)) * Fraction(str(core.clock_mhz)) / 1000)


def bytes_per_cycle(gbs: float, eff: float, core: CoreConfig) -> Fraction:
    """A channel's bytes per core cycle: min(DMA port, peak x efficiency)."""
    port = Fraction(core.timing.dma_port_bits, 8)
    return min(port, Fraction(str(gbs)) * Fraction(str(eff)) * 1000
               / Fraction(str(core.clock_mhz)))


_UNITS: dict[str, SimpleNamespace] = {}


def rtl_units(core: CoreConfig) -> SimpleNamespace:
    """The core's RTL units (``mpu``, ``vpu``, ``lut``: ``Mpu/Vpu/LutGemm.from_core``, built
    but never elaborated): the tests read every unit latency from them, as the model does."""
    key = repr((core.d, core.l, core.mpu, core.vpu, core.tables, core.lutgemm))
    if key not in _UNITS:
        from amaranth.hdl import Elaboratable

        from dfx.rtl.lutgemm import LutGemm
        from dfx.rtl.mpu import Mpu
        from dfx.rtl.vpu import Vpu

        units = SimpleNamespace(mpu=Mpu.from_core(core), vpu=Vpu.from_core(core),
                                lut=LutGemm.from_core(core) if core.lutgemm else None)
        todo = list(vars(units).values())
        while todo:  # no "created but never used" warnings for them and their blocks
            obj = todo.pop()
            if isinstance(obj, Elaboratable) and not obj._MustUse__used:
                obj._MustUse__used = True
                todo.extend(vars(obj).values())
        _UNITS[key] = units
    return _UNITS[key]


def vpu_op(name: str):
    """The :class:`dfx.rtl.vpu.VpuOp` of a mnemonic."""
    from dfx.rtl.vpu import VpuOp

    return VpuOp[name.upper()]


@contextlib.contextmanager
def row_aligned_ddr() -> Iterator[None]:
    """Compile with the per-layer DDR block (and its base) aligned to a row of the memory
    system (``core.tile_bytes``) instead of 64 bytes (tests/sim/timing/conftest.py
    ``medium4_rows`` says why)."""
    import inspect

    import dfx.compiler.driver as drv
    import dfx.compiler.memplan as mp

    saved = mp.plan_card
    src = inspect.getsource(mp.plan_card)
    for name in ("ddr_layer_base = _align(g.size, 64)", "ddr_layer_stride = _align(lp.size, 64)"):
        assert name in src, f"compiler/memplan.py changed: {name!r} not found"
        src = src.replace(name, name.replace("64)", "core.tile_bytes)"))
    ns: dict = {}
    exec(compile(src, mp.__file__, "exec"), mp.__dict__, ns)
    mp.plan_card = drv.plan_card = ns["plan_card"]
    try:
        yield
    finally:
        mp.plan_card = drv.plan_card = saved

