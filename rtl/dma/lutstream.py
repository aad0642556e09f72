"""``LutStream``: the LUT-GEMM unit's ``signs`` and ``scales`` streams and the lutmv bias
(isa/spec.yaml ``lut`` format; docs/lutgemm.md "Packed stream"; rtl/lutgemm/top.py stream
formats; docs/core.md "Memory system").

Command (:func:`lut_cmd_layout`, at issue): the packed stream at ``addr`` of ``space`` (32-byte
aligned), ``n``, ``ng``, ``gs``, ``q``, ``batch`` rows (0 means 1: the stream is read once per
row, as the unit takes one input row per command), and, with ``bias``, the ``n`` FP16 at
``baddr`` of ``bspace``.

Per batch row the bias is read first, as ``ceil(n / d)`` units (like a load), then the stream's
bytes once, in order, as runs of whole rows (one op per block). The bias comes first because
the unit's results of a row (which need it) appear only after the row's whole stream, and the
stream's scale beats wait for the unit: the core's LUT port buffers a whole row of bias. A
:class:`~.gearbox.Gearbox` cuts the stream: per group section, ``gs·q`` sign blocks of
``n·S/8`` bytes, each into ``ceil(n / L)`` sign beats of ``L·S/8`` bytes (the last one short;
lane words of rows >= n are don't-care); then the scale part into ``ceil(n / Sc)`` beats of
``Sc·(q+1)·2`` bytes (the last short: the unit ignores what is past n), each taken as pieces of
at most one row; then the section's padding to 32 bytes is skipped (one cycle when there is
some). One piece per cycle: a sign beat is one cycle, a scale beat ``ceil(Sc·(q+1)·2 / R)``.
Scale beats wait in a FIFO of ``scale_depth`` beats, so the lanes can take the next group's
signs while the scalers work through this group's scales (when ``ceil(n / Sc)`` fits); the bias
beats (zero-padded past n) leave on ``bias``. """

from __future__ import annotations

from math import gcd
from typing import Any

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO, SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from ..isa_layouts import LAYOUTS, Space
from .extract import Extractor
from .fabric import FabricPort, space_bits
from .gearbox import Gearbox
from .geometry import ADDR_BITS, Geometry, prefix_mask, suffix_mask

__all__ = ["LutStream", "lut_cmd_layout"]

SECTION_ALIGN = 32
"""Group sections are padded to 32 bytes (docs/lutgemm.md; dfx.isa.golden.lutgemm)."""

_LUT = LAYOUTS["lut"]

SCALE_DEPTH_MAX = 32
"""Default cap of the scale FIFO (beats): 32 x 2560 bytes at dfx-u280, groups of up to 8192
rows overlap their scale stage with the next group's lanes."""


def lut_cmd_layout(max_rows: int, max_gs: int, max_q: int) -> data.StructLayout:
    """The LUT stream command (module doc)."""
    return data.StructLayout({
        "space": Space, "addr": ADDR_BITS, "n": range(max_rows + 1), "ng": _LUT["ng"].shape,
        "gs": range(max_gs + 1), "q": range(max_q + 1), "batch": _LUT["batch"].shape,
        "bias": 1, "bspace": Space, "baddr": ADDR_BITS,
    })


CMD_DEPTH = 2
"""LUT stream commands accepted and waiting for the reader."""


class _Kind:
    STREAM, BIAS = 0, 1


class LutStream(wiring.Component):
    """The LUT-GEMM stream reader (module doc). Parameters: ``geometry``, ``slice`` S,
    ``lanes`` L, ``scalers`` Sc, ``max_q``, ``max_rows``, ``max_group`` (``core.lutgemm``),
    ``scale_depth`` (scale beats buffered); :meth:`from_core`."""

    def __init__(self, geometry: Geometry, *, slice: int, lanes: int, scalers: int,  # noqa: A002
                 max_q: int, max_rows: int, max_group: int, scale_depth: int):
        g = self._g = geometry
        self._s, self._l, self._sc = slice, lanes, scalers
        self._max_q, self._max_rows, self._max_gs = max_q, max_rows, max_group // slice
        if slice % 8 or lanes * slice // 8 > g.row_bytes:
            raise ValueError(f"a sign beat (lanes·slice/8 = {lanes * slice // 8} bytes) must be "
                             f"whole bytes and fit a row ({g.row_bytes} bytes)")
        if not isinstance(scale_depth, int) or scale_depth < 1:
            raise ValueError(f"scale_depth must be a positive integer, not {scale_depth!r}")
        self._scale_depth = scale_depth
        self._gran = gcd(slice // 8, 2 * scalers, SECTION_ALIGN, g.beat_bytes)
        self._sbw = scalers * (max_q + 1) * 2  # scale beat bytes (widest)
        self._ext = Extractor(g, g.vector_bytes, user_bits=1)
        self._gear = Gearbox(g, gran=self._gran)
        super().__init__({
            "cmd": In(stream.Signature(lut_cmd_layout(max_rows, self._max_gs, max_q))),
            "signs": Out(stream.Signature(data.ArrayLayout(slice, lanes))),
            "scales": Out(stream.Signature(data.ArrayLayout(16, scalers * (max_q + 1)))),
            "bias": Out(stream.Signature(data.ArrayLayout(16, g.d))),
            "mem": Out(FabricPort(g, writes=False)),
        })

    @staticmethod
    def params(core: Any) -> dict[str, int]:
        """The parameters of ``core.lutgemm``; ``scale_depth`` is the scale beats of a
        ``max_rows`` group, at most :data:`SCALE_DEPTH_MAX`."""
        c = core.lutgemm
        return {"slice": c.slice, "lanes": c.lanes, "scalers": c.scalers, "max_q": c.max_q,
                "max_rows": c.max_rows, "max_group": c.max_group,
                "scale_depth": min(-(-c.max_rows // c.scalers), SCALE_DEPTH_MAX)}

    @classmethod
    def from_core(cls, core: Any, geometry: Geometry) -> LutStream:
        return cls(geometry, **cls.params(core))

    @property
    def cmd_depth(self) -> int:
        """Commands accepted and not yet taken by the reader, at most."""
        return CMD_DEPTH

    @property
    def scale_depth(self) -> int:
        return self._scale_depth

    @property
    def gran(self) -> int:
        """Alignment of every piece of the stream (the gearbox's step)."""
        return self._gran

    def elaborate(self, platform: Any) -> Module:  # noqa: C901 - two sequencers
        m = Module()
        g = self._g
        C, R, D = g.channels, g.row_bytes, g.d  # noqa: N806
        rs, bs = g.row_shift, g.beat_shift
        S, L, Sc = self._s, self._l, self._sc  # noqa: N806
        lsb = L * S // 8  # sign beat bytes
        wsb = S // 8  # bytes of one row's lane word
        mem = self.mem
        ones = (1 << C) - 1

        # ---- commands: claim at acceptance
        clay = lut_cmd_layout(self._max_rows, self._max_gs, self._max_q)
        cp = self.cmd.payload
        m.submodules.cmdq = cmdq = SyncFIFO(width=clay.size, depth=CMD_DEPTH)
        m.d.comb += [
            mem.claim.eq(space_bits(cp.space) | Mux(cp.bias, space_bits(cp.bspace), 0)),
            mem.claim_valid.eq(self.cmd.valid & cmdq.w_rdy),
            self.cmd.ready.eq(cmdq.w_rdy & mem.claim_ok),
            cmdq.w_data.eq(cp), cmdq.w_en.eq(self.cmd.valid & cmdq.w_rdy & mem.claim_ok),
        ]
        # one command at a time for both sequencers: the op side hands it to the data side
        c = Signal(clay)
        nsb = Signal(ADDR_BITS)  # bytes of a sign block: n·S/8
        scb = Signal(ADDR_BITS)  # bytes of the scale part: n·(q+1)·2
        sec = Signal(ADDR_BITS)  # section bytes
        pad = Signal(range(SECTION_ALIGN))
        total = Signal(ADDR_BITS)  # stream bytes
        raw = (c.gs * c.q) * nsb + scb
        rows = Mux(c.batch == 0, 1, c.batch)
        dq = SyncFIFO(width=clay.size + 3 * ADDR_BITS + 5, depth=2)
        m.submodules.dataq = dq

        # ---- op side
        tlay = data.StructLayout({"kind": 1, "start": 1, "o": rs, "nb": range(2 * D + 1),
                                  "two": 1, "done": 1})
        tag = Signal(tlay)
        op = mem.op.payload
        m.d.comb += op.tag.eq(tag)
        brow = Signal(9)
        pos = Signal(ADDR_BITS)
        end = Signal(ADDR_BITS)
        k = Signal(ADDR_BITS)  # bias unit
        part = Signal()
        first = Signal()
        last_brow = brow + 1 >= rows
        blk = Mux(c.space == Space.DDR, g.block_rows(Space.DDR),
                  Mux(c.space == Space.WBUF, g.block_rows(Space.WBUF), g.block_rows(Space.HBM)))
        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += cmdq.r_en.eq(1)
                with m.If(cmdq.r_rdy):
                    m.d.sync += c.eq(cmdq.r_data)
                    m.next = "SIZE1"
            with m.State("SIZE1"):
                m.d.sync += [nsb.eq(c.n * wsb), scb.eq(c.n * (c.q + 1) * 2)]
                m.next = "SIZE2"
            with m.State("SIZE2"):
                m.d.sync += [pad.eq(-raw), sec.eq(raw + (-raw)[:5])]
                m.next = "SIZE3"
            with m.State("SIZE3"):
                m.d.sync += total.eq(c.ng * sec)
                m.next = "HAND"
            with m.State("HAND"):
                m.d.comb += [dq.w_en.eq(1), dq.w_data.eq(Cat(c, nsb, scb, total, pad))]
                with m.If(dq.w_rdy):
                    m.d.sync += [brow.eq(0), pos.eq(c.addr), end.eq(c.addr + total), first.eq(1),
                                 k.eq(0), part.eq(0)]
                    m.next = "STREAM"
                    with m.If(c.bias):
                        m.next = "BIAS"
            with m.State("STREAM"):
                r0 = pos[rs:]
                rlast = (end - 1)[rs:]
                nblk = blk - (r0 & (blk - 1))
                nrows = Mux(rlast - r0 + 1 < nblk, rlast - r0 + 1, nblk)
                stop = (r0 + nrows) << rs
                fin = stop >= end
                m.d.comb += [
                    mem.op.valid.eq(1), op.space.eq(c.space), op.write.eq(0), op.row.eq(r0),
                    op.nrows.eq(nrows), op.m0.eq(suffix_mask(pos[bs:rs], C)),
                    op.m1.eq(Mux(fin, prefix_mask((end - 1)[bs:rs], C), ones)),
                    op.end.eq(fin & last_brow),
                    tag.kind.eq(_Kind.STREAM), tag.start.eq(first), tag.o.eq(pos[:rs]),
                ]
                with m.If(mem.op.ready):
                    m.d.sync += [pos.eq(stop), first.eq(0)]
                    with m.If(fin):  # the row's stream is out: the next row (its bias first)
                        m.d.sync += [brow.eq(brow + 1), pos.eq(c.addr), first.eq(1), k.eq(0),
                                     part.eq(0)]
                        with m.If(last_brow):
                            m.next = "IDLE"
                        with m.Elif(c.bias):
                            m.next = "BIAS"
                        with m.Else():
                            m.next = "STREAM"
            with m.State("BIAS"):
                a = c.baddr + k * (2 * D)
                lastu = (k + 1) * D >= c.n
                nb = Mux(lastu, (c.n - k * D) << 1, 2 * D)
                uo = a[:rs]
                uend = Signal(rs + 1)
                m.d.comb += uend.eq(uo + nb - 1)
                two = uend[rs]
                ma = suffix_mask(uo >> bs, C) & Mux(two, ones, prefix_mask(uend[bs:rs], C))
                mb = prefix_mask(uend[bs:rs], C)
                m.d.comb += [
                    mem.op.valid.eq(1), op.space.eq(c.bspace), op.write.eq(0),
                    op.row.eq(a[rs:] + part), op.nrows.eq(1), op.m0.eq(Mux(part, mb, ma)),
                    op.m1.eq(Mux(part, mb, ma)),
                    op.end.eq(lastu & (part | ~two) & last_brow & (c.bspace != c.space)),
                    tag.kind.eq(_Kind.BIAS), tag.o.eq(uo), tag.nb.eq(nb), tag.two.eq(two),
                    tag.done.eq(part | ~two),
                ]
                with m.If(mem.op.ready):
                    with m.If(~part & two):
                        m.d.sync += part.eq(1)
                    with m.Else():
                        m.d.sync += [part.eq(0), k.eq(k + 1)]
                        with m.If(lastu):  # the row's bias is out: now its stream
                            m.next = "STREAM"

        # ---- rows back: stream rows to the gearbox, bias rows to the Extractor
        m.submodules.gear = gear = self._gear
        m.submodules.ext = ext = self._ext
        rd = mem.rdata
        rt = tlay(rd.payload.tag[:tlay.size])
        m.d.comb += [
            gear.rows.payload.data.eq(rd.payload.data),
            gear.rows.payload.start.eq(rt.start & rd.payload.first), gear.rows.payload.o.eq(rt.o),
            gear.rows.valid.eq(rd.valid & (rt.kind == _Kind.STREAM)),
            ext.row.payload.data.eq(rd.payload.data), ext.row.payload.o.eq(rt.o),
            ext.row.payload.nbytes.eq(rt.nb), ext.row.payload.two.eq(rt.two),
            ext.row.payload.done.eq(rt.done), ext.row.payload.user.eq(0),
            ext.row.valid.eq(rd.valid & (rt.kind == _Kind.BIAS)),
            rd.ready.eq(Mux(rt.kind == _Kind.BIAS, ext.row.ready, gear.rows.ready)),
        ]
        m.submodules.biasq = bq = SyncFIFO(width=16 * D, depth=4)
        m.d.comb += [
            bq.w_data.eq(ext.unit.payload.data), bq.w_en.eq(ext.unit.valid),
            ext.unit.ready.eq(bq.w_rdy),
            self.bias.payload.eq(bq.r_data), self.bias.valid.eq(bq.r_rdy),
            bq.r_en.eq(self.bias.ready),
        ]

        # ---- data side: requests to the gearbox, pieces out
        dc = Signal(clay)
        d_nsb = Signal(ADDR_BITS)
        d_scb = Signal(ADDR_BITS)
        d_total = Signal(ADDR_BITS)
        d_pad = Signal(range(SECTION_ALIGN))
        drows = Mux(dc.batch == 0, 1, dc.batch)
        grp = Signal(16)
        sblk = Signal(range(self._max_gs * self._max_q + 1))
        brem = Signal(ADDR_BITS)  # bytes left in the sign block
        srem = Signal(ADDR_BITS)  # bytes left in the scale part
        prem = Signal(range(self._sbw + 1))  # bytes left in the scale beat
        piece = Signal(range(-(-self._sbw // R) + 1))
        drow = Signal(9)
        bb = (dc.q + 1) * (2 * Sc)  # scale beat bytes
        what = data.StructLayout({"scale": 1, "piece": piece.shape(), "last": 1})
        m.submodules.whatq = wq = SyncFIFO(width=what.size, depth=2)
        rq = gear.req.payload
        wn = what(wq.w_data)
        last_grp = grp + 1 >= dc.ng
        last_drow = drow + 1 >= drows
        with m.FSM():
            with m.State("WAIT"):
                m.d.comb += dq.r_en.eq(1)
                with m.If(dq.r_rdy):
                    lay = data.StructLayout({"c": clay, "nsb": ADDR_BITS, "scb": ADDR_BITS,
                                             "total": ADDR_BITS, "pad": 5})
                    v = lay(dq.r_data)
                    m.d.sync += [dc.eq(v.c), d_nsb.eq(v.nsb), d_scb.eq(v.scb),
                                 d_total.eq(v.total), d_pad.eq(v.pad), drow.eq(0), grp.eq(0),
                                 sblk.eq(0), brem.eq(v.nsb)]
                    m.next = "SIGN"
            with m.State("SIGN"):
                size = Mux(brem < lsb, brem, lsb)
                m.d.comb += [rq.size.eq(size), rq.emit.eq(1), rq.flush.eq(0),
                             gear.req.valid.eq(wq.w_rdy), wn.scale.eq(0),
                             wq.w_en.eq(gear.req.ready)]
                with m.If(gear.req.ready):
                    m.d.sync += brem.eq(brem - size)
                    with m.If(brem == size):
                        m.d.sync += [brem.eq(d_nsb), sblk.eq(sblk + 1)]
                        with m.If(sblk + 1 >= dc.gs * dc.q):
                            m.d.sync += [sblk.eq(0), srem.eq(d_scb), prem.eq(
                                Mux(d_scb < bb, d_scb, bb)), piece.eq(0)]
                            m.next = "SCALE"
            with m.State("SCALE"):
                size = Mux(prem < R, prem, R)
                beat_end = prem == size
                part_end = srem == size
                flush = part_end & (d_pad == 0) & last_grp
                m.d.comb += [rq.size.eq(size), rq.emit.eq(1), rq.flush.eq(flush),
                             gear.req.valid.eq(wq.w_rdy), wn.scale.eq(1), wn.piece.eq(piece),
                             wn.last.eq(beat_end), wq.w_en.eq(gear.req.ready)]
                with m.If(gear.req.ready):
                    m.d.sync += [srem.eq(srem - size), prem.eq(prem - size),
                                 piece.eq(piece + 1)]
                    with m.If(beat_end):
                        nxt = srem - size
                        m.d.sync += [piece.eq(0), prem.eq(Mux(nxt < bb, nxt, bb))]
                    with m.If(part_end):
                        with m.If(d_pad != 0):
                            m.next = "PAD"
                        with m.Else():
                            self._next_group(m, grp, last_grp, drow, last_drow, brem, d_nsb)
            with m.State("PAD"):
                m.d.comb += [rq.size.eq(d_pad), rq.emit.eq(0), rq.flush.eq(last_grp),
                             gear.req.valid.eq(1)]
                with m.If(gear.req.ready):
                    self._next_group(m, grp, last_grp, drow, last_drow, brem, d_nsb)

        # ---- pieces out
        po = gear.out
        wh = what(wq.r_data)
        beat = Signal(8 * self._sbw)
        npiece = -(-self._sbw // R)
        assembled = Cat(Mux(wh.piece == j, po.payload, beat[j * 8 * R:(j + 1) * 8 * R])
                        for j in range(npiece))[:8 * self._sbw]
        m.submodules.scaleq = sq = SyncFIFOBuffered(width=8 * self._sbw,
                                                    depth=self._scale_depth)
        to_sign = po.valid & ~wh.scale
        to_scale = po.valid & wh.scale
        m.d.comb += [
            self.signs.payload.eq(po.payload[:8 * lsb]), self.signs.valid.eq(to_sign),
            sq.w_data.eq(assembled), sq.w_en.eq(to_scale & wh.last),
            po.ready.eq(Mux(wh.scale, ~wh.last | sq.w_rdy, self.signs.ready)),
            wq.r_en.eq(po.valid & po.ready),
            self.scales.payload.eq(sq.r_data), self.scales.valid.eq(sq.r_rdy),
            sq.r_en.eq(self.scales.ready),
        ]
        with m.If(to_scale & po.ready):
            m.d.sync += beat.eq(assembled)
        return m

    @staticmethod
    def _next_group(m: Module, grp: Signal, last_grp: Any, drow: Signal, last_drow: Any,
                    brem: Signal, nsb: Signal) -> None:
        m.d.sync += [grp.eq(grp + 1), brem.eq(nsb)]
        m.next = "SIGN"
        with m.If(last_grp):
            m.d.sync += [grp.eq(0), drow.eq(drow + 1)]
            with m.If(last_drow):
                m.next = "WAIT"
