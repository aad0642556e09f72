"""``Router``: one card's ring router (DFX §1.3, the router issue 11; isa/spec.yaml ``send``,
``recv`` and the router rule; docs/core.md "Router and ring").

Core side: ``tx_in`` (vectors from ``DfxCore.tx``, the send mover) and ``rx_out`` (vectors to
``DfxCore.rx``, the recv mover). Link side, AXI4-Stream-shaped as the U280's QSFP28 link core
gives it, ``link_bits`` of TDATA on the core clock (:mod:`.link`), two full-duplex ports:

* ``next_tx`` (out: tdata, tvalid; in: tready): data beats to the next card;
* ``next_rx`` (in: tdata, tvalid): credit beats from the next card;
* ``prev_rx`` (in: tdata, tvalid): data beats from the previous card, never stalled;
* ``prev_tx`` (out: tdata, tvalid; in: tready): credit beats to the previous card.

Framing: a vector is ``beats`` = ceil(16·d / link_bits) beats, beat j = bits
[j·link_bits, (j+1)·link_bits) of the vector (lane 0 in the low bits, the last beat
zero-padded); no headers (the compiler orders the all-gather, send/recv are in order). A credit
beat's TDATA is the number of receive-FIFO slots freed since the last one (low
``bit_length(fifo)`` bits, the rest zero). A link direction carries only data or only credits.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from amaranth.hdl import Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .link import LinkSignature, beat_cycles, link_bits, vector_beats
from .rx import CREDIT_OUT_LATENCY, RouterRx
from .tx import CREDIT_IN_LATENCY, RouterTx

__all__ = ["Router"]


class Router(wiring.Component):
    """One card's router for core configuration ``core`` (``dfx.isa.config.load_core``):
    the receive FIFO of ``buffers.router_fifo_vectors`` vectors with credit-based flow
    control, ``timing.router_latency`` cycles of pipeline on each side (module doc)."""

    def __init__(self, core: Any):
        for attr in ("d", "buffers", "timing", "b"):
            if not hasattr(core, attr):
                raise TypeError(f"Router: core must be a CoreConfig (dfx.isa.config.load_core), "
                                f"got {type(core).__name__} without {attr!r}")
        self._core = core
        self._link_bits = link_bits(core)
        fifo, rl = core.buffers.router_fifo_vectors, core.timing.router_latency
        if fifo.bit_length() > self._link_bits:
            raise ValueError(f"Router: buffers.router_fifo_vectors = {fifo} does not fit a "
                             f"credit beat of {self._link_bits} bits")
        self._kw = {"d": core.d, "link_bits": self._link_bits, "fifo": fifo, "latency": rl}
        self._overflow = Signal()
        vec = data.ArrayLayout(16, core.d)
        lb = self._link_bits
        super().__init__({
            "tx_in": In(stream.Signature(vec)),
            "rx_out": Out(stream.Signature(vec)),
            "next_tx": Out(LinkSignature(lb, ready=True)),
            "next_rx": In(LinkSignature(lb, ready=False)),
            "prev_rx": In(LinkSignature(lb, ready=False)),
            "prev_tx": Out(LinkSignature(lb, ready=True)),
        })

    @classmethod
    def from_core(cls, core: Any) -> Router:
        return cls(core)

    # -- parameters and cycle figures (docs/core.md "Router and ring") -------------------------
    @property
    def core(self) -> Any:
        return self._core

    @property
    def link_bits(self) -> int:
        """TDATA bits of a link beat on the core clock."""
        return self._link_bits

    @property
    def beats(self) -> int:
        """Link beats per vector."""
        return vector_beats(self._core)

    @property
    def beat_cycles(self) -> Fraction:
        """Core cycles a beat occupies the link (the link model's rate)."""
        return beat_cycles(self._core)

    @property
    def vector_cycles(self) -> Fraction:
        """Core cycles a vector occupies the link: ``beats · beat_cycles``."""
        return self.beats * self.beat_cycles

    @property
    def fifo_vectors(self) -> int:
        return self._core.buffers.router_fifo_vectors

    @property
    def tx_latency(self) -> int:
        """``tx_in`` handshake in cycle h -> first beat's ``next_tx.tvalid`` in h + this
        (send queue empty)."""
        return self._core.timing.router_latency

    @property
    def rx_latency(self) -> int:
        """Last beat's ``prev_rx.tvalid`` in cycle a -> ``rx_out.valid`` in a + this (receive
        FIFO empty)."""
        return self._core.timing.router_latency

    @property
    def credit_out_latency(self) -> int:
        """``rx_out`` pop in cycle p -> a credit beat counting it valid on ``prev_tx`` in
        p + this (no credit beat waiting for TREADY)."""
        return CREDIT_OUT_LATENCY

    @property
    def credit_in_latency(self) -> int:
        """Credit beat valid on ``next_rx`` in cycle x -> ``tx_in.ready`` in x + this (when
        the router held no credit)."""
        return CREDIT_IN_LATENCY

    @property
    def overflow(self) -> Any:
        """Sticky flag (a signal, not a port): a vector reached a full receive FIFO."""
        return self._overflow

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        m.submodules.tx = tx = RouterTx(**self._kw)
        m.submodules.rx = rx = RouterRx(**self._kw)
        m.d.comb += self._overflow.eq(rx.overflow)
        wiring.connect(m, wiring.flipped(self.tx_in), tx.vec)
        wiring.connect(m, tx.link, wiring.flipped(self.next_tx))
        wiring.connect(m, wiring.flipped(self.next_rx), tx.credit)
        wiring.connect(m, wiring.flipped(self.prev_rx), rx.link)
        wiring.connect(m, rx.vec, wiring.flipped(self.rx_out))
        wiring.connect(m, rx.credit, wiring.flipped(self.prev_tx))
        return m
