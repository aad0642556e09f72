"""``DmaOpGen``: the DMA engine's address side, one command at a time, at most one op per cycle
(isa/spec.yaml load/store/store_t/copy; docs/core.md "Memory system").

* **load / store**: chunk k (``min(d, n - k·d)`` elements) at ``addr + k·(stride or 2d)`` is one
  unit: an op on its row, and a second op on the next row when it crosses a row boundary
  (the Extractor / Placer cut or place it). A store unit also gives the Placer its offset.
* **store_t**: chunk j (``min(l, n - j·l)`` elements, element e at ``dst + j·stride + e·2d``)
  is one unit with sparse beat masks (one beat per element), one or two rows.
* **copy** (memmove: the destination ends up with the source's old bytes). *Fast* when
  ``(src − dst) mod R = 0``: runs of whole rows, a read op then a write op per run, each run
  inside one block of both spaces; the rows go back out unchanged (strobes trim the ends).
  *Slow* otherwise: each destination beat is a unit read like a load (its source bytes, one or
  two rows), then one write op per destination row. Runs (fast) or rows (slow) go downwards
  when the ranges overlap in one space with ``dst > src`` (fast runs then hold at most
  ``(dst − src) / R`` rows), upwards otherwise; a run's or row's reads come before its write.
"""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.wiring import In, Out

from ..isa_layouts import LAYOUTS, Space
from .geometry import ADDR_BITS, TAG_BITS, Geometry, op_layout, prefix_mask, suffix_mask

__all__ = [
    "DmaOp",
    "DmaOpGen",
    "TagKind",
    "WSrc",
    "dma_cmd_layout",
    "dma_tag_layout",
    "place_desc_layout",
    "scat_desc_layout",
    "wsrc_layout",
]

STRIDE_BITS = LAYOUTS["dma"]["stride"].shape.width


class DmaOp(enum.Enum, shape=2):
    """The DMA engine's commands (isa/spec.yaml class ``dma``)."""

    LOAD = 0
    STORE = 1
    STORE_T = 2
    COPY = 3


class TagKind(enum.IntEnum):
    """What a returned row is for."""

    LOAD = 0
    CSLOW = 1
    CFAST = 2


class WSrc(enum.IntEnum):
    """Where a write command's rows come from."""

    STORE = 0
    STORE_T = 1
    CSLOW = 2
    CFAST = 3


def dma_cmd_layout(g: Geometry) -> data.StructLayout:
    """A DMA command: ``op``, ``dst_space``/``dst``, ``src_space``/``src`` (ISA byte addresses;
    the VRF side of load/store is the core's), ``n`` (FP16 elements), ``stride`` (bytes)."""
    return data.StructLayout({
        "op": DmaOp, "dst_space": Space, "dst": ADDR_BITS, "src_space": Space,
        "src": ADDR_BITS, "n": g.count_bits, "stride": STRIDE_BITS,
    })


def dma_tag_layout(g: Geometry) -> data.StructLayout:
    """The DMA engine's op tag: ``kind``; for a unit (LOAD, CSLOW) its ``o``, ``nb``, ``two``,
    ``done`` (this row completes it) and, CSLOW, the destination beat ``slot``, ``fine``
    offset and ``rend`` (last beat of the destination row); CFAST: ``o`` = first byte in the
    first row, ``nb`` = end in the last row; ``last``: the command's last unit or run."""
    lay = data.StructLayout({
        "kind": 2, "o": g.row_shift, "nb": range(g.row_bytes + 1), "two": 1, "done": 1,
        "last": 1, "slot": max(1, g.channels.bit_length() - 1), "fine": max(1, g.beat_shift),
        "rend": 1,
    })
    assert lay.size <= TAG_BITS
    return lay


def place_desc_layout(g: Geometry) -> data.StructLayout:
    """A store unit for the Placer: ``o``, ``nb``, ``two``, ``last`` (of the command)."""
    return data.StructLayout({"o": g.row_shift, "nb": range(g.vector_bytes + 1), "two": 1,
                              "last": 1})


def scat_desc_layout(g: Geometry) -> data.StructLayout:
    """A store_t chunk: ``o``, ``cnt``, ``two``, ``sub`` (which l-chunk of its vector),
    ``vlast`` (its vector's last chunk), ``last`` (the command's)."""
    return data.StructLayout({"o": g.row_shift, "cnt": range(g.l + 1), "two": 1,
                              "sub": max(1, (g.d // g.l - 1).bit_length()), "vlast": 1,
                              "last": 1})


def wsrc_layout() -> data.StructLayout:
    """A write command's row source and destination space."""
    return data.StructLayout({"src": 2, "space": Space})


class DmaOpGen(wiring.Component):
    """The address side of the DMA engine (module doc)."""

    def __init__(self, geometry: Geometry):
        g = self._g = geometry
        super().__init__({
            "cmd": In(stream.Signature(dma_cmd_layout(g))),
            "op": Out(stream.Signature(op_layout(g))),
            "place": Out(stream.Signature(place_desc_layout(g))),
            "scat": Out(stream.Signature(scat_desc_layout(g))),
            "wsrc": Out(stream.Signature(wsrc_layout())),
        })

    def _blk_mask(self, space: Any) -> Any:
        """``block_rows(space) - 1`` for a runtime space."""
        g = self._g
        return Mux(space == Space.DDR, g.block_rows(Space.DDR) - 1,
                   Mux(space == Space.WBUF, g.block_rows(Space.WBUF) - 1,
                       g.block_rows(Space.HBM) - 1))

    def elaborate(self, platform: Any) -> Module:  # noqa: C901 - one FSM, one state per op kind
        m = Module()
        g = self._g
        C, W, R, D, L = g.channels, g.beat_bytes, g.row_bytes, g.d, g.l  # noqa: N806
        rs, bs = g.row_shift, g.beat_shift
        U = g.vector_bytes  # noqa: N806
        sp = U // W
        sps = sp.bit_length() - 1
        ones = (1 << C) - 1
        tlay = dma_tag_layout(g)

        c = Signal(dma_cmd_layout(g))
        addr = Signal(ADDR_BITS)
        rem = Signal(g.count_bits)
        part = Signal()
        sub = Signal(range(max(2, D // L)))
        nbytes = Signal(ADDR_BITS)  # 2n
        m.d.comb += nbytes.eq(c.n << 1)
        end = Signal(ADDR_BITS)
        m.d.comb += end.eq(c.dst + nbytes)
        delta = Signal(ADDR_BITS)  # src - dst (mod 2^64)
        m.d.comb += delta.eq(c.src - c.dst)
        desc = Signal()
        pos = Signal(ADDR_BITS)  # copy: next byte (up) / end of what is left (down)
        crow = Signal(g.row_bits)  # slow copy: destination row
        t = Signal(ADDR_BITS - bs)  # slow copy: destination beat

        op = self.op
        tag = Signal(tlay)
        m.d.comb += op.payload.tag.eq(tag)

        # ---- a unit at ua of unb bytes (load, store, slow copy)
        ua = Signal(ADDR_BITS)
        unb = Signal(range(U + 1))
        uo = ua[:rs]
        uend = Signal(rs + 1)
        m.d.comb += uend.eq(uo + unb - 1)
        utwo = uend[rs]
        ua_mask = suffix_mask(uo >> bs, C) & Mux(utwo, ones, prefix_mask(uend[bs:rs], C))
        ub_mask = prefix_mask(uend[bs:rs], C)
        urow = ua[rs:]

        def unit_op(space: Any, write: Any, last: Any, end_ok: Any) -> None:
            """Drive op for part ``part`` of the unit (ua, unb)."""
            m.d.comb += [
                op.payload.space.eq(space), op.payload.write.eq(write),
                op.payload.row.eq(urow + part), op.payload.nrows.eq(1),
                op.payload.m0.eq(Mux(part, ub_mask, ua_mask)),
                op.payload.m1.eq(Mux(part, ub_mask, ua_mask)),
                op.payload.end.eq(last & (part | ~utwo) & end_ok),
                tag.o.eq(uo), tag.nb.eq(unb), tag.two.eq(utwo), tag.done.eq(part | ~utwo),
            ]

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.cmd.ready.eq(1)
                with m.If(self.cmd.valid):
                    m.d.sync += [c.eq(self.cmd.payload), part.eq(0), sub.eq(0),
                                 rem.eq(self.cmd.payload.n)]
                    m.next = "START"

            with m.State("START"):
                is_w = c.op != DmaOp.LOAD
                fast = (delta[:rs] == 0)
                m.d.comb += [
                    self.wsrc.valid.eq(is_w),
                    self.wsrc.payload.space.eq(c.dst_space),
                    self.wsrc.payload.src.eq(
                        Mux(c.op == DmaOp.STORE, WSrc.STORE,
                            Mux(c.op == DmaOp.STORE_T, WSrc.STORE_T,
                                Mux(fast, WSrc.CFAST, WSrc.CSLOW)))),
                ]
                ovl = (c.src_space == c.dst_space) & (c.dst > c.src) & (c.dst < c.src + nbytes)
                with m.If(~is_w | self.wsrc.ready):
                    m.d.sync += [addr.eq(Mux(c.op == DmaOp.LOAD, c.src, c.dst)), desc.eq(ovl),
                                 pos.eq(Mux(ovl, end, c.dst))]
                    with m.Switch(c.op):
                        with m.Case(DmaOp.LOAD, DmaOp.STORE):
                            m.next = "UNIT"
                        with m.Case(DmaOp.STORE_T):
                            m.next = "CHUNK"
                        with m.Default():
                            with m.If(fast):
                                m.next = "FR"
                            with m.Else():
                                first_row = c.dst[rs:]
                                last_row = (end - 1)[rs:]
                                jrow = Mux(ovl, last_row, first_row)
                                m.d.sync += [
                                    crow.eq(jrow),
                                    t.eq(Mux(ovl, Mux((jrow << (rs - bs)) > c.dst[bs:],
                                                      jrow << (rs - bs), c.dst[bs:]),
                                             c.dst[bs:])),
                                ]
                                m.next = "SB"

            # ---- load / store: one vector chunk per unit
            with m.State("UNIT"):
                last = rem <= D
                is_store = c.op == DmaOp.STORE
                m.d.comb += [ua.eq(addr), unb.eq(Mux(last, rem << 1, U))]
                unit_op(Mux(is_store, c.dst_space, c.src_space), is_store, last, 1)
                m.d.comb += [tag.kind.eq(TagKind.LOAD), tag.last.eq(last)]
                need_place = is_store & ~part
                m.d.comb += [
                    self.place.payload.o.eq(uo), self.place.payload.nb.eq(unb),
                    self.place.payload.two.eq(utwo), self.place.payload.last.eq(last),
                ]
                ok = ~need_place | self.place.ready
                m.d.comb += [op.valid.eq(ok), self.place.valid.eq(need_place & op.ready)]
                with m.If(op.ready & ok):
                    with m.If(~part & utwo):
                        m.d.sync += part.eq(1)
                    with m.Else():
                        m.d.sync += [part.eq(0), addr.eq(addr + Mux(c.stride != 0, c.stride, U)),
                                     rem.eq(rem - D)]
                        with m.If(last):
                            m.next = "IDLE"

            # ---- store_t: one l-element chunk per unit, one beat per element
            with m.State("CHUNK"):
                last = rem <= L
                cnt = Signal(range(L + 1))
                m.d.comb += cnt.eq(Mux(last, rem, L))
                o = addr[:rs]
                k0 = o >> bs
                eoff = Signal(rs + 2)
                m.d.comb += eoff.eq(o + (cnt - 1) * U + 1)  # last byte
                two = eoff >= R
                ma, mb = [], []
                for b in range(C):
                    ia = Signal(range(2 * C), name=f"ia{b}")
                    ib = Signal(range(2 * C), name=f"ib{b}")
                    m.d.comb += [ia.eq(b - k0), ib.eq(b + C - k0)]
                    ma.append((b >= k0) & ((ia & (sp - 1)) == 0) & ((ia >> sps) < cnt))
                    mb.append(((ib & (sp - 1)) == 0) & ((ib >> sps) < cnt))
                mask = Mux(part, Cat(mb), Cat(ma))
                m.d.comb += [
                    op.payload.space.eq(c.dst_space), op.payload.write.eq(1),
                    op.payload.row.eq(addr[rs:] + part), op.payload.nrows.eq(1),
                    op.payload.m0.eq(mask), op.payload.m1.eq(mask),
                    op.payload.end.eq(last & (part | ~two)),
                ]
                vlast = (sub == D // L - 1) | last
                s = self.scat.payload
                m.d.comb += [s.o.eq(o), s.cnt.eq(cnt), s.two.eq(two), s.sub.eq(sub),
                             s.vlast.eq(vlast), s.last.eq(last)]
                ok = part | self.scat.ready
                m.d.comb += [op.valid.eq(ok), self.scat.valid.eq(~part & op.ready)]
                with m.If(op.ready & ok):
                    with m.If(~part & two):
                        m.d.sync += part.eq(1)
                    with m.Else():
                        m.d.sync += [part.eq(0), addr.eq(addr + c.stride), rem.eq(rem - L),
                                     sub.eq(Mux(vlast, 0, sub + 1))]
                        with m.If(last):
                            m.next = "IDLE"

            # ---- fast copy: a run of rows, read then write
            run_row = Signal(g.row_bits)
            run_len = Signal(range(g.max_block_rows + 1))
            run_m0 = Signal(C)
            run_m1 = Signal(C)
            run_last = Signal()
            run_next = Signal(ADDR_BITS)
            with m.State("FR"):
                lo = Signal(ADDR_BITS)
                hi = Signal(ADDR_BITS)
                nrow = Signal(g.row_bits + 1)
                bd, bsrc = self._blk_mask(c.dst_space), self._blk_mask(c.src_space)
                kmax = (c.dst - c.src)[rs:]
                with m.If(~desc):
                    rd = pos[rs:]
                    left = (end - 1)[rs:] - rd + 1
                    lim_d = bd + 1 - (rd & bd)
                    lim_s = bsrc + 1 - ((pos + delta)[rs:] & bsrc)
                    n1 = Mux(left < lim_d, left, lim_d)
                    m.d.comb += nrow.eq(Mux(n1 < lim_s, n1, lim_s))
                    stop = (rd + nrow) << rs
                    m.d.comb += [lo.eq(pos), hi.eq(Mux(stop < end, stop, end))]
                with m.Else():
                    rb = (pos - 1)[rs:]
                    left = rb - c.dst[rs:] + 1
                    lim_d = (rb & bd) + 1
                    lim_s = ((pos - 1 + delta)[rs:] & bsrc) + 1
                    n1 = Mux(left < lim_d, left, lim_d)
                    n2 = Mux(n1 < lim_s, n1, lim_s)
                    m.d.comb += nrow.eq(Mux(n2 < kmax, n2, kmax))
                    start = (rb - nrow + 1) << rs
                    m.d.comb += [hi.eq(pos), lo.eq(Mux(start > c.dst, start, c.dst))]
                m0 = suffix_mask(lo[bs:rs], C)
                m1 = prefix_mask((hi - 1)[bs:rs], C)
                lastrun = Mux(desc, lo == c.dst, hi == end)
                m.d.comb += [
                    op.valid.eq(1),
                    op.payload.space.eq(c.src_space), op.payload.write.eq(0),
                    op.payload.row.eq((lo + delta)[rs:]), op.payload.nrows.eq(nrow),
                    op.payload.m0.eq(m0), op.payload.m1.eq(m1),
                    op.payload.end.eq(lastrun & (c.src_space != c.dst_space)),
                    tag.kind.eq(TagKind.CFAST), tag.o.eq(lo[:rs]),
                    tag.nb.eq((hi - 1)[:rs] + 1), tag.last.eq(lastrun),
                ]
                with m.If(op.ready):
                    m.d.sync += [run_row.eq(lo[rs:]), run_len.eq(nrow), run_m0.eq(m0),
                                 run_m1.eq(m1), run_last.eq(lastrun),
                                 run_next.eq(Mux(desc, lo, hi))]
                    m.next = "FW"
            with m.State("FW"):
                m.d.comb += [
                    op.valid.eq(1),
                    op.payload.space.eq(c.dst_space), op.payload.write.eq(1),
                    op.payload.row.eq(run_row), op.payload.nrows.eq(run_len),
                    op.payload.m0.eq(run_m0), op.payload.m1.eq(run_m1),
                    op.payload.end.eq(run_last),
                ]
                with m.If(op.ready):
                    m.d.sync += pos.eq(run_next)
                    m.next = "FR"
                    with m.If(run_last):
                        m.next = "IDLE"

            # ---- slow copy: each destination beat read as a unit, then the row written
            row_lo = Signal(ADDR_BITS)  # first destination byte of row crow
            row_hi = Signal(ADDR_BITS)  # end of it
            rbase = crow << rs
            m.d.comb += [
                row_lo.eq(Mux(rbase > c.dst, rbase, c.dst)),
                row_hi.eq(Mux(rbase + R < end, rbase + R, end)),
            ]
            last_row = Mux(desc, crow == c.dst[rs:], crow == (end - 1)[rs:])
            with m.State("SB"):
                tb = t << bs
                lo = Mux(tb > c.dst, tb, c.dst)
                hi = Mux(tb + W < end, tb + W, end)
                rend = t == (row_hi - 1)[bs:]
                m.d.comb += [ua.eq(lo + delta), unb.eq(hi - lo)]
                unit_op(c.src_space, 0, last_row & rend, c.src_space != c.dst_space)
                m.d.comb += [
                    tag.kind.eq(TagKind.CSLOW), tag.last.eq(last_row & rend),
                    tag.slot.eq(t[:max(1, C.bit_length() - 1)]), tag.fine.eq(lo[:bs]),
                    tag.rend.eq(rend), op.valid.eq(1),
                ]
                with m.If(op.ready):
                    with m.If(~part & utwo):
                        m.d.sync += part.eq(1)
                    with m.Else():
                        m.d.sync += [part.eq(0), t.eq(t + 1)]
                        with m.If(rend):
                            m.next = "SW"
            with m.State("SW"):
                mask = suffix_mask(row_lo[bs:rs], C) & prefix_mask((row_hi - 1)[bs:rs], C)
                m.d.comb += [
                    op.valid.eq(1),
                    op.payload.space.eq(c.dst_space), op.payload.write.eq(1),
                    op.payload.row.eq(crow), op.payload.nrows.eq(1),
                    op.payload.m0.eq(mask), op.payload.m1.eq(mask),
                    op.payload.end.eq(last_row),
                ]
                with m.If(op.ready):
                    nrow_up = crow + 1
                    nrow_dn = crow - 1
                    m.d.sync += [
                        crow.eq(Mux(desc, nrow_dn, nrow_up)),
                        t.eq(Mux(desc, Mux((nrow_dn << (rs - bs)) > c.dst[bs:],
                                           nrow_dn << (rs - bs), c.dst[bs:]),
                                 nrow_up << (rs - bs))),
                    ]
                    m.next = "SB"
                    with m.If(last_row):
                        m.next = "IDLE"
        return m
