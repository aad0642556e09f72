"""``WeightStreamer``: the MPU's weight tiles and conv1d biases (DFX §2.2-2.3; docs/core.md
"Memory system"; isa/spec.yaml ``mat`` format).

Command (:func:`mpu_cmd_layout`, taken at issue): the weights at ``addr`` of ``space``
(tile-aligned: tile (n, k) is the row ``addr / R + n·kt_stride + k``, one beat on every
pseudo-channel), ``kt``, ``nt`` (0 means 65536), ``kt_stride`` (0 means kt), ``interleave`` G,
``batch`` rows (0 means 1), and, with ``bias``, the ``nt·l`` FP16 biases at ``baddr`` of
``bspace`` (2-byte aligned).

For each of the batch rows, block by block (``tile_order(kt, nt, G)`` of rtl/mpu/mpu.py),
the streamer asks for the block's biases (its ``Gb·2l`` bytes: one or two single-row ops)
and then its ``kt·Gb`` tiles, one single-row op each, one op per cycle. Tiles leave on
``tiles`` as they come back (the row *is* the tile: lane j's d weights at bytes ``j·2d``);
bias rows are held and cut into ``Gb`` beats of l FP16 (one per cycle) into a FIFO of
``bias_depth`` beats in front of ``bias``. Asking for each block's biases just before its
tiles keeps the in-order return stream free of deadlock when both are in one space (the MPU
needs a block's biases only after its tiles) as long as ``bias_depth >= G``; deeper lets
the tile stream run ahead of the MPU's drain (:attr:`WeightStreamer.bias_depth`). With G ≤
``max_interleave`` ≤ d a block's biases fit in two rows.
"""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO, SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from ..isa_layouts import LAYOUTS, Space
from ..mpu.mpu import zigzag_interleave
from .extract import Extractor
from .fabric import FabricPort, space_bits
from .geometry import ADDR_BITS, Geometry, prefix_mask, suffix_mask

__all__ = ["WeightStreamer", "mpu_cmd_layout"]

_MAT = LAYOUTS["mat"]


def mpu_cmd_layout(max_interleave: int) -> data.StructLayout:
    """The weight-stream command (module doc)."""
    return data.StructLayout({
        "space": Space, "addr": ADDR_BITS, "kt": _MAT["kt"].shape, "nt": _MAT["nt"].shape,
        "kt_stride": _MAT["kt_stride"].shape, "interleave": range(max_interleave + 1),
        "batch": _MAT["batch"].shape, "bias": 1, "bspace": Space, "baddr": ADDR_BITS,
    })


def _tag_layout(g: Geometry, max_interleave: int) -> data.StructLayout:
    return data.StructLayout({"bias": 1, "o": g.row_shift, "cnt": range(max_interleave + 1),
                              "two": 1, "done": 1})


CMD_DEPTH = 2
"""Weight-stream commands accepted and waiting for the streamer."""


def _pow2_at_least(v: int) -> int:
    return 1 << max(0, (v - 1).bit_length())


class WeightStreamer(wiring.Component):
    """The MPU weight and bias streams (module doc). Parameters: ``geometry``,
    ``max_interleave`` (largest G, at most d), ``bias_depth`` (a power of two >=
    ``max_interleave``); :meth:`from_core` derives both."""

    def __init__(self, geometry: Geometry, *, max_interleave: int, bias_depth: int):
        g = self._g = geometry
        if not isinstance(max_interleave, int) or not 1 <= max_interleave <= g.d:
            raise ValueError(f"max_interleave must be an integer 1..d ({g.d}), "
                             f"not {max_interleave!r}")
        if (not isinstance(bias_depth, int) or bias_depth < max_interleave
                or bias_depth & (bias_depth - 1)):
            raise ValueError(f"bias_depth must be a power of two >= max_interleave "
                             f"({max_interleave}), not {bias_depth!r}")
        self._gmax, self._bias_depth = max_interleave, bias_depth
        self._ext = Extractor(g, 2 * g.l, user_bits=1)
        super().__init__({
            "cmd": In(stream.Signature(mpu_cmd_layout(max_interleave))),
            "tiles": Out(stream.Signature(data.ArrayLayout(data.ArrayLayout(16, g.d), g.l))),
            "bias": Out(stream.Signature(data.ArrayLayout(16, g.l))),
            "mem": Out(FabricPort(g, writes=False)),
        })

    @staticmethod
    def params(core: Any) -> dict[str, int]:
        """G up to the MPU's default block width (rtl/mpu/mpu.py ``zigzag_interleave``); the
        bias FIFO covers the MPU pipeline fill (docs/timing.md "MPU": mul + (log2 d + 1)·add
        + sfu) plus two blocks."""
        mp = core.mpu
        gmax = zigzag_interleave(core.d, core.l, mp.add_latency)
        fill = mp.mul_latency + (core.d.bit_length()) * mp.add_latency + mp.sfu_latency
        return {"max_interleave": gmax, "bias_depth": _pow2_at_least(fill + 2 * gmax)}

    @classmethod
    def from_core(cls, core: Any, geometry: Geometry) -> WeightStreamer:
        return cls(geometry, **cls.params(core))

    @property
    def max_interleave(self) -> int:
        return self._gmax

    @property
    def cmd_depth(self) -> int:
        """Commands accepted and not yet taken by the streamer, at most."""
        return CMD_DEPTH

    @property
    def bias_depth(self) -> int:
        """Bias beats buffered in front of ``bias``."""
        return self._bias_depth

    @property
    def bias_latency(self) -> int:
        """Cycles from a block's last bias row (taken) to its first bias beat on ``bias``:
        the row register, the Extractor (2) and the FIFO (2)."""
        return 1 + self._ext.latency + 2

    def elaborate(self, platform: Any) -> Module:  # noqa: C901 - one FSM
        m = Module()
        g = self._g
        C, R, Lb = g.channels, g.row_bytes, 2 * g.l  # noqa: N806
        rs, bs = g.row_shift, g.beat_shift
        ones = (1 << C) - 1
        tlay = _tag_layout(g, self._gmax)
        mem = self.mem

        # ---- commands: claim at acceptance, queue, then one at a time
        cp = self.cmd.payload
        clay = mpu_cmd_layout(self._gmax)
        m.submodules.cmdq = cmdq = SyncFIFO(width=clay.size, depth=CMD_DEPTH)
        m.d.comb += [
            mem.claim.eq(space_bits(cp.space) | Mux(cp.bias, space_bits(cp.bspace), 0)),
            mem.claim_valid.eq(self.cmd.valid & cmdq.w_rdy),
            self.cmd.ready.eq(cmdq.w_rdy & mem.claim_ok),
            cmdq.w_data.eq(cp), cmdq.w_en.eq(self.cmd.valid & cmdq.w_rdy & mem.claim_ok),
        ]
        c = Signal(clay)
        kt = Mux(c.kt == 0, 1 << 16, c.kt)
        nt = Mux(c.nt == 0, 1 << 16, c.nt)
        kts = Mux(c.kt_stride == 0, kt, c.kt_stride)
        rows = Mux(c.batch == 0, 1, c.batch)
        G = c.interleave  # noqa: N806
        wrow0 = c.addr[rs:]

        row = Signal(range(257))  # batch row
        n0 = Signal(17)  # first group of the block
        gb = Signal(range(self._gmax + 1))  # groups in the block
        k = Signal(17)
        i = Signal(range(self._gmax + 1))
        r_blk = Signal(g.row_bits)  # row of tile (n0, 0)
        r_k = Signal(g.row_bits)  # row of tile (n0, k)
        r_n = Signal(g.row_bits)  # row of tile (n0 + i, k)
        part = Signal()
        m.d.comb += gb.eq(Mux(nt - n0 < G, nt - n0, G))
        last_blk = n0 + gb >= nt
        last_row = row + 1 >= rows
        last_tile = last_row & last_blk & (k + 1 >= kt) & (i + 1 >= gb)

        op = mem.op.payload
        tag = Signal(tlay)
        m.d.comb += op.tag.eq(tag)

        # bias unit of the block: bytes [baddr + n0·2l, + gb·2l)
        ba = c.baddr + n0 * Lb
        bo = ba[:rs]
        bend = Signal(rs + 1)
        m.d.comb += bend.eq(bo + gb * Lb - 1)
        btwo = bend[rs]
        bmask_a = Signal(C)
        bmask_b = Signal(C)
        m.d.comb += [
            bmask_a.eq(suffix_mask(bo >> bs, C) & Mux(btwo, ones, prefix_mask(bend[bs:rs], C))),
            bmask_b.eq(prefix_mask(bend[bs:rs], C)),
        ]

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += cmdq.r_en.eq(1)
                with m.If(cmdq.r_rdy):
                    m.d.sync += c.eq(cmdq.r_data)
                    m.next = "ROW"
            with m.State("ROW"):
                m.d.sync += [n0.eq(0), k.eq(0), i.eq(0), part.eq(0), r_blk.eq(wrow0),
                             r_k.eq(wrow0), r_n.eq(wrow0)]
                m.next = "BIAS"
                with m.If(~c.bias):
                    m.next = "TILE"
            with m.State("BIAS"):
                m.d.comb += [
                    mem.op.valid.eq(1),
                    op.space.eq(c.bspace), op.write.eq(0), op.row.eq(ba[rs:] + part),
                    op.nrows.eq(1), op.m0.eq(Mux(part, bmask_b, bmask_a)),
                    op.m1.eq(Mux(part, bmask_b, bmask_a)),
                    op.end.eq(last_row & last_blk & (part | ~btwo) & (c.bspace != c.space)),
                    tag.bias.eq(1), tag.o.eq(bo), tag.cnt.eq(gb), tag.two.eq(btwo),
                    tag.done.eq(part | ~btwo),
                ]
                with m.If(mem.op.ready):
                    with m.If(~part & btwo):
                        m.d.sync += part.eq(1)
                    with m.Else():
                        m.d.sync += part.eq(0)
                        m.next = "TILE"
            with m.State("TILE"):
                m.d.comb += [
                    mem.op.valid.eq(1),
                    op.space.eq(c.space), op.write.eq(0), op.row.eq(r_n), op.nrows.eq(1),
                    op.m0.eq(ones), op.m1.eq(ones), op.end.eq(last_tile),
                ]
                with m.If(mem.op.ready):
                    with m.If(i + 1 < gb):
                        m.d.sync += [i.eq(i + 1), r_n.eq(r_n + kts)]
                    with m.Elif(k + 1 < kt):
                        m.d.sync += [i.eq(0), k.eq(k + 1), r_k.eq(r_k + 1), r_n.eq(r_k + 1)]
                    with m.Elif(~last_blk):
                        nb = r_blk + gb * kts
                        m.d.sync += [i.eq(0), k.eq(0), n0.eq(n0 + gb), r_blk.eq(nb),
                                     r_k.eq(nb), r_n.eq(nb)]
                        with m.If(c.bias):
                            m.next = "BIAS"
                    with m.Elif(~last_row):
                        m.d.sync += row.eq(row + 1)
                        m.next = "ROW"
                    with m.Else():
                        m.d.sync += row.eq(0)
                        m.next = "IDLE"

        # ---- rows back
        rd = mem.rdata
        rt = tlay(rd.payload.tag[:tlay.size])
        m.d.comb += [self.tiles.payload.eq(rd.payload.data)]
        # bias rows: the first of two passes on (kept by the Extractor), the last is held
        # and replayed once per group with the group's offset
        m.submodules.ext = ext = self._ext
        hold_v = Signal()
        hold = Signal(8 * R)
        h_o = Signal(rs)
        h_cnt = Signal(range(self._gmax + 1))
        h_two = Signal()
        h_i = Signal(range(self._gmax + 1))
        pass_first = rd.valid & rt.bias & ~rt.done
        take_last = rd.valid & rt.bias & rt.done & ~hold_v
        er = ext.row.payload
        ofull = Signal(rs + 1)  # the group's offset in the (one or two row) window
        m.d.comb += ofull.eq(h_o + h_i * Lb)
        with m.If(hold_v):
            # a group wholly in the second row is cut from the held row alone
            m.d.comb += [
                er.data.eq(hold), er.o.eq(ofull[:rs]), er.nbytes.eq(Lb),
                er.two.eq(h_two & ~ofull[rs]), er.done.eq(1), er.user.eq(0),
                ext.row.valid.eq(1),
            ]
        with m.Else():
            m.d.comb += [
                er.data.eq(rd.payload.data), er.o.eq(rt.o), er.nbytes.eq(Lb), er.two.eq(0),
                er.done.eq(0), ext.row.valid.eq(pass_first),
            ]
        with m.If(take_last):
            m.d.sync += [hold_v.eq(1), hold.eq(rd.payload.data), h_o.eq(rt.o),
                         h_cnt.eq(rt.cnt), h_two.eq(rt.two), h_i.eq(0)]
        with m.If(hold_v & ext.row.ready):
            m.d.sync += h_i.eq(h_i + 1)
            with m.If(h_i + 1 >= h_cnt):
                m.d.sync += hold_v.eq(0)
        m.d.comb += [
            self.tiles.valid.eq(rd.valid & ~rt.bias),
            rd.ready.eq(Mux(rt.bias, Mux(rt.done, ~hold_v, ~hold_v & ext.row.ready),
                            self.tiles.ready)),
        ]
        m.submodules.biasq = bq = SyncFIFOBuffered(width=16 * g.l, depth=self._bias_depth)
        m.d.comb += [
            bq.w_data.eq(ext.unit.payload.data), bq.w_en.eq(ext.unit.valid),
            ext.unit.ready.eq(bq.w_rdy),
            self.bias.payload.eq(bq.r_data), self.bias.valid.eq(bq.r_rdy),
            bq.r_en.eq(self.bias.ready),
        ]
        return m
