"""The ring bench (``dfx regress --bench ring``; issue 11): all-gathers on N RTL cards in one
ring model (:func:`~.core_build.ring_model`), each checked bit for bit against the functional
simulator and against the data it gathers.

Every program is the compiler's own ring all-gather
(:func:`dfx.compiler.lower.allgather_schedule`: slices cut into chunks of at most a receive
FIFO, send and receive alternating; deadlock-free for any slice lengths): card c loads its
slice from HBM into the VRF, the cards all-gather, each stores the whole buffer to DDR. The
slice lengths cover even slices, slices longer than the FIFO (chunked), uneven slices (the
7/6/6/6 head split of a 25-head model) and empty slices. Each program runs on the board's
links and on the router bench's stressed links (latencies 1..64, TREADY stalls on a quarter of
the cycles): a vector lost, duplicated or reordered anywhere changes the DDR.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dfx.isa.config import CoreConfig

from .link_model import BENCH_LATENCIES, BENCH_STALL

__all__ = ["RING_CARDS", "RingCase", "RingVerdict", "ring_cases", "run_ring_case"]

#: Cards in the ring bench's ring.
RING_CARDS = 4


@dataclass
class RingCase:
    """One all-gather: ``slices[c]`` vectors owned by card c."""

    name: str
    slices: tuple[int, ...]

    def programs(self, core: CoreConfig) -> list[str]:
        """Each card's assembly (module doc)."""
        from dfx.compiler.lower import allgather_schedule

        d, fifo = core.d, core.buffers.router_fifo_vectors
        starts = np.cumsum((0, *self.slices))
        spans = [(int(starts[c]), n) for c, n in enumerate(self.slices)]
        total = int(starts[-1])
        out = []
        for c, (first, n) in enumerate(spans):
            lines = [f"load dst=vrf[r0+{first}], src=hbm[r0+0], n={n * d}"] if n else []
            lines += [f"{op} v=v[r0+{v}], n={k}" for op, v, k in
                      allgather_schedule(spans, c, fifo)]
            lines += [f"store dst=ddr[r0+0], src=vrf[r0+0], n={total * d}", "halt"]
            out.append("\n".join(lines))
        return out

    def data(self, core: CoreConfig, seed: int) -> list[np.ndarray]:
        """Each card's slice (FP16 bit patterns, uint16 [n, d]), distinct on every card."""
        rng = np.random.default_rng(seed)
        return [rng.integers(0, 1 << 16, (n, core.d), dtype=np.uint16) for n in self.slices]

    def binary(self, core: CoreConfig, seed: int) -> Any:
        from dfx.isa.asm import assemble
        from dfx.isa.container import Binary, CardImage, Segment
        from dfx.isa.encoding import encode_program

        cards = []
        for prog, sl in zip(self.programs(core), self.data(core, seed), strict=True):
            segs = [Segment("hbm", 0, sl.reshape(-1))] if sl.size else []
            cards.append(CardImage(program=encode_program(assemble(prog)), segments=segs,
                                   debug=[(0, f"ring bench / {self.name}")]))
        return Binary(core, {"name": f"ring-{self.name}"}, cards)


def ring_cases(core: CoreConfig, cards: int = RING_CARDS) -> list[RingCase]:
    """The bench's all-gathers on ``cards`` cards (module doc)."""
    fifo = core.buffers.router_fifo_vectors
    uneven = tuple(6 + (c == 0) for c in range(cards))
    empty = tuple((2, 0, 5, 1) * cards)[:cards]
    return [
        RingCase("even", (3,) * cards),
        RingCase("chunked", (fifo + 4,) * cards),
        RingCase("uneven", uneven),
        RingCase("empty-slices", empty),
        RingCase("long", (5 * fifo + 3,) * cards),
    ]


@dataclass
class RingVerdict:
    """One run of a case: the same DDR as the functional simulator and the gathered data on
    every card; ``cycles`` per card (the core's register), the timing model's
    ``model_cycles`` (the board's links), wall time, link setting."""

    name: str
    passed: bool
    cycles: list[int] = field(default_factory=list)
    model_cycles: list[int] = field(default_factory=list)
    sim_cycles: int = 0
    wall_s: float = 0.0
    message: str = ""


def run_ring_case(case: RingCase, core: CoreConfig, *, stressed: bool, seed: int = 0,
                  workdir: Path | None = None) -> RingVerdict:
    """Run ``case`` on the ring model (built once per RTL change) and the functional
    simulator and compare every card's DDR bit for bit. Never raises for a mismatch or an RTL
    error (the verdict says it)."""
    from dfx.host.rtl_backend import run_program
    from dfx.isa.errors import DfxError
    from dfx.sim.functional import Appliance

    name = f"{case.name}-{'stressed' if stressed else 'board'}-links"
    b = case.binary(core, seed)
    nbytes = sum(case.slices) * core.d * 2
    want = np.concatenate(case.data(core, seed)).reshape(-1)
    app = Appliance(b)
    app.run()
    ref = [np.frombuffer(app.read(c, "ddr", 0, nbytes), np.uint16) for c in range(len(b.cards))]
    t0 = time.perf_counter()
    links = {"latencies": BENCH_LATENCIES[:2 * len(b.cards)], "stall_prob": BENCH_STALL} \
        if stressed else None
    try:
        run = run_program(b, reads=[("ddr", 0, nbytes)], links=links,
                          workdir=str(workdir) if workdir else None)
    except (DfxError, RuntimeError, ValueError) as e:
        return RingVerdict(name, False, wall_s=time.perf_counter() - t0,
                           message=" ".join(str(e).split())[:400])
    bad = []
    for c, res in enumerate(run.results):
        got = np.frombuffer(res.reads["ddr:0"], np.uint16)
        if not np.array_equal(ref[c], want):
            bad.append(f"card {c}: the functional simulator did not gather the slices")
        if not np.array_equal(got, ref[c]):
            k = int(np.flatnonzero(got != ref[c])[0])
            bad.append(f"card {c}: DDR differs from the functional simulator first at vector "
                       f"{k // core.d} (element {k % core.d})")
    return RingVerdict(name, not bad, list(run.cycles), list(run.model_cycles or []),
                       run.sim_cycles, time.perf_counter() - t0, "; ".join(bad))
