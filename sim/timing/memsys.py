"""The memory system of one card as the RTL builds it (``rtl/dma``; docs/core.md "Memory
system"; docs/timing.md "Memory system"): spaces served in claim order, one op per cycle,
an AXI port per HBM pseudo-channel and one for DDR with the testbench memory's channel timing
(``rtl/tb/axi_mem.py``), the on-chip weight buffer.

Times are core cycles. An **op** is a client's request for rows ``row .. row + nrows - 1`` of
one space with beat masks (:mod:`dfx.rtl.dma.geometry`). A space accepts at most one op per
cycle, the ops of one claim (command) in order and the claims in claim order: the next
claimant's first op the cycle after the previous claim's last op. Per AXI port (:class:`Chan`;
``rtl/dma/channel.py`` + ``rtl/tb/axi_mem.py``):

* the port's op queue (``op_depth``) takes an op in the cycle after its acceptance and
  dequeues one per cycle, in order (an op that moves nothing on this port is skipped in one
  cycle); a read is dequeued once every earlier write burst has its B response, a write once
  every earlier read burst has all its beats;
* the address handshake is the cycle after the dequeue; a read's first beat is at
  ``max(AR + latency, channel free)``, a write's first beat at ``max(W valid, AW + 1, channel
  free)`` (+ ``turnaround`` after the other direction); beat ``k`` of a burst ``ceil(k ·
  beat_cost / rate)`` after the first, the channel free ``ceil(beats · beat_cost / rate)``
  after the first (:class:`dfx.rtl.tb.mem_model.ChannelTiming`); a write's B response when the
  channel is free;
* a space accepts an op only while every port's op queue has room: a port held back (a read
  after a write) holds the whole space.

Skipped ops are evaluated lazily: a port's dequeue of op ``j`` is ``max(accept + 1, backlog +
j)``, ``backlog`` being the largest ``dequeue - op index`` of its ops so far. The HBM ports
are kept as one shared state (:attr:`Space.uni`) plus the ports that differ from it
(:attr:`Space.exc`), so that an op on every port (a weight tile) costs O(1).
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

from .stats import NEG

if TYPE_CHECKING:
    from .params import Params

__all__ = ["Chan", "Space"]


class Chan:
    """One AXI port and its memory channel (module doc)."""

    __slots__ = ("bl", "rd_recv", "wr_b", "free", "wdir")

    def __init__(self) -> None:
        self.bl = NEG  # backlog: the largest (dequeue cycle - op index) of this port's ops
        self.rd_recv = NEG  # last R beat received of every read dequeued so far
        self.wr_b = NEG  # B response of the last write dequeued so far
        self.free = NEG  # the memory channel takes its next transfer from this cycle
        self.wdir = False  # the last transfer was a write

    def copy(self) -> Chan:
        c = Chan()
        c.bl, c.rd_recv, c.wr_b, c.free, c.wdir = (self.bl, self.rd_recv, self.wr_b,
                                                   self.free, self.wdir)
        return c

    def same(self, o: Chan) -> bool:
        return (self.bl == o.bl and self.rd_recv == o.rd_recv and self.wr_b == o.wr_b
                and self.free == o.free and self.wdir == o.wdir)

    def state(self, f: Any, j: int, turn: int) -> tuple:
        # a write's free time still matters ``turn`` cycles later to a read (turnaround)
        return (f(self.bl + j), f(self.rd_recv), f(self.wr_b), f(self.free + turn) - turn,
                self.wdir)

    def shift(self, sh: Any) -> None:
        self.bl, self.rd_recv, self.wr_b, self.free = (sh(self.bl), sh(self.rd_recv),
                                                       sh(self.wr_b), sh(self.free))


def _last_free(d0: int, beats: int, cost: int, rate: int) -> tuple[int, int]:
    """(cycle of the last beat, cycle the channel is free) of ``beats`` beats from ``d0``."""
    return d0 + -(-(beats - 1) * cost // rate), d0 + -(-beats * cost // rate)


class Space:
    """One memory space (HBM: ``n`` ports; DDR: one port; the weight buffer: ``n`` = 0, an
    on-chip memory) with its claim order and op acceptance (module doc)."""

    def __init__(self, p: Params, kind: str) -> None:
        self.p, self.kind = p, kind
        m = p.mem
        self.n = m.ports if kind == "hbm" else (1 if kind == "ddr" else 0)
        ch = p.hbm if kind == "hbm" else p.ddr
        self.lat = ch.latency
        self.turn = ch.turnaround
        self.cost = m.beat_bytes * ch.rate_den  # token-bucket units of one beat
        self.rate = ch.rate_num
        self.op_depth = m.op_depth
        self.reset()

    def reset(self) -> None:
        self.uni = Chan()  # every port not in exc
        self.exc: dict[int, Chan] = {}
        self.j = 0  # ops accepted so far
        self.acc = NEG  # cycle of the last op accepted
        self.after = NEG  # the current claim's ops start no earlier (previous claim's end + 1)
        self.bl = NEG  # max backlog over the ports
        self.deq: deque[int] = deque([NEG] * self.op_depth, maxlen=self.op_depth)
        self.claims: deque[int] = deque()  # last-op cycles of the claims in the order queue
        self.row_out = NEG  # last row presented to a client (read data, in op order)
        self.row_taken = NEG  # ... and taken
        self.wfire: deque[int] = deque([NEG] * 4, maxlen=4)  # write ops' last rows distributed
        self.wrow = NEG  # last write row distributed
        self.busy = NEG  # weight buffer: last row read or written

    def chan(self, c: int) -> Chan:
        x = self.exc.get(c)
        if x is None:
            x = self.exc[c] = self.uni.copy()
        return x

    def settle(self) -> None:
        """Forget ports whose state equals the shared one."""
        u = self.uni
        for c in [c for c, x in self.exc.items() if x.same(u)]:
            del self.exc[c]

    # -- claims ----------------------------------------------------------------------------
    def claim_ready(self, t: int) -> int:
        """The earliest cycle >= t at which the order queue has room for a claim."""
        c = self.claims
        while c and c[0] < t:
            c.popleft()
        depth = self.p.mem.order_depth
        if len(c) < depth:
            return t
        return c[len(c) - depth] + 1

    def begin(self, floor: int) -> None:
        """A claim's ops follow: they start after the previous claim's last op. No op of it
        or of a later claim is accepted before ``floor``: port times before it are dropped
        (they cannot matter), so ports that differ only in the past merge."""
        self.after = self.acc + 1
        if self.exc:
            j = self.j
            for c in [self.uni, *self.exc.values()]:
                if c.bl + j <= floor:
                    c.bl = NEG
                if c.rd_recv < floor:
                    c.rd_recv = NEG
                if c.wr_b < floor:
                    c.wr_b = NEG
                if c.free + self.turn < floor:
                    c.free, c.wdir = NEG, False
            self.settle()

    def end(self) -> None:
        """The current claim's last op has been accepted (the order queue pops it)."""
        self.claims.append(self.acc)

    # -- op acceptance and the ports' queues -------------------------------------------------
    def accept(self, tv: int) -> int:
        """Accept the next op, presented from cycle ``tv``: after the previous op, the claim
        order and room in every port's op queue."""
        a = tv
        if self.acc + 1 > a:
            a = self.acc + 1
        if self.after > a:
            a = self.after
        x = self.deq[0] + 1  # the op `op_depth` places back has left every port's queue
        if x > a:
            a = x
        self.acc = a
        return a

    def done(self, a: int) -> None:
        """The op accepted at ``a`` has been given to its ports (the others skip it)."""
        x = a + 1
        y = self.bl + self.j
        self.deq.append(y if y > x else x)
        self.j += 1

    def _deq(self, c: Chan, a: int, gate: int) -> int:
        x = a + 1
        y = c.bl + self.j
        if y > x:
            x = y
        if gate > x:
            x = gate
        b = x - self.j
        if b > c.bl:
            c.bl = b
            if b > self.bl:
                self.bl = b
        return x

    def read(self, c: Chan, a: int, beats: int) -> tuple[int, int]:
        """A read burst of ``beats`` on port ``c`` for the op accepted at ``a``: (first beat,
        last beat) R handshakes."""
        ar = self._deq(c, a, c.wr_b + 1) + 1
        d0 = ar + self.lat
        f = c.free + self.turn if c.wdir else c.free
        if f > d0:
            d0 = f
        last, free = _last_free(d0, beats, self.cost, self.rate)
        c.free, c.wdir = free, False
        if last > c.rd_recv:
            c.rd_recv = last
        return d0, last

    def write(self, c: Chan, a: int, beats: int, wvalid: int) -> int:
        """A write burst of ``beats`` on port ``c`` for the op accepted at ``a``, its data in
        the port's W queue from cycle ``wvalid``: its B response (the channel free again)."""
        w0 = self._deq(c, a, c.rd_recv + 1) + 2  # AW after the dequeue, W no earlier than AW+1
        if wvalid > w0:
            w0 = wvalid
        f = c.free if c.wdir else c.free + self.turn
        if f > w0:
            w0 = f
        _, free = _last_free(w0, beats, self.cost, self.rate)
        c.free, c.wdir, c.wr_b = free, True, free
        return free

    def beat(self, d0: int, i: int) -> int:
        """Cycle of beat ``i`` of a burst whose first beat moved in ``d0``."""
        return d0 + -(-i * self.cost // self.rate)

    # -- memo -----------------------------------------------------------------------------------
    def key(self, f: Any) -> tuple:
        j = self.j
        return (f(self.acc), f(self.after), f(self.bl + j), tuple(f(x) for x in self.deq),
                tuple(f(x) for x in self.claims), f(self.row_out), f(self.row_taken),
                tuple(f(x) for x in self.wfire), f(self.wrow), f(self.busy),
                self._ports_key(f))

    def _ports_key(self, f: Any) -> tuple:
        """The ports' states, clamped by ``f``: the shared one and the ports that still
        differ from it."""
        j, turn = self.j, self.turn
        u = self.uni.state(f, j, turn)
        exc = []
        for c, x in self.exc.items():
            st = x.state(f, j, turn)
            if st != u:
                exc.append((c, st))
        exc.sort()
        return u, tuple(exc)

    def shift(self, sh: Any) -> None:
        self.acc, self.after = sh(self.acc), sh(self.after)
        self.bl = sh(self.bl)
        self.deq = deque((sh(x) for x in self.deq), maxlen=self.op_depth)
        self.claims = deque(sh(x) for x in self.claims)
        self.row_out, self.row_taken = sh(self.row_out), sh(self.row_taken)
        self.wfire = deque((sh(x) for x in self.wfire), maxlen=4)
        self.wrow, self.busy = sh(self.wrow), sh(self.busy)
        self.uni.shift(sh)
        for c in self.exc.values():
            c.shift(sh)
