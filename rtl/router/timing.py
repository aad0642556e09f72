"""The ring's cycle rules as the RTL implements them (docs/core.md "Router and ring"): one
source for the tests (tests/rtl/router) and the timing model (sim/timing/router.py).

Times are core cycles; a link lane's serialiser is kept in 1/q cycles (``beat_cycles`` =
num/q) so back-to-back beats are exact. No stalls (the link model's stall_prob = 0).

Each lane is a small state machine driven by one event at a time, in order (``vector`` per
``tx_in`` handshake, ``pop`` per ``rx_out`` pop). Its state is public (``free``, ``last``,
``arrival``) and :meth:`_Lane.shift` moves it in time, so a user that replays time (the
timing model's memo, sim/timing/ring.py) keeps one lane object per link direction.
"""

from __future__ import annotations

from typing import Any

from .link import beat_cycles, vector_beats
from .rx import CREDIT_OUT_LATENCY
from .tx import CREDIT_IN_LATENCY

__all__ = ["NEVER", "CreditLane", "DataLane"]

NEVER = -(1 << 62)
"""The time of an event that has not happened (before every cycle)."""


class _Lane:
    def __init__(self, core: Any, latency: int):
        r = beat_cycles(core)
        self.num, self.q = r.numerator, r.denominator
        self.latency = latency  # the link model's: delivered in ceil(E) + latency - 1
        self.free = 0  # the lane is busy until this time (1/q cycles)

    def shift(self, dt: int) -> None:
        """Move the lane's state ``dt`` cycles later (events that never happened stay so)."""
        self.free += dt * self.q

    def _beat(self, c: int) -> tuple[int, int]:
        """A beat offered from cycle c: (cycle it is taken, cycle it is delivered)."""
        c = max(c, self.free // self.q)
        self.free = max(self.free, c * self.q) + self.num
        return c, -(-self.free // self.q) + self.latency - 1


class DataLane(_Lane):
    """Vectors of one router's transmit side over a link of ``latency`` to the next card."""

    def __init__(self, core: Any, latency: int):
        super().__init__(core, latency)
        self.beats = vector_beats(core)
        self.tx_latency = self.rx_latency = core.timing.router_latency
        self.last = NEVER  # cycle the previous vector's last beat was taken

    def shift(self, dt: int) -> None:
        super().shift(dt)
        if self.last > NEVER:
            self.last += dt

    def vector(self, h: int) -> tuple[int, int]:
        """The vector taken on ``tx_in`` in cycle h: (cycle its first beat is offered, cycle it
        is valid on the receiver's ``rx_out`` with its FIFO empty)."""
        c0 = max(h + self.tx_latency, self.last + 1)
        c = c0
        for _ in range(self.beats):
            c, deliv = self._beat(c)
            self.last = c
            c += 1
        return c0, deliv + self.rx_latency


class CreditLane(_Lane):
    """Credits of one receive FIFO back over a link of ``latency``."""

    def __init__(self, core: Any, latency: int):
        super().__init__(core, latency)
        self.last = NEVER  # cycle the last credit beat was taken
        self.arrival = NEVER  # and when it reached the sender

    def shift(self, dt: int) -> None:
        super().shift(dt)
        if self.last > NEVER:
            self.last += dt
            self.arrival += dt

    def pop(self, p: int) -> int:
        """The receiver popped a vector in cycle p (pops in order): the cycle from which the
        sender's ``tx_in`` may take a vector with that credit."""
        if self.last < p + CREDIT_OUT_LATENCY:  # else it went with the last credit beat
            self.last, self.arrival = self._beat(p + CREDIT_OUT_LATENCY)
        return self.arrival + CREDIT_IN_LATENCY
