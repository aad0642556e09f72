"""The ring router (DFX §1.3; docs/core.md "Router and ring"): :class:`Router` (one per card:
send queue and serialiser, receive FIFO, credits), the link's width and rate on the core clock
(:mod:`.link`) and :func:`connect_ring` (routers and link models in a ring)."""

from .link import LinkSignature
from .ring import connect_ring
from .router import Router

__all__ = ["LinkSignature", "Router", "connect_ring"]
