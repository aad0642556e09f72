"""The router of one card: ``send`` (transmit side) and ``recv`` (receive side) on the QSFP
ring (docs/timing.md, "Ring").

The core's side is its two vector movers (``rtl/core/mover.py`` ``VectorMover``):
``send`` reads its vectors from the VRF with chaining, one per cycle, at most
``store_slots`` ahead of the ``tx`` stream's handshakes, and offers each the cycle after its
read; ``recv`` writes each vector the cycle its ``rx`` handshake happens. Between the core and
the router there may be register FIFOs (``Params.stream_fifos``: none on the board, the
Verilator card's ``Fifo2`` each way); the router's ``tx_in`` takes a vector while it holds a
credit. The links themselves (:class:`~.ring.Link`) follow ``rtl/router/timing.py``. A side
that needs a link time not yet produced by another card returns ``BLOCKED`` and resumes later
(``pending``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dfx.isa.encoding import Instruction

from .errors import TimingError
from .stats import BLOCKED, NEG, RING, RUN, S_BUSY, S_INSTR, S_RECV, S_SENT, U_RX, U_TX

if TYPE_CHECKING:
    from .controller import Meta
    from .params import Params
    from .ring import Link


class Router:
    """Mixin of :class:`~.card.CardSim`: ``send`` and ``recv``."""

    OPS = {"send": "_op_send", "recv": "_op_recv"}

    p: Params
    tx: Link | None
    rx: Link | None
    n_cards: int
    stats: list[int]

    def _reset_router(self) -> None:
        p = self.p
        self.tx_free = NEG  # the transmit mover takes its next command from this cycle
        self.rx_free = NEG  # the receive mover takes its next command from this cycle
        # per stage of each direction, the handshakes of the last ``depth`` vectors (oldest
        # first). tx: stage 0 the core's tx stream, stage k the k-th FIFO's output (the last
        # stage is the router's tx_in); rx: stage 0 the router's rx_out, stage k the k-th
        # FIFO's output (the last stage is the core's rx stream: the VRF write)
        depth = max(p.store_slots, *p.stream_fifos, 1)
        stages = len(p.stream_fifos) + 1
        self.tx_hs = [[NEG] * depth for _ in range(stages)]
        self.rx_hs = [[NEG] * depth for _ in range(stages)]
        # tests: {"offer": each sent vector's first cycle on the core's tx stream,
        # "rx_ready": (first, last) cycle of each recv's rx.ready window}
        self.ring_log: dict[str, list[Any]] | None = None

    def _key_router(self, f: Any) -> tuple:
        return (f(self.tx_free), f(self.rx_free), tuple(tuple(f(t) for t in h) for h in self.tx_hs),
                tuple(tuple(f(t) for t in h) for h in self.rx_hs))

    def _shift_router(self, sh: Any) -> None:
        self.tx_free, self.rx_free = sh(self.tx_free), sh(self.rx_free)
        self.tx_hs = [[sh(t) for t in h] for h in self.tx_hs]
        self.rx_hs = [[sh(t) for t in h] for h in self.rx_hs]

    def _no_ring(self, ins: Instruction) -> TimingError:
        return self.error(f"{ins.op} needs the ring, but this appliance has only "
                          f"{self.n_cards} card")

    def _op_send(self, ins: Instruction, m: Meta) -> int:
        if self.tx is None:
            raise self._no_ring(ins)
        n = self._count(ins.n, "n")
        v = self._va(ins.v)
        t, c = self._pre(m)
        if n == 0:
            self._issue(t, c)
            self.stats[S_INSTR + m.cls] += 1
            return RUN
        av = self._src(v, n)
        t = self._sb(t, False, True)
        tu, cu = self._unit(U_TX, RING)
        if tu > t:
            t, c = tu, cu
        issue = self._issue(t, c)
        self.stats[S_INSTR + m.cls] += 1
        start = max(issue + 1, self.tx_free)  # the mover takes it, reads from the next cycle
        self._took(U_TX, start)
        st = {"i": 0, "read": start}  # progress kept while blocked on credits
        self.pending = lambda: self._send_run(ins, m, v, n, av, start, st)
        return self.pending()

    def _send_run(self, ins: Instruction, m: Meta, v: int, n: int, av: list[int] | None,
                  start: int, st: dict[str, Any]) -> int:
        """Vector i: read r = max(previous read + 1, available, the handshake ``store_slots``
        vectors back on the core's tx stream + 1); then at each stage k the handshake
        x_k = max(x_(k-1) + 1 (r + 1 at stage 0), this stage's previous + 1, room in the
        next FIFO: its handshake ``depth`` vectors back + 1, or, at the router's tx_in, the
        credit of pop i - fifo); the router's tx_in handshake goes onto the link."""
        lk = self.tx
        assert lk is not None
        deps = (self.p.store_slots, *self.p.stream_fifos)
        last = len(deps) - 1
        hs = self.tx_hs
        i, read = st["i"], st["read"]
        while i < n:
            cr = lk.credit_ready(lk.sent)
            if cr is None:
                st["i"], st["read"] = i, read
                self.blocked = (f"waits for room in card {lk.dst}'s receive FIFO "
                                f"({i} of {n} vectors sent)")
                return BLOCKED
            read = max(read + 1, hs[0][-deps[0]] + 1)
            if av is not None and av[i] > read:
                read = av[i]
            x = read
            if self.ring_log is not None:
                self.ring_log["offer"].append(read + 1)
            for k in range(last + 1):
                h = hs[k]
                x = max(x + 1, h[-1] + 1, hs[k + 1][-deps[k + 1]] + 1 if k < last else cr)
                h.pop(0)
                h.append(x)
            lk.send(x)
            i += 1
        self.pending = None
        self.blocked = None
        self._read(v, n, read, RING)
        self.tx_free = read
        done = hs[0][-1] + 1  # the mover is idle once its last vector left on tx
        self._done(done, RING)
        self.stats[S_SENT] += n
        self.stats[S_BUSY + U_TX] += done - start
        lk.maybe_trim()
        self._event(U_TX, start, done, m)
        self.pc = self.npc
        return RUN

    def _op_recv(self, ins: Instruction, m: Meta) -> int:
        if self.rx is None:
            raise self._no_ring(ins)
        n = self._count(ins.n, "n")
        v = self._va(ins.v)
        t, c = self._pre(m)
        if n == 0:
            self._issue(t, c)
            self.stats[S_INSTR + m.cls] += 1
            return RUN
        tw, cw = self._dst(v, n)
        if tw > t:
            t, c = tw, cw
        t = self._sb(t, True, False)
        tu, cu = self._unit(U_RX, RING)
        if tu > t:
            t, c = tu, cu
        issue = self._issue(t, c)
        self.stats[S_INSTR + m.cls] += 1
        start = max(issue + 1, self.rx_free)  # the mover takes it, writes from the next cycle
        self._took(U_RX, start)
        out: list[int] = []
        self.pending = lambda: self._recv_run(ins, m, v, n, start, out)
        return self.pending()

    def _recv_run(self, ins: Instruction, m: Meta, v: int, n: int, start: int,
                  out: list[int]) -> int:
        """Vector k: the router's rx_out pop y_0 = max(valid with the FIFO empty, previous
        pop + 1, room in the first FIFO); each later stage y_j = max(y_(j-1) + 1, its
        previous + 1, room in the next FIFO); the last stage (the core's rx stream, the VRF
        write) also waits for the mover (from the cycle after it took the recv)."""
        lk = self.rx
        assert lk is not None
        deps = (1, *self.p.stream_fifos)
        last = len(deps) - 1
        hs = self.rx_hs
        k = len(out)
        while k < n:
            a = lk.arrival(lk.popped)
            if a is None:
                self.blocked = (f"waits for {n - k} more vectors from card {lk.src}")
                return BLOCKED
            y = a - 1
            for j in range(last + 1):
                h = hs[j]
                y = max(y + 1, h[-1] + 1)
                if j < last:
                    y = max(y, hs[j + 1][-deps[j + 1]] + 1)
                else:
                    y = max(y, start + 1)
                if j == 0:
                    pop = y
                h.pop(0)
                h.append(y)
            lk.pop(pop)
            out.append(y + 1)  # written into the VRF in the handshake cycle
            k += 1
        lk.maybe_trim()
        self.pending = None
        self.blocked = None
        self._write(v, out, RING)
        self.rx_free = out[-1] - 1
        if self.ring_log is not None:
            self.ring_log["rx_ready"].append((start + 1, out[-1] - 1))
        self.stats[S_RECV] += n
        self.stats[S_BUSY + U_RX] += out[-1] - start
        self._event(U_RX, start, out[-1], m)
        self.pc = self.npc
        return RUN
