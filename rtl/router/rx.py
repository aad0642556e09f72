"""The router's receive side (DFX §1.3; ``recv`` in isa/spec.yaml): beats from the "prev"
port's receive link (valid-only, as Aurora's: never stalled) assembled into vectors, the
receive FIFO of ``buffers.router_fifo_vectors`` vectors, and credits back to the sender on
the same port's transmit link (docs/core.md "Router and ring").

Cycle behaviour (``latency`` = ``timing.router_latency``): the last beat of a vector valid on
``link`` in cycle a puts the vector through ``latency − 1`` registers into the FIFO; it is
valid on ``vec`` in a + ``latency``. A pop (``vec`` handshake) in cycle p is counted at the
end of p; the count of pops not yet returned is offered as one credit beat from p + 1 on
(TDATA = the count); pops while a credit beat waits for TREADY join the next one. The sender
never has more than ``fifo`` vectors unreturned, so the FIFO cannot overflow (``overflow``,
a sticky flag for testbenches, says otherwise).
"""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from .link import LinkSignature

__all__ = ["CREDIT_OUT_LATENCY", "RouterRx"]

CREDIT_OUT_LATENCY = 1
"""Cycles from a pop to its credit beat's ``tvalid`` (the owed count is a register)."""


def _check(name: str, v: Any, lo: int = 1) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or v < lo:
        raise ValueError(f"RouterRx: {name} must be an integer >= {lo}, got {v!r}")
    return v


class RouterRx(wiring.Component):
    """Receive side. ``d`` FP16 lanes per vector, ``link_bits`` per beat, ``fifo`` vectors,
    ``latency`` cycles from a vector's last beat to ``vec.valid``. Ports: ``link`` (in, data
    beats, no TREADY), ``vec`` (out, vectors), ``credit`` (out, credit beats, with TREADY)."""

    def __init__(self, *, d: int, link_bits: int, fifo: int, latency: int):
        self._d = _check("d", d)
        self._link_bits = _check("link_bits", link_bits)
        self._fifo = _check("fifo", fifo)
        self._latency = _check("latency", latency)
        if fifo.bit_length() > link_bits:
            raise ValueError(f"RouterRx: a credit beat of link_bits = {link_bits} bits cannot "
                             f"hold a count up to fifo = {fifo}")
        self.overflow = Signal()  # sticky: a vector arrived at a full FIFO (testbench check)
        super().__init__({
            "link": In(LinkSignature(link_bits, ready=False)),
            "vec": Out(stream.Signature(data.ArrayLayout(16, d))),
            "credit": Out(LinkSignature(link_bits, ready=True)),
        })

    @property
    def beats(self) -> int:
        return -(-16 * self._d // self._link_bits)

    @property
    def latency(self) -> int:
        """Cycles from a vector's last beat's ``tvalid`` to ``vec.valid`` (FIFO empty)."""
        return self._latency

    @property
    def credit_latency(self) -> int:
        """Cycles from a pop to the credit beat's ``tvalid`` (no credit beat waiting)."""
        return CREDIT_OUT_LATENCY

    @property
    def fifo(self) -> int:
        return self._fifo

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        vb, lb, n = 16 * self._d, self._link_bits, self.beats

        # deserialiser: beats 0 .. n-2 wait in registers; the last completes the vector
        valid, payload = Signal(), Signal(vb)
        if n == 1:
            m.d.comb += [valid.eq(self.link.tvalid), payload.eq(self.link.tdata)]
        else:
            parts = [Signal(lb, name=f"beat{j}") for j in range(n - 1)]
            beat = Signal(range(n))
            with m.If(self.link.tvalid):
                with m.Switch(beat):
                    for j in range(n - 1):
                        with m.Case(j):
                            m.d.sync += [parts[j].eq(self.link.tdata), beat.eq(j + 1)]
                    with m.Default():
                        m.d.sync += beat.eq(0)
                        m.d.comb += valid.eq(1)
            m.d.comb += payload.eq(Cat(*parts, self.link.tdata))

        for k in range(self._latency - 1):
            v, p = Signal(name=f"stage{k}_valid"), Signal(vb, name=f"stage{k}_data")
            m.d.sync += [v.eq(valid), p.eq(payload)]
            valid, payload = v, p
        m.submodules.fifo = fifo = SyncFIFO(width=vb, depth=self._fifo)
        m.d.comb += [fifo.w_en.eq(valid), fifo.w_data.eq(payload)]
        with m.If(valid & ~fifo.w_rdy):
            m.d.sync += self.overflow.eq(1)

        m.d.comb += [self.vec.valid.eq(fifo.r_rdy), self.vec.payload.eq(fifo.r_data),
                     fifo.r_en.eq(self.vec.ready)]

        # credits: pops not yet returned, offered as one beat
        pop = Signal()
        m.d.comb += pop.eq(self.vec.valid & self.vec.ready)
        owed = Signal(range(self._fifo + 1))
        sent = Signal()
        m.d.comb += [self.credit.tvalid.eq(owed != 0), self.credit.tdata.eq(owed),
                     sent.eq(self.credit.tvalid & self.credit.tready)]
        with m.If(sent):
            m.d.sync += owed.eq(pop)
        with m.Else():
            m.d.sync += owed.eq(owed + pop)
        return m
