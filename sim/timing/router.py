"""The router of one card: ``send`` (transmit side) and ``recv`` (receive side) on the QSFP
ring (docs/timing.md, "Ring"). The links themselves (serialiser, vectors in flight, credits)
are :class:`~.ring.Link`; a side that needs a link time not yet produced by another card
returns ``BLOCKED`` and resumes later (``pending``).
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
        self.tx_free = NEG  # the transmit mover takes its next command from this cycle
        self.rx_free = NEG  # the receive mover takes its next command from this cycle

    def _key_router(self, f: Any) -> tuple:
        return f(self.tx_free), f(self.rx_free)

    def _shift_router(self, sh: Any) -> None:
        self.tx_free, self.rx_free = sh(self.tx_free), sh(self.rx_free)

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
        st = {"i": 0, "ready": start}  # progress kept while blocked on credits
        self.pending = lambda: self._send_run(ins, m, v, n, av, start, st)
        return self.pending()

    def _send_run(self, ins: Instruction, m: Meta, v: int, n: int, av: list[int] | None,
                  start: int, st: dict[str, Any]) -> int:
        p, lk = self.p, self.tx
        assert lk is not None
        q = p.ser_den
        i, ready = st["i"], st["ready"]
        rl, ser, credit_lat, hop = p.router_latency, p.ser_num, p.credit_latency, p.hop
        fifo = p.fifo
        pops, pb, arr = lk.pops, lk.pop_base, lk.arr
        free_q = lk.free_q
        sent = lk.sent
        while i < n:
            k = sent - fifo
            if k < 0:
                pop = NEG
            elif k - pb < len(pops):
                pop = pops[k - pb]
            else:
                st["i"], st["ready"] = i, ready
                lk.free_q, lk.sent = free_q, sent
                self.blocked = (f"waits for room in card {lk.dst}'s receive FIFO "
                                f"({i} of {n} vectors sent)")
                return BLOCKED
            ready += 1
            if av is not None and av[i] > ready:
                ready = av[i]
            tq = (ready + rl) * q
            if free_q > tq:
                tq = free_q
            cq = (pop + credit_lat) * q
            if cq > tq:
                tq = cq
            free_q = tq + ser
            arr.append(-(-free_q // q) + hop)
            sent += 1
            read = -(-tq // q) - rl  # the vector leaves the VRF as it enters the serialiser
            if ready < read:
                ready = read
            i += 1
        lk.free_q, lk.sent = free_q, sent
        self.pending = None
        self.blocked = None
        self._read(v, n, ready, RING)
        self.tx_free = ready
        done = -(-lk.free_q // q)
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
        lk = self.rx
        assert lk is not None
        pop = out[-1] - 1 if out else start
        arr, ab = lk.arr, lk.arr_base
        popped = lk.popped
        pops = lk.pops
        k = len(out)
        while k < n:
            j = popped - ab
            if j >= len(arr):
                lk.popped = popped
                self.blocked = (f"waits for {n - k} more vectors from card {lk.src}")
                return BLOCKED
            pop += 1
            a = arr[j]
            if a > pop:
                pop = a
            pops.append(pop)
            popped += 1
            out.append(pop + 1)  # written into the VRF in the pop cycle
            k += 1
        lk.popped = popped
        lk.maybe_trim()
        self.pending = None
        self.blocked = None
        self._write(v, out, RING)
        self.rx_free = out[-1] - 1
        self.stats[S_RECV] += n
        self.stats[S_BUSY + U_RX] += out[-1] - start
        self._event(U_RX, start, out[-1], m)
        self.pc = self.npc
        return RUN
