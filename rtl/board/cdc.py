"""``LinkCdc``: the clock-domain crossing of one QSFP link between the kernel clock (``sync``,
``ap_clk``) and the link clock (docs/u280.md "Clocks"; AMD UG1393 2023.2 "Clock and Reset
Requirements": a kernel with two clocks does its own crossing).

Two :class:`amaranth.lib.fifo.AsyncFIFO`\\ s of :data:`DEPTH` beats, one per direction:

* ``tx`` (kernel side, from the router) -> ``link_tx`` (link side, to the Aurora kernel's
  ``tx_axis``): ``tx.ready`` is the FIFO's write readiness, ``link_tx`` waits for its TREADY;
* ``link_rx`` (link side, from the Aurora kernel's ``rx_axis``) -> ``rx`` (kernel side, to the
  router): ``link_rx.ready`` is the FIFO's write readiness (the reference design, AuroraFlow,
  has a TREADY on its receive stream and its own flow control behind it), ``rx.ready`` comes
  from the router, whose receive side never stalls.

Beats are carried whole, in order, never duplicated or dropped; a beat written in one domain
is readable in the other after the FIFO's synchroniser stages (:attr:`latency_bound`).
"""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import AsyncFIFO
from amaranth.lib.wiring import In, Out

__all__ = ["DEPTH", "LINK_DOMAIN", "SYNC_STAGES", "LinkCdc"]

#: The clock domain of the link side (``ap_clk_2`` at the kernel's boundary).
LINK_DOMAIN = "link"
#: Beats per direction: covers the write-to-read round trip of the gray-code pointers
#: (2 x (SYNC_STAGES + 1) cycles of the slower clock) at one beat per cycle, so a stream
#: crossing from a slower to an equally fast or faster clock never stalls on the FIFO.
DEPTH = 16
#: Synchroniser stages of the FIFO pointers (Amaranth's default).
SYNC_STAGES = 2


class LinkCdc(wiring.Component):
    """One link's crossing (module doc). ``width``: TDATA bits of the link stream (the
    router's link beat); ``depth``: beats per FIFO (a power of two >= 4); ``link_domain``:
    the link side's clock domain (the kernel side is ``sync``).

    Ports (``sync``): ``tx`` (In stream), ``rx`` (Out stream); (link domain): ``link_tx``
    (Out stream), ``link_rx`` (In stream).
    """

    def __init__(self, width: int, *, depth: int = DEPTH, link_domain: str = LINK_DOMAIN):
        if not isinstance(width, int) or isinstance(width, bool) or width < 1:
            raise ValueError(f"width must be a positive integer (TDATA bits), not {width!r}")
        if (not isinstance(depth, int) or isinstance(depth, bool) or depth < 4
                or depth & (depth - 1)):
            raise ValueError(f"depth must be a power of two >= 4 (beats), not {depth!r}")
        if not isinstance(link_domain, str) or not link_domain.isidentifier() \
                or link_domain == "sync":
            raise ValueError(f"link_domain must be a clock domain name other than 'sync', "
                             f"not {link_domain!r}")
        self._width, self._depth, self._domain = width, depth, link_domain
        beat = stream.Signature(width)
        super().__init__({
            "tx": In(beat), "rx": Out(beat),
            "link_tx": Out(beat), "link_rx": In(beat),
        })

    @property
    def width(self) -> int:
        return self._width

    @property
    def depth(self) -> int:
        return self._depth

    @property
    def link_domain(self) -> str:
        return self._domain

    @property
    def latency_bound(self) -> int:
        """Upper bound, in cycles of the slower clock, from a beat's write handshake to its
        ``valid`` on the other side: one cycle into the memory, ``SYNC_STAGES`` + 1 for the
        write pointer's synchroniser and gray-code register, one for the read register."""
        return SYNC_STAGES + 3

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        d = self._domain
        m.submodules.tx_fifo = txf = AsyncFIFO(width=self._width, depth=self._depth,
                                               r_domain=d, w_domain="sync")
        m.submodules.rx_fifo = rxf = AsyncFIFO(width=self._width, depth=self._depth,
                                               r_domain="sync", w_domain=d)
        m.d.comb += [
            txf.w_data.eq(self.tx.payload), txf.w_en.eq(self.tx.valid),
            self.tx.ready.eq(txf.w_rdy),
            self.link_tx.payload.eq(txf.r_data), self.link_tx.valid.eq(txf.r_rdy),
            txf.r_en.eq(self.link_tx.ready),
            rxf.w_data.eq(self.link_rx.payload), rxf.w_en.eq(self.link_rx.valid),
            self.link_rx.ready.eq(rxf.w_rdy),
            self.rx.payload.eq(rxf.r_data), self.rx.valid.eq(rxf.r_rdy),
            rxf.r_en.eq(self.rx.ready),
        ]
        return m
