"""Helpers for the timing-model tests: micro-program binaries and the unit conversions of
docs/timing.md, written out independently of the model so that expected cycle counts are
derived from the configuration values, never copied from the model's output."""

from __future__ import annotations

import math
from fractions import Fraction

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
