"""One directed ring link (card c -> card c+1) of the timing model.

Vectors are numbered in the order they are sent. For vector ``s`` the link records when it
arrives in the receiver's FIFO (``arrival(s)``, set by the sender's ``send``) and when the
receiver pops it into its VRF (``pop(s)``, set by the receiver's ``recv``). Flow control is by
credits: vector ``s`` may start serialisation only once vector ``s - fifo`` has been popped and
that news has travelled back (``Params.credit_latency``). The serialiser is busy
``ser_num / ser_den`` cycles per vector; its free time is kept in units of ``1 / ser_den``
cycles so that back-to-back vectors are exact.
"""

from __future__ import annotations

_TRIM = 8192


class Link:
    """The state of one link: sent/popped counts, arrival and pop times, serialiser."""

    __slots__ = ("src", "dst", "sent", "popped", "arr", "arr_base", "pops", "pop_base",
                 "free_q", "fifo")

    def __init__(self, src: int, dst: int, fifo: int) -> None:
        self.src, self.dst, self.fifo = src, dst, fifo
        self.sent = 0  # vectors whose arrival time is known
        self.popped = 0  # vectors popped by the receiver
        self.arr: list[int] = []  # arrival time of vector arr_base + i
        self.arr_base = 0
        self.pops: list[int] = []  # pop time of vector pop_base + i
        self.pop_base = 0
        self.free_q = 0  # serialiser free, in 1/ser_den cycles

    # send/recv (router.py) append to ``arr``/``pops`` and advance ``sent``/``popped`` directly
    def arrival(self, s: int) -> int | None:
        i = s - self.arr_base
        return self.arr[i] if i < len(self.arr) else None

    def pop_time(self, s: int) -> int | None:
        """Pop time of vector ``s`` (None if not popped yet; vectors before 0 are free)."""
        if s < 0:
            return -(1 << 62)
        i = s - self.pop_base
        return self.pops[i] if i < len(self.pops) else None

    def maybe_trim(self) -> None:
        if len(self.pops) > _TRIM or len(self.arr) > _TRIM:
            self._trim()

    def _trim(self) -> None:
        keep = self.sent - self.fifo  # the sender still needs pops from here on
        drop = min(keep, self.popped) - self.pop_base
        if drop > 0:
            del self.pops[:drop]
            self.pop_base += drop
        drop = self.popped - self.arr_base
        if drop > 0:
            del self.arr[:drop]
            self.arr_base += drop

    # -- memoisation (sim/timing/appliance.py) -------------------------------------------------
    def key(self, src_now: int, dst_now: int, ref: int, q: int, credit: int) -> tuple:
        """The link state relative to ``ref``, with times that can no longer matter clamped
        (arrivals before the receiver's now, pops older than the sender can use)."""
        self._trim()
        in_flight = tuple(max(self.arrival(s), dst_now) - ref
                          for s in range(self.popped, self.sent))
        lo = max(self.sent - self.fifo, 0)
        floor = src_now - credit
        pops = tuple(max(self.pop_time(s), floor) - ref for s in range(lo, self.popped))
        return (self.sent - self.popped, self.popped - lo, in_flight, pops,
                max(self.free_q, src_now * q) - ref * q)

    def shift(self, dt: int, vectors: int, q: int) -> None:
        """Advance the link by ``vectors`` sent-and-popped vectors and ``dt`` cycles."""
        self._trim()
        self.arr = [t + dt for t in self.arr]
        self.pops = [t + dt for t in self.pops]
        self.arr_base += vectors
        self.pop_base += vectors
        self.sent += vectors
        self.popped += vectors
        self.free_q += dt * q
