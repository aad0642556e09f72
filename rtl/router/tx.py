"""The router's transmit side (DFX §1.3; ``send`` in isa/spec.yaml): vectors from the core's
send mover out on the "next" port's transmit link, against credits that come back on the same
port's receive link (docs/core.md "Router and ring").

Cycle behaviour (``latency`` = ``timing.router_latency``): a vector taken on ``vec`` in cycle
h (only while a credit is held: ``vec.ready`` = credits > 0) goes through ``latency − 1``
registers into the send queue and offers its first beat on ``link.tvalid`` in h + ``latency``
at the earliest, then its ``beats`` beats back to back: beat j + 1 from the cycle after beat j
was taken; the next queued vector's first beat in the cycle after the last beat was taken. A
credit beat valid on ``credit`` in cycle x adds its count at the end of x (``vec.ready`` may
rise in x + 1). The queue holds ``fifo`` vectors: it never fills, since each vector in it holds
a credit.
"""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from .link import LinkSignature

__all__ = ["CREDIT_IN_LATENCY", "RouterTx"]

CREDIT_IN_LATENCY = 1
"""Cycles from a credit beat's ``tvalid`` to ``vec.ready`` (the credit count is a register)."""


def _check(name: str, v: Any, lo: int = 1) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or v < lo:
        raise ValueError(f"RouterTx: {name} must be an integer >= {lo}, got {v!r}")
    return v


class RouterTx(wiring.Component):
    """Transmit side. ``d`` FP16 lanes per vector, ``link_bits`` per beat, ``fifo`` credits
    (the receiver's FIFO depth in vectors), ``latency`` cycles from a ``vec`` handshake to the
    first beat. Ports: ``vec`` (in, vectors), ``link`` (out, data beats, with TREADY),
    ``credit`` (in, credit beats: TDATA's low bits are the count of freed FIFO slots)."""

    def __init__(self, *, d: int, link_bits: int, fifo: int, latency: int):
        self._d = _check("d", d)
        self._link_bits = _check("link_bits", link_bits)
        self._fifo = _check("fifo", fifo)
        self._latency = _check("latency", latency)
        if fifo.bit_length() > link_bits:
            raise ValueError(f"RouterTx: a credit beat of link_bits = {link_bits} bits cannot "
                             f"hold a count up to fifo = {fifo}")
        super().__init__({
            "vec": In(stream.Signature(data.ArrayLayout(16, d))),
            "link": Out(LinkSignature(link_bits, ready=True)),
            "credit": In(LinkSignature(link_bits, ready=False)),
        })

    @property
    def beats(self) -> int:
        """Link beats per vector (the last one zero-padded)."""
        return -(-16 * self._d // self._link_bits)

    @property
    def latency(self) -> int:
        """Cycles from a ``vec`` handshake to its first beat's ``tvalid`` (link idle)."""
        return self._latency

    @property
    def credit_latency(self) -> int:
        """Cycles from a credit beat's ``tvalid`` to ``vec.ready`` (when credits were 0)."""
        return CREDIT_IN_LATENCY

    @property
    def fifo(self) -> int:
        return self._fifo

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        vb, lb, n = 16 * self._d, self._link_bits, self.beats
        cw = self._fifo.bit_length()

        credits = Signal(range(self._fifo + 1), init=self._fifo)
        take = Signal()
        m.d.comb += [self.vec.ready.eq(credits != 0),
                     take.eq(self.vec.valid & self.vec.ready)]
        got = Signal(cw)
        with m.If(self.credit.tvalid):
            m.d.comb += got.eq(self.credit.tdata[:cw])
        m.d.sync += credits.eq(credits - take + got)

        # latency - 1 registers, then the send queue (readable the cycle after its write)
        valid, payload = take, self.vec.payload.as_value()
        for k in range(self._latency - 1):
            v, p = Signal(name=f"stage{k}_valid"), Signal(vb, name=f"stage{k}_data")
            m.d.sync += [v.eq(valid), p.eq(payload)]
            valid, payload = v, p
        m.submodules.queue = queue = SyncFIFO(width=vb, depth=self._fifo)
        m.d.comb += [queue.w_en.eq(valid), queue.w_data.eq(payload)]

        # serialiser: beat j of the queue's head is bits [j·lb, (j + 1)·lb) of the vector
        padded = Signal(n * lb)
        m.d.comb += padded.eq(queue.r_data)
        beat = Signal(range(n))
        accept = Signal()
        m.d.comb += [self.link.tvalid.eq(queue.r_rdy),
                     accept.eq(self.link.tvalid & self.link.tready)]
        if n == 1:
            m.d.comb += [self.link.tdata.eq(padded), queue.r_en.eq(accept)]
        else:
            with m.Switch(beat):
                for j in range(n):
                    with m.Case(j):
                        m.d.comb += self.link.tdata.eq(padded[j * lb:(j + 1) * lb])
            last = beat == n - 1
            m.d.comb += queue.r_en.eq(accept & last)
            with m.If(accept):
                m.d.sync += beat.eq(0)
                with m.If(~last):
                    m.d.sync += beat.eq(beat + 1)
        return m
