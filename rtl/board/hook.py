"""``RouterHook``: the place of the ring router in the board top until ``rtl/router``'s
``Router`` lands (issue 11). It has the router's shape as the board top uses it — the core
side ``tx_in`` / ``rx_out`` (d-lane FP16 vector streams) and, per ring direction, a link
transmit stream and a link receive stream (``next_tx``/``next_rx`` to and from the next card,
``prev_tx``/``prev_rx`` to and from the previous one) — and does nothing: the core's ``tx`` is
never taken (a ``send`` waits for ever), ``rx`` never valid, the links idle. One-card programs
never send (a ``send`` with ``cards`` = 1 faults), so the kernel is complete for them.
"""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Module
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["LINK_DIRECTIONS", "RouterHook", "link_bits"]

#: The ring directions of the router's link ports, in QSFP port order (QSFP0 = next card).
LINK_DIRECTIONS = ("next", "prev")


def link_bits(core: Any) -> int:
    """TDATA bits of a link beat: the router's (``dfx.rtl.router.link.link_bits``: the
    smallest multiple of ``qsfp.user_bits`` that carries the link's payload rate in one core
    cycle) when the router exists, else one vector (16·d bits) per beat."""
    try:
        from dfx.rtl.router.link import link_bits as router_link_bits
    except ImportError:
        return 16 * core.d
    return int(router_link_bits(core))


class RouterHook(wiring.Component):
    """The router's stand-in (module doc); ``RouterHook(core)``."""

    def __init__(self, core: Any):
        self._core = core
        vec = stream.Signature(data.ArrayLayout(16, core.d))
        beat = stream.Signature(link_bits(core))
        members: dict[str, Any] = {"tx_in": In(vec), "rx_out": Out(vec)}
        for d in LINK_DIRECTIONS:
            members[f"{d}_tx"] = Out(beat)
            members[f"{d}_rx"] = In(beat)
        super().__init__(members)

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        m.d.comb += self.tx_in.ready.eq(0)
        for d in LINK_DIRECTIONS:
            m.d.comb += getattr(self, f"{d}_rx").ready.eq(1)
        return m
