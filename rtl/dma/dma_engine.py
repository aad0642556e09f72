"""``DmaEngine``: load / store / store_t / copy (isa/spec.yaml class ``dma``; DFX §IV-B),
a client of the fabric (docs/core.md "Memory system").

* ``cmd`` (:func:`~.dma_ops.dma_cmd_layout`) is accepted at issue: it claims its spaces (a
  load its source, a store its destination, a copy both; ``n`` = 0 nothing) in that cycle.
  Up to ``cmd_depth`` commands wait while the address side (:class:`~.dma_ops.DmaOpGen`)
  works on one.
* ``load_data``: ``ceil(n / d)`` vectors of d FP16 per load, in order, the partial last one
  zero-padded (the :class:`~.extract.Extractor` cuts each chunk out of its rows).
* ``store_data``: ``ceil(n / d)`` vectors per store or store_t (the partial last one's
  unused elements are ignored); a store vector goes through the :class:`~.place.Placer`,
  a store_t vector is taken apart into its ``d / l`` chunks (:class:`~.place.ScatterPlacer`).
* copy: fast rows go straight back out with their end strobes; slow units come out of the
  Extractor and are gathered into destination rows.
* ``done`` pulses once per command, in command order: a load when its last vector has been
  taken, a store / store_t / copy when its last write is acknowledged, ``n`` = 0 at once.
"""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from ..isa_layouts import Space
from .dma_ops import (
    DmaOp,
    DmaOpGen,
    TagKind,
    WSrc,
    dma_cmd_layout,
    dma_tag_layout,
    place_desc_layout,
    scat_desc_layout,
    wsrc_layout,
)
from .extract import Extractor
from .fabric import FabricPort, space_bits
from .geometry import MEM_SPACES, Geometry
from .place import Placer, ScatterPlacer

__all__ = ["DmaEngine"]


PLACE_DEPTH = 4
"""Store units (and store_t chunks) generated ahead of the Placer taking their data."""


class _Kind:
    NONE, LOAD, WACK = 0, 1, 2


class DmaEngine(wiring.Component):
    """The DMA engine (module doc). Parameters: ``geometry``, ``cmd_depth`` (commands waiting
    for the address side), ``done_depth`` (commands not yet done)."""

    def __init__(self, geometry: Geometry, *, cmd_depth: int = 2, done_depth: int = 8):
        g = self._g = geometry
        self._cmd_depth, self._done_depth = cmd_depth, done_depth
        self._ext = Extractor(g, g.vector_bytes, user_bits=self._user_layout.size)
        super().__init__({
            "cmd": In(stream.Signature(dma_cmd_layout(g))),
            "load_data": Out(stream.Signature(data.ArrayLayout(16, g.d))),
            "store_data": In(stream.Signature(data.ArrayLayout(16, g.d))),
            "done": Out(1),
            "mem": Out(FabricPort(g, writes=True)),
        })

    @property
    def _user_layout(self) -> data.StructLayout:
        g = self._g
        return data.StructLayout({
            "cslow": 1, "last": 1, "slot": max(1, g.channels.bit_length() - 1),
            "fine": max(1, g.beat_shift), "rend": 1, "nb": range(g.beat_bytes + 1),
        })

    @property
    def cmd_depth(self) -> int:
        """Commands accepted and waiting for the address side, at most."""
        return self._cmd_depth

    @property
    def done_depth(self) -> int:
        """Commands accepted and not yet done, at most."""
        return self._done_depth

    @property
    def place_depth(self) -> int:
        """Store units the address side generates ahead of the Placer, at most."""
        return PLACE_DEPTH

    @property
    def place_latency(self) -> int:
        """Cycles from a store vector taken by the Placer to its (first) write row."""
        return Placer(self._g, self._g.vector_bytes).latency

    @property
    def extract_latency(self) -> int:
        """Cycles from a row on ``mem.rdata`` (taken) to its vector on ``load_data``."""
        return self._ext.latency

    def elaborate(self, platform: Any) -> Module:  # noqa: C901 - the engine's glue
        m = Module()
        g = self._g
        C, W, R, D, L = g.channels, g.beat_bytes, g.row_bytes, g.d, g.l  # noqa: N806
        mem = self.mem

        # ---- commands: claim at acceptance
        clay = dma_cmd_layout(g)
        dlay = data.StructLayout({"kind": 2, "space": 2})
        m.submodules.cmdq = cmdq = SyncFIFO(width=clay.size, depth=self._cmd_depth)
        m.submodules.doneq = doneq = SyncFIFO(width=dlay.size, depth=self._done_depth)
        cp = self.cmd.payload
        zero = cp.n == 0
        claim = Mux(zero, 0, Mux(cp.op == DmaOp.LOAD, space_bits(cp.src_space),
                                 Mux(cp.op == DmaOp.COPY,
                                     space_bits(cp.src_space) | space_bits(cp.dst_space),
                                     space_bits(cp.dst_space))))
        room = cmdq.w_rdy & doneq.w_rdy
        acc = self.cmd.valid & room & mem.claim_ok
        dnew = dlay(doneq.w_data)
        m.d.comb += [
            mem.claim.eq(claim), mem.claim_valid.eq(self.cmd.valid & room),
            self.cmd.ready.eq(room & mem.claim_ok),
            cmdq.w_data.eq(cp), cmdq.w_en.eq(acc & ~zero),
            doneq.w_en.eq(acc),
            dnew.kind.eq(Mux(zero, _Kind.NONE, Mux(cp.op == DmaOp.LOAD, _Kind.LOAD,
                                                    _Kind.WACK))),
            dnew.space.eq(Mux(cp.dst_space == Space.DDR, 1,
                              Mux(cp.dst_space == Space.WBUF, 2, 0))),
        ]

        # ---- address side
        m.submodules.opgen = gen = DmaOpGen(g)
        m.d.comb += [gen.cmd.payload.eq(cmdq.r_data), gen.cmd.valid.eq(cmdq.r_rdy),
                     cmdq.r_en.eq(gen.cmd.ready)]
        wiring.connect(m, gen.op, wiring.flipped(mem.op))
        plq = SyncFIFO(width=place_desc_layout(g).size, depth=PLACE_DEPTH)
        scq = SyncFIFO(width=scat_desc_layout(g).size, depth=PLACE_DEPTH)
        wsq = SyncFIFO(width=wsrc_layout().size, depth=4)
        m.submodules.placeq, m.submodules.scatq, m.submodules.wsrcq = plq, scq, wsq
        for src, q in ((gen.place, plq), (gen.scat, scq)):
            m.d.comb += [q.w_data.eq(src.payload), q.w_en.eq(src.valid),
                         src.ready.eq(q.w_rdy)]
        # the row order (wsrcq, popped at a command's last row) and the store_data order
        # (vsrcq, store or store_t, popped at its last unit: the placers run ahead)
        m.submodules.vsrcq = vsq = SyncFIFO(width=1, depth=4)
        is_vec = gen.wsrc.payload.src <= WSrc.STORE_T
        m.d.comb += [
            wsq.w_data.eq(gen.wsrc.payload), wsq.w_en.eq(gen.wsrc.valid & vsq.w_rdy),
            vsq.w_data.eq(gen.wsrc.payload.src == WSrc.STORE_T),
            vsq.w_en.eq(gen.wsrc.valid & wsq.w_rdy & is_vec),
            gen.wsrc.ready.eq(wsq.w_rdy & vsq.w_rdy),
        ]

        # ---- rows back: units to the Extractor, fast copy rows straight on
        m.submodules.ext = ext = self._ext
        row = mem.rdata.payload
        tlay = dma_tag_layout(g)
        tag = tlay(row.tag[:tlay.size])
        is_fast = tag.kind == TagKind.CFAST
        ulay = self._user_layout
        er = ext.row.payload
        eu = ulay(er.user)
        m.d.comb += [
            er.data.eq(row.data), er.o.eq(tag.o), er.nbytes.eq(tag.nb), er.two.eq(tag.two),
            er.done.eq(tag.done),
            eu.cslow.eq(tag.kind == TagKind.CSLOW), eu.last.eq(tag.last), eu.slot.eq(tag.slot),
            eu.fine.eq(tag.fine), eu.rend.eq(tag.rend), eu.nb.eq(tag.nb),
            ext.row.valid.eq(mem.rdata.valid & ~is_fast),
        ]
        fast_v = Signal()
        fast_row = Signal(data.StructLayout({"data": 8 * R, "strb": R, "last": 1}))
        ftaken = Signal()
        fcan = ~fast_v | ftaken
        m.d.comb += mem.rdata.ready.eq(Mux(is_fast, fcan, ext.row.ready))
        with m.If(mem.rdata.valid & is_fast & fcan):
            lo_ok = Cat(~row.first | (b >= tag.o) for b in range(R))
            hi_ok = Cat(~row.last | (b < tag.nb) for b in range(R))
            m.d.sync += [fast_v.eq(1), fast_row.data.eq(row.data),
                         fast_row.strb.eq(lo_ok & hi_ok), fast_row.last.eq(row.last & tag.last)]
        with m.Elif(ftaken):
            m.d.sync += fast_v.eq(0)

        # ---- Extractor out: load vectors, or slow copy units into destination rows
        unit = ext.unit.payload
        uu = ulay(unit.user)
        slow_v = Signal()
        slow_row = Signal(data.StructLayout({"data": 8 * R, "strb": R, "last": 1}))
        acc_d = Signal(8 * R)
        acc_s = Signal(R)
        staken = Signal()
        scan = ~slow_v | staken
        to_load = ext.unit.valid & ~uu.cslow
        to_slow = ext.unit.valid & uu.cslow
        m.d.comb += [
            self.load_data.valid.eq(to_load), self.load_data.payload.eq(unit.data),
            ext.unit.ready.eq(Mux(uu.cslow, ~uu.rend | scan, self.load_data.ready)),
        ]
        load_event = to_load & self.load_data.ready & uu.last
        beat = (unit.data[:8 * W] << (uu.fine * 8))[:8 * W]
        bstrb = Cat((b >= uu.fine) & (b < uu.fine + uu.nb) for b in range(W))
        new_d = Cat(Mux(uu.slot == s, beat, acc_d[s * 8 * W:(s + 1) * 8 * W]) for s in range(C))
        new_s = Cat(Mux(uu.slot == s, bstrb, acc_s[s * W:(s + 1) * W]) for s in range(C))
        with m.If(to_slow & ext.unit.ready):
            with m.If(uu.rend):
                m.d.sync += [slow_v.eq(1), slow_row.data.eq(new_d), slow_row.strb.eq(new_s),
                             slow_row.last.eq(uu.last), acc_s.eq(0)]
            with m.Else():
                m.d.sync += [acc_d.eq(new_d), acc_s.eq(new_s)]
                with m.If(staken):
                    m.d.sync += slow_v.eq(0)
        with m.Elif(staken):
            m.d.sync += slow_v.eq(0)

        # ---- store: vectors through the Placer
        m.submodules.placer = pl = Placer(g, g.vector_bytes)
        pd = place_desc_layout(g)(plq.r_data)
        sd = self.store_data
        m.submodules.scatter = sc = ScatterPlacer(g)
        sdesc = scat_desc_layout(g)(scq.r_data)
        wh = wsrc_layout()(wsq.r_data)
        want_store = vsq.r_rdy & ~vsq.r_data[0]
        want_st = vsq.r_rdy & vsq.r_data[0]
        m.d.comb += [
            pl.unit.payload.data.eq(sd.payload), pl.unit.payload.o.eq(pd.o),
            pl.unit.payload.nbytes.eq(pd.nb), pl.unit.payload.two.eq(pd.two),
            pl.unit.payload.user.eq(pd.last),
            pl.unit.valid.eq(want_store & sd.valid & plq.r_rdy),
            plq.r_en.eq(pl.unit.valid & pl.unit.ready),
        ]
        vbits = sd.payload.as_value()
        elems = vbits[:16 * L]
        for k in range(1, D // L):
            elems = Mux(sdesc.sub == k, vbits[k * 16 * L:(k + 1) * 16 * L], elems)
        m.d.comb += [
            sc.unit.payload.elems.eq(elems),
            sc.unit.payload.cnt.eq(sdesc.cnt), sc.unit.payload.o.eq(sdesc.o),
            sc.unit.payload.two.eq(sdesc.two), sc.unit.payload.user.eq(sdesc.last),
            sc.unit.valid.eq(want_st & sd.valid & scq.r_rdy),
            scq.r_en.eq(sc.unit.valid & sc.unit.ready),
            sd.ready.eq((pl.unit.valid & pl.unit.ready)
                        | (sc.unit.valid & sc.unit.ready & sdesc.vlast)),
            vsq.r_en.eq((pl.unit.valid & pl.unit.ready & pd.last)
                        | (sc.unit.valid & sc.unit.ready & sdesc.last)),
        ]

        # ---- write rows in write-command order
        wd = mem.wdata
        srcs = [
            (WSrc.STORE, pl.row.valid, pl.row.payload.data, pl.row.payload.strb,
             pl.row.payload.last & pl.row.payload.user, pl.row),
            (WSrc.STORE_T, sc.row.valid, sc.row.payload.data, sc.row.payload.strb,
             sc.row.payload.last & sc.row.payload.user, sc.row),
            (WSrc.CSLOW, slow_v, slow_row.data, slow_row.strb, slow_row.last, None),
            (WSrc.CFAST, fast_v, fast_row.data, fast_row.strb, fast_row.last, None),
        ]
        valid, dsel, ssel, lsel = 0, 0, 0, 0
        for k, v, d_, s_, last, _ in srcs:
            hit = wh.src == k
            valid = Mux(hit, v, valid)
            dsel = Mux(hit, d_, dsel)
            ssel = Mux(hit, s_, ssel)
            lsel = Mux(hit, last, lsel)
        m.d.comb += [
            wd.valid.eq(wsq.r_rdy & valid), wd.payload.space.eq(wh.space),
            wd.payload.data.eq(dsel), wd.payload.strb.eq(ssel),
            wsq.r_en.eq(wd.valid & wd.ready & lsel),
        ]
        take = wd.valid & wd.ready
        for k, _, _, _, _, port in srcs:
            if port is not None:
                m.d.comb += port.ready.eq(take & (wh.src == k))
        m.d.comb += [staken.eq(take & (wh.src == WSrc.CSLOW)),
                     ftaken.eq(take & (wh.src == WSrc.CFAST))]

        # ---- done, in command order
        dh = dlay(doneq.r_data)
        nb = self._done_depth.bit_length() + 1
        nload = Signal(nb)
        nwack = [Signal(nb, name=f"nwack{i}") for i in range(len(MEM_SPACES))]
        wack_cnt = Signal(nb)
        m.d.comb += wack_cnt.eq(Mux(dh.space == 0, nwack[0],
                                    Mux(dh.space == 1, nwack[1], nwack[2])))
        ready = doneq.r_rdy & ((dh.kind == _Kind.NONE) | ((dh.kind == _Kind.LOAD) & (nload != 0))
                               | ((dh.kind == _Kind.WACK) & (wack_cnt != 0)))
        m.d.comb += [doneq.r_en.eq(ready), self.done.eq(ready)]
        m.d.sync += nload.eq(nload + load_event - (ready & (dh.kind == _Kind.LOAD)))
        for i in range(len(MEM_SPACES)):
            m.d.sync += nwack[i].eq(nwack[i] + mem.wack[i]
                                    - (ready & (dh.kind == _Kind.WACK) & (dh.space == i)))
        return m
