"""``Fabric``: the three spaces and the issue-order arbitration between the clients
(docs/core.md "Memory system").

**Order.** A client *claims* the spaces a command will touch in the cycle the command is
accepted (``claim`` bits, one per space of :data:`~.geometry.MEM_SPACES`, with
``claim_valid``; ``claim_ok`` says the claim is taken: at most one claim per cycle, the lowest
:class:`~.geometry.Client` first, and only while every claimed space's order queue has room).
Each space serves its claimants' ops strictly in claim order: it takes ops from the client at
the head of its order queue until one with ``end``. So every pseudo-channel, the DDR port and
the weight buffer see the commands' transfers in issue order.

**Ports** (:class:`FabricPort`, from the client's side): ``op`` (ops for any claimed space, in
the client's own order), ``wdata`` (the rows of its write ops, in op order), ``rdata`` (the rows
of its read ops, in op order across spaces), ``wack`` (one bit per space: a write op with
``end`` is acknowledged there).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from amaranth.hdl import Array, Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from ..bus.axi import AxiSignature
from .ddr import DdrSpace
from .geometry import (
    ADDR_BITS,
    CLIENT_BITS,
    MEM_SPACES,
    Client,
    Geometry,
    op_layout,
    rrow_layout,
    srow_layout,
    wrow_layout,
)
from .hbm import HbmSpace
from .wbuf import WbufSpace

__all__ = ["Fabric", "FabricPort", "space_bits"]

N_SPACES = len(MEM_SPACES)


def space_bits(space: Any) -> Any:
    """One-hot claim bits (:data:`MEM_SPACES` order) of a ``Space`` value."""
    return Cat(space == s for s in MEM_SPACES)


class FabricPort(wiring.Signature):
    """A client's connection to the fabric, from the client's side (module doc)."""

    def __init__(self, g: Geometry, *, writes: bool):
        members = {
            "op": Out(stream.Signature(op_layout(g))),
            "rdata": In(stream.Signature(rrow_layout(g))),
            "claim": Out(N_SPACES),
            "claim_valid": Out(1),
            "claim_ok": In(1),
        }
        if writes:
            members["wdata"] = Out(stream.Signature(wrow_layout(g)))
            members["wack"] = In(N_SPACES)
        self._g, self._writes = g, writes
        super().__init__(members)

    @property
    def writes(self) -> bool:
        return self._writes

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, FabricPort) and other._g == self._g
                and other._writes == self._writes)

    def __hash__(self) -> int:
        return hash((FabricPort, self._g, self._writes))


ISSUE_CLIENTS = (Client.DMA, Client.MPU, Client.LUT)
"""Clients fed by the issue stage: at most one of them claims per cycle."""


class Fabric(wiring.Component):
    """The spaces, order queues, op arbitration and row routing (module doc).

    Parameters: ``geometry``, ``wbuf_latency``, ``clients`` (the :class:`Client` members
    present), ``writers`` (those that write), ``order_depth`` (commands per space waiting
    or in service), ``merge_depth`` (read ops per client whose rows are not all back).
    Members: ``hbm`` (C AXI ports), ``ddr``, ``hbm_base``, ``ddr_base``, and one
    ``In(FabricPort)`` per client named after it in lower case (``dma``, ``mpu``...).
    """

    def __init__(self, geometry: Geometry, *, wbuf_latency: int, clients: Iterable[Client],
                 writers: Iterable[Client] = (), order_depth: int = 8, merge_depth: int = 64):
        self._g = g = geometry
        self._wbuf_latency = wbuf_latency
        self._clients = sorted(Client(c) for c in clients)
        self._writers = {Client(c) for c in writers}
        if not self._writers <= set(self._clients):
            raise ValueError("writers must be among clients")
        self._order_depth, self._merge_depth = order_depth, merge_depth
        sig = {
            "hbm_base": In(data.ArrayLayout(ADDR_BITS, g.channels)),
            "ddr_base": In(ADDR_BITS),
            "hbm": Out(AxiSignature(data_width=8 * g.beat_bytes)).array(g.channels),
            "ddr": Out(AxiSignature(data_width=8 * g.beat_bytes)),
        }
        for c in self._clients:
            sig[c.name.lower()] = In(FabricPort(g, writes=c in self._writers))
        self._spaces = [HbmSpace(g), DdrSpace(g), WbufSpace(g, latency=wbuf_latency)]
        super().__init__(sig)

    @property
    def wbuf_mem(self) -> Any:
        """The weight buffer's storage (for simulator back doors)."""
        return self._spaces[2].mem

    @property
    def geometry(self) -> Geometry:
        return self._g

    @property
    def spaces(self) -> dict[str, Any]:
        """The spaces by name (``hbm``, ``ddr``, ``wbuf``)."""
        return dict(zip(("hbm", "ddr", "wbuf"), self._spaces, strict=True))

    @property
    def order_depth(self) -> int:
        """Claims (commands) per space waiting or in service, at most."""
        return self._order_depth

    def port(self, client: Client) -> Any:
        return getattr(self, Client(client).name.lower())

    def elaborate(self, platform: Any) -> Module:  # noqa: C901 - one loop per routing
        m = Module()
        g = self._g
        hbm, ddr, wbuf = spaces = self._spaces
        m.submodules.hbm_space = hbm
        m.submodules.ddr_space = ddr
        m.submodules.wbuf_space = wbuf
        for c in range(g.channels):
            wiring.connect(m, wiring.flipped(self.hbm[c]), hbm.axi[c])
        wiring.connect(m, wiring.flipped(self.ddr), ddr.axi)
        m.d.comb += [hbm.base.eq(self.hbm_base), ddr.base.eq(self.ddr_base)]

        clients = self._clients
        ports = {c: self.port(c) for c in clients}
        olay = op_layout(g)

        # ---- claims: one per cycle, lowest client first
        orders = []
        for i in range(N_SPACES):
            q = SyncFIFO(width=CLIENT_BITS, depth=self._order_depth)
            m.submodules[f"order{i}"] = q
            orders.append(q)
        room = Cat(q.w_rdy for q in orders)
        # The issue stage's clients (DMA, MPU, LUT) never claim in the same cycle (one
        # instruction issues per cycle), so they do not wait for one another: their claim_ok
        # depends only on the other clients (no combinational path between them).
        earlier = Signal()  # a lower client claims this cycle
        taken = []
        for c in clients:
            p = ports[c]
            ok = ~earlier & ((p.claim & ~room) == 0)
            m.d.comb += p.claim_ok.eq(ok)
            t = Signal(name=f"taken_{c.name.lower()}")
            m.d.comb += t.eq(p.claim_valid & ok)
            taken.append((c, t))
            if c in ISSUE_CLIENTS:
                continue
            nxt = Signal(name=f"after_{c.name.lower()}")
            m.d.comb += nxt.eq(earlier | p.claim_valid)
            earlier = nxt
        for i, q in enumerate(orders):
            push = 0
            cid = 0
            for c, t in taken:
                hit = t & ports[c].claim[i]
                push = push | hit
                cid = Mux(hit, int(c), cid)
            m.d.comb += [q.w_en.eq(push), q.w_data.eq(cid)]

        # ---- per-client merge queues (space of each read op, in op order)
        merges = {}
        for c in clients:
            mq = SyncFIFO(width=2, depth=self._merge_depth)
            m.submodules[f"merge_{c.name.lower()}"] = mq
            merges[c] = mq

        # ---- ops: the head claimant of each space
        op_ready = {c: [] for c in clients}
        merge_push = {c: [] for c in clients}
        for i, (sp, s) in enumerate(zip(MEM_SPACES, spaces, strict=True)):
            q = orders[i]
            head = q.r_data
            raw = ports[clients[0]].op.payload.as_value()
            for c in clients[1:]:
                raw = Mux(head == int(c), ports[c].op.payload.as_value(), raw)
            sel = olay(raw)
            valid = 0
            for c in clients:
                p = ports[c]
                want = (q.r_rdy & (head == int(c)) & p.op.valid & (p.op.payload.space == sp)
                        & (p.op.payload.write | merges[c].w_rdy))
                valid = valid | want
                acc = want & s.op.ready
                op_ready[c].append(acc)
                merge_push[c].append((acc & ~p.op.payload.write, i))
            sp_op = s.op.payload
            for name, _ in op_layout(g):
                m.d.comb += getattr(sp_op, name).eq(getattr(sel, name))
            m.d.comb += [sp_op.cid.eq(head), s.op.valid.eq(valid),
                         q.r_en.eq(valid & s.op.ready & sel.end)]
        for c in clients:
            p = ports[c]
            m.d.comb += p.op.ready.eq(Cat(op_ready[c]).any())
            mq = merges[c]
            push, idx = 0, 0
            for hit, i in merge_push[c]:
                push = push | hit
                idx = Mux(hit, i, idx)
            m.d.comb += [mq.w_en.eq(push), mq.w_data.eq(idx)]

        # ---- rows back: each client takes its rows from the space of its oldest read op
        rd_ready = [[] for _ in spaces]
        for c in clients:
            p, mq = ports[c], merges[c]
            hd = mq.r_data
            cur_valid = Array(s.rdata.valid for s in spaces)[hd]
            raw = spaces[0].rdata.payload.as_value()
            for i, s in enumerate(spaces[1:], 1):
                raw = Mux(hd == i, s.rdata.payload.as_value(), raw)
            cur = srow_layout(g)(raw)
            mine = mq.r_rdy & cur_valid & (cur.cid == int(c))
            m.d.comb += [p.rdata.valid.eq(mine)]
            for name, _ in rrow_layout(g):
                m.d.comb += getattr(p.rdata.payload, name).eq(getattr(cur, name))
            take = mine & p.rdata.ready
            m.d.comb += mq.r_en.eq(take & cur.last)
            for i in range(len(spaces)):
                rd_ready[i].append(take & (hd == i))
        for i, s in enumerate(spaces):
            m.d.comb += s.rdata.ready.eq(Cat(rd_ready[i]).any() if rd_ready[i] else 0)

        # ---- write rows: the space names the client whose row is next
        writers = [c for c in clients if c in self._writers]
        wready: dict[Client, list] = {c: [] for c in writers}
        for sp, s in zip(MEM_SPACES, spaces, strict=True):
            valid, ready_of = 0, {}
            payload = None
            for c in writers:
                p = ports[c]
                hit = s.wsel_valid & (s.wsel == int(c)) & (p.wdata.payload.space == sp)
                valid = valid | (hit & p.wdata.valid)
                ready_of[c] = hit & s.wdata.ready
                payload = p.wdata.payload if payload is None else Mux(
                    s.wsel == int(c), p.wdata.payload.as_value(), payload)
            m.d.comb += s.wdata.valid.eq(valid)
            if payload is not None:
                m.d.comb += s.wdata.payload.eq(payload)
            for c in writers:
                wready[c].append(ready_of[c])
        for c in writers:
            p = ports[c]
            m.d.comb += p.wdata.ready.eq(Cat(wready[c]).any())
            m.d.comb += p.wack.eq(Cat(s.wack.valid & (s.wack.payload == int(c))
                                      for s in spaces))
        return m

