"""``connect_ring``: routers and link models in a ring (docs/core.md "Router and ring").

Card c's ``next_tx`` feeds ``links[c][0]`` (data, c -> c + 1) into card c + 1's ``prev_rx``;
card c + 1's ``prev_tx`` feeds ``links[c][1]`` (credits, c + 1 -> c) into card c's
``next_rx``. A link is any component with ``i`` (in, with TREADY) and ``o`` (out, no TREADY)
of the router's :class:`~.link.LinkSignature`, e.g. :class:`dfx.rtl.tb.link_model.LinkModel`;
the board wrapper's Aurora cores instead on hardware.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from amaranth.hdl import Module
from amaranth.lib import wiring

__all__ = ["connect_ring"]


def connect_ring(m: Module, routers: Sequence[Any], links: Sequence[tuple[Any, Any]]) -> None:
    """Wire ``routers[c]`` to ``routers[(c + 1) % n]`` through ``links[c] = (data, credit)``
    (module doc). The components must already be submodules of ``m`` (or become so)."""
    n = len(routers)
    if n < 2:
        raise ValueError(f"connect_ring: a ring needs at least 2 routers, got {n}")
    if len(links) != n:
        raise ValueError(f"connect_ring: {n} routers need {n} (data, credit) link pairs, "
                         f"got {len(links)}")
    for c in range(n):
        nxt = routers[(c + 1) % n]
        data_link, credit_link = links[c]
        wiring.connect(m, routers[c].next_tx, data_link.i)
        wiring.connect(m, data_link.o, nxt.prev_rx)
        wiring.connect(m, nxt.prev_tx, credit_link.i)
        wiring.connect(m, credit_link.o, routers[c].next_rx)
