"""One directed ring link (card c -> card c+1) of the timing model (docs/timing.md, "Ring").

The link's cycle rules are the router's own, :mod:`dfx.rtl.router.timing` (one source for the
router tests and this model): a :class:`~dfx.rtl.router.timing.DataLane` turns each ``tx_in``
handshake of the sending router into the cycle the vector is valid on the receiving router's
``rx_out`` (its FIFO empty), a :class:`~dfx.rtl.router.timing.CreditLane` turns each ``rx_out``
pop of the receiving router into the cycle from which the sender's ``tx_in`` may use the freed
FIFO slot. Vectors are numbered in the order they are sent; vector ``s`` needs the credit of
pop ``s - fifo``.
"""

from __future__ import annotations

from typing import Any

from dfx.rtl.router.link import wire_cycles
from dfx.rtl.router.timing import CreditLane, DataLane

_TRIM = 8192


class Link:
    """The state of one link: the two lanes, sent/popped counts, per vector its ``rx_out``
    cycle (``arr``) and per pop its credit's ``tx_in`` cycle (``cred``)."""

    __slots__ = ("src", "dst", "fifo", "data", "credit", "sent", "popped", "arr", "arr_base",
                 "cred", "cred_base", "log")

    def __init__(self, core: Any, src: int, dst: int) -> None:
        self.src, self.dst = src, dst
        self.fifo = core.buffers.router_fifo_vectors
        wire = wire_cycles(core)  # the board's link: rtl/tb/link_model.py LinkModel.from_core
        self.data = DataLane(core, wire)
        self.credit = CreditLane(core, wire)
        self.sent = 0  # vectors taken by the sender's tx_in (their arrival is known)
        self.popped = 0  # vectors popped from the receiver's rx_out
        self.arr: list[int] = []  # rx_out valid (FIFO empty) of vector arr_base + i
        self.arr_base = 0
        self.cred: list[int] = []  # tx_in may use the credit of pop cred_base + i from here
        self.cred_base = 0
        self.log: dict[str, list[int]] | None = None  # tests: {"hs": [...], "pops": [...]}

    # send/recv (router.py) call these in order
    def send(self, h: int) -> None:
        """The sender's ``tx_in`` took the next vector in cycle ``h``."""
        self.arr.append(self.data.vector(h)[1])
        self.sent += 1
        if self.log is not None:
            self.log["hs"].append(h)

    def credit_ready(self, s: int) -> int | None:
        """The cycle from which ``tx_in`` may take vector ``s`` as far as credits go (None:
        the pop it needs is not known yet)."""
        k = s - self.fifo
        if k < 0:
            return -(1 << 62)
        i = k - self.cred_base
        return self.cred[i] if i < len(self.cred) else None

    def arrival(self, s: int) -> int | None:
        """Vector ``s`` valid on ``rx_out`` with the FIFO empty (None: not sent yet)."""
        i = s - self.arr_base
        return self.arr[i] if i < len(self.arr) else None

    def pop(self, p: int) -> None:
        """The receiver's ``rx_out`` handed over the next vector in cycle ``p``."""
        self.cred.append(self.credit.pop(p))
        self.popped += 1
        if self.log is not None:
            self.log["pops"].append(p)

    def maybe_trim(self) -> None:
        if len(self.cred) > _TRIM or len(self.arr) > _TRIM:
            self._trim()

    def _trim(self) -> None:
        keep = self.sent - self.fifo  # the sender still needs credits from here on
        drop = min(keep, self.popped) - self.cred_base
        if drop > 0:
            del self.cred[:drop]
            self.cred_base += drop
        drop = self.popped - self.arr_base
        if drop > 0:
            del self.arr[:drop]
            self.arr_base += drop

    # -- memoisation (sim/timing/appliance.py) -------------------------------------------------
    def key(self, src_now: int, dst_now: int, ref: int) -> tuple:
        """The link state relative to ``ref``, with times that can no longer matter clamped:
        the sender's next ``tx_in`` handshake and the receiver's next pop come at least two
        cycles after their card's issue cycle (``*_now``: an instruction issued then, taken
        the next cycle, reads or writes the cycle after), so arrivals before the receiver's
        now, credits before the sender's now and lane times before them behave alike."""
        self._trim()
        in_flight = tuple(max(self.arrival(s), dst_now) - ref  # type: ignore[type-var]
                          for s in range(self.popped, self.sent))
        lo = max(self.sent - self.fifo, 0)
        creds = tuple(max(self.credit_ready(s + self.fifo), src_now) - ref  # type: ignore[type-var]
                      for s in range(lo, self.popped))
        dl, cl = self.data, self.credit
        q = dl.q
        data = (max(dl.free, src_now * q) - ref * q, max(dl.last, src_now) - ref)
        # a credit beat taken at or before dst_now cannot carry a future pop: a new beat
        credit = ((cl.last - ref, cl.arrival - ref) if cl.last > dst_now else None,
                  max(cl.free, dst_now * q) - ref * q)
        return (self.sent - self.popped, self.popped - lo, in_flight, creds, data, credit)

    def shift(self, dt: int, vectors: int) -> None:
        """Advance the link by ``vectors`` sent-and-popped vectors and ``dt`` cycles."""
        self._trim()
        self.arr = [t + dt for t in self.arr]
        self.cred = [t + dt for t in self.cred]
        self.arr_base += vectors
        self.cred_base += vectors
        self.sent += vectors
        self.popped += vectors
        self.data.shift(dt)
        self.credit.shift(dt)
