"""Helpers for the functional-simulator tests: hand-assembled programs on the ``tiny`` core
(d = 8, l = 4), turned into a :class:`Binary` without the compiler."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from dfx.isa.asm import assemble
from dfx.isa.config import CoreConfig, load_core
from dfx.isa.container import Binary, CardImage, Segment
from dfx.isa.encoding import Instruction, encode_program
from dfx.sim.functional import Appliance


class Sim:
    """Build binaries from assembly text and run them."""

    def __init__(self) -> None:
        self.core: CoreConfig = load_core("tiny")
        self.d = self.core.d
        self.l = self.core.l  # noqa: E741

    def program(self, text: str | Sequence[Instruction]) -> list[Instruction]:
        return assemble(text) if isinstance(text, str) else list(text)

    def binary(self, programs: str | Sequence[Any], segments: Sequence[Any] = (),
               symbols: dict | Sequence[dict] | None = None, model: dict | None = None,
               debug: Sequence[Any] | None = None) -> Binary:
        """One card per program (a single program: one card). ``segments``: per card, or one
        list for a single card; entries are Segment or (space, addr, array)."""
        if isinstance(programs, str) or (programs and isinstance(programs[0], Instruction)):
            programs = [programs]
            segments = [segments]
            symbols = [symbols or {}]
        n = len(programs)
        if not segments:
            segments = [()] * n
        if symbols is None or isinstance(symbols, dict):
            symbols = [symbols or {}] * n
        cards = []
        for i, prog in enumerate(programs):
            ins = self.program(prog)
            segs = [s if isinstance(s, Segment) else Segment(s[0], s[1], np.asarray(s[2]))
                    for s in segments[i]]
            dbg = list(debug[i]) if debug is not None else [(0, "test")]
            cards.append(CardImage(program=encode_program(ins), segments=segs, debug=dbg,
                                   symbols=symbols[i]))
        return Binary(core=self.core, model=model or {}, cards=cards)

    def run(self, programs: str | Sequence[Any], segments: Sequence[Any] = (), *,
            max_instructions: int = 100_000, **kw: Any) -> Appliance:
        app = Appliance(self.binary(programs, segments, **kw))
        app.run(max_instructions=max_instructions)
        return app

    @staticmethod
    def bits16(x: Any) -> np.ndarray:
        """Bit patterns of FP16 data (compare these, never values)."""
        return np.asarray(x, dtype=np.float16).view(np.uint16)

    @staticmethod
    def bits32(x: Any) -> np.ndarray:
        return np.asarray(x, dtype=np.float32).view(np.uint32)

    def rand16(self, rng: np.random.Generator, shape: Any, scale: float = 1.0,
               specials: bool = False) -> np.ndarray:
        """Random FP16 values; with ``specials``, some NaN, ±inf, ±0, subnormals, ±max."""
        x = (rng.standard_normal(shape) * scale).astype(np.float16)
        if specials:
            flat = x.reshape(-1)
            sp = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 6e-8, -6e-8, 65504, -65504,
                           1e-5], dtype=np.float16)
            idx = rng.choice(flat.size, size=min(flat.size, sp.size), replace=False)
            flat[idx] = sp[: idx.size]
        return x


@pytest.fixture
def sim() -> Sim:
    return Sim()


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
