"""One DFX core of the timing model: the parts of the card tied together.

Every instruction is handled once, when it issues: the handler computes, from the state left
by the instructions before it, the cycle it issues, when each of its units streams, when each
result vector becomes available and how long it holds each memory channel. Only integer and
control instructions are executed functionally; FP data is never computed. docs/timing.md is
the specification of every rule.

The card is split along the hardware (``rtl/``), one mixin per block, each owning its state,
its part of the memo key and of the time shift:

* :mod:`.controller` — control flow, loops, integer registers, ``lw``/``sw`` (``rtl/controller``)
* :mod:`.issue` — in-order issue, unit queues, the register and VRF scoreboard (``rtl/issue``)
* :mod:`.mpu`, :mod:`.lutgemm`, :mod:`.vpu` — the datapath units (``rtl/mpu``, ``rtl/lutgemm``,
  ``rtl/vpu``), every latency read from the RTL units by :func:`~.params.derive`
* :mod:`.dma` — memory ports, weight-buffer scoreboard, DMA engine (``rtl/dma``)
* :mod:`.router` — ``send``/``recv`` on the ring links of :mod:`.ring`
* :mod:`.stats` — the statistics layout and the occupancy accounting
"""

from __future__ import annotations

from collections.abc import Callable

from dfx.isa.encoding import Instruction

from .controller import Controller, Meta
from .dma import Dma
from .errors import TimingError
from .issue import Issue
from .lutgemm import LutUnit
from .mpu import MpuUnit
from .params import Params
from .ring import Link
from .router import Router
from .stats import (  # noqa: F401 - re-exported: report.py, appliance.py and the tests use them
    BLOCKED,
    BYTE_NAMES,
    CATEGORIES,
    CLASSES,
    HALTED,
    HEAD,
    LUT_NAMES,
    N_STATS,
    NEG,
    OCCUPANCY,
    RUN,
    S_BUSY,
    S_BYTES,
    S_CRIT,
    S_INSTR,
    S_LUT,
    S_MACS,
    S_OCC,
    S_RECV,
    S_SENT,
    S_TILES,
    S_WSTALL,
    U_DMA,
    U_LUT,
    U_MPU,
    U_RX,
    U_TX,
    U_VPU,
    UNITS,
    Accounting,
)
from .vpu import VpuUnit

__all__ = ["CardSim", "Meta"]


class CardSim(Controller, Issue, MpuUnit, LutUnit, VpuUnit, Dma, Router, Accounting):
    """The timing state of one card and the handlers of every instruction."""

    def __init__(self, index: int, p: Params, program: list[Instruction], *,
                 annotation: Callable[[int], str | None], tx: Link | None, rx: Link | None,
                 words: dict[tuple[str, int], int], n_cards: int) -> None:
        self.index, self.p, self.n_cards = index, p, n_cards
        self.annotation = annotation
        self.tx, self.rx = tx, rx
        self.words = words
        self.n_prog = len(program)
        handlers: dict[str, str] = {}
        for part in type(self).__mro__:
            handlers.update(part.__dict__.get("OPS", {}))
        self.meta = []
        for ins in program:
            cls = CLASSES.index(ins.spec.cls)
            name = handlers.get(ins.op)
            if name is None:
                name = "_op_scalar" if ins.spec.cls == "scalar" else "_op_int"
            self.meta.append(Meta(ins, getattr(self, name), cls))
        self._init_controller()
        self._init_mpu()
        self._init_lut()
        self._init_vpu()
        self._init_dma()
        self.trace: list[tuple] | None = None
        self.reset()

    def reset(self) -> None:
        self._reset_controller()
        self._reset_issue()
        self._reset_mpu()
        self._reset_lut()
        self._reset_vpu()
        self._reset_dma()
        self._reset_router()
        self._reset_accounting()
        self._start_issue()
        self.pending: Callable[[], int] | None = None
        self.blocked: str | None = None
        self.head: tuple[int, int] | None = None  # (loop pc, iteration) of the last back-edge
        self.head_wait = False  # stopped at that head by the memoising scheduler

    def where(self) -> str:
        pc = self.pc
        text = f"card {self.index}, pc {pc}"
        ann = self.annotation(pc) if 0 <= pc < self.n_prog else None
        if ann:
            text += f" ({ann})"
        if 0 <= pc < self.n_prog:
            text += f": {self.meta[pc].ins}"
        return text

    def error(self, msg: str) -> TimingError:
        return TimingError(f"{self.where()}: {msg}")

    def step(self) -> int:
        """Handle the next instruction (or resume a blocked send/recv)."""
        if self.pending is not None:
            return self.pending()
        pc = self.pc
        if not 0 <= pc < self.n_prog:
            raise TimingError(f"card {self.index}: pc {pc} is outside the program "
                              f"({self.n_prog} instructions): missing halt?")
        m = self.meta[pc]
        self.npc = pc + 1
        st = m.run(m.ins, m)
        if st == RUN or st == HEAD:
            self.pc = self.npc
        return st

    # -- memoisation support (sim/timing/memo.py) ---------------------------------------------
    def key(self, ref: int) -> tuple:
        """Everything that decides this card's future timing except the integer register
        values, relative to cycle ``ref``. Times that can no longer influence anything (they
        are at or before the earliest cycle they are compared against) are clamped to that
        cycle, so two states that behave the same compare equal (docs/timing.md, "Memo")."""
        now = self.now

        def f(t: int, floor: int = now) -> int:
            return (t if t > floor else floor) - ref

        return (self._key_controller(), self._key_issue(f, ref), self._key_vpu(f, now),
                self._key_mpu(f, now), self._key_lut(f, now), self._key_dma(f),
                self._key_router(f),
                self._key_accounting(f, ref, now))

    def counters(self) -> tuple[list[int], dict[str, dict[tuple, list[int]]]]:
        """A copy of the additive statistics (memoisation records)."""
        return list(self.stats), {k: {c: list(u) for c, u in port.use.items()}
                                  for k, port in self.ports.items()}

    def add_counters(self, m: int, before: tuple, after: tuple) -> None:
        """Add ``m`` times the statistics accumulated between two records."""
        self.stats = [s + m * (b - a) for s, a, b in zip(self.stats, before[0], after[0],
                                                         strict=True)]
        for k, port in self.ports.items():
            b0, b1 = before[1][k], after[1][k]
            for c, u1 in b1.items():
                u0 = b0.get(c, [0, 0])
                u = port.use.setdefault(c, [0, 0])
                u[0] += m * (u1[0] - u0[0])
                u[1] += m * (u1[1] - u0[1])

    def shift(self, dt: int) -> None:
        """Move every time of the state ``dt`` cycles later (a replayed stretch of iterations)."""
        def sh(t: int) -> int:
            return t + dt if t > NEG else t

        self._shift_issue(dt, sh)
        self._shift_mpu(sh)
        self._shift_lut(sh)
        self._shift_vpu(sh)
        self._shift_dma(sh)
        self._shift_router(sh)
        self._shift_accounting(dt)
