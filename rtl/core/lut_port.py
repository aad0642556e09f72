"""``LutPort``: the LUT-GEMM unit (Park et al., ICLR 2024) with its operand collector and the
MPU's epilogue (``lutmv``, docs/lutgemm.md).

For each ``lutmv`` and each of its ``batch`` input rows the port sends the unit one command
(``n``, ``ng``, ``gs``, ``q``), reads the input vectors ``x[row * kv + k]`` from the VRF (each no
earlier than it is available: chaining) and cuts them into the unit's slices of
``S = core.lutgemm.slice`` inputs; the sign and scale beats come straight from the memory
system. The unit's FP32 row accumulators then go, ``le = min(scalers, d)`` rows per cycle,
through an :class:`~dfx.rtl.mpu.SfuM` of ``le`` lanes: bias (from the memory system's bias
stream, ``d`` FP16 per beat), rounding to FP16 and GELU, exactly the golden ``lutmv``
epilogue; its vectorizer packs them into ``ceil(n / d)`` VRF vectors per row (elements past
``n`` are +0), written to ``y + row * ceil(n / d) + j``.

Requires ``d`` to be a multiple of ``S``.
"""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from dfx.isa.golden import tables as gtab
from dfx.rtl.arith.fp32_to_fp16 import DEFAULT_CVT_LATENCY
from dfx.rtl.isa_layouts import LAYOUTS
from dfx.rtl.issue.ports import AdvanceSignature, CheckSignature, DoneSignature
from dfx.rtl.leaves import Leaf, add_leaf
from dfx.rtl.lutgemm import LutGemm
from dfx.rtl.mpu import SfuM
from dfx.rtl.vrf.vrf import VrfReadSignature, VrfWriteSignature

__all__ = ["LutPort"]

X_SLOTS = 2
"""Input vectors read ahead of the unit's x stream."""
OUT_DEPTH = 8
"""Instructions taken whose outputs are not all written, at most."""
EPI_DEPTH = 8
"""Rows (unit commands) waiting for or in the epilogue, at most."""

_OUT = data.StructLayout({"y": unsigned(32), "rows": unsigned(9), "yv": unsigned(20),
                          "wid": unsigned(16)})
_EPI = data.StructLayout({"n": unsigned(20), "bias": unsigned(1), "gelu": unsigned(1)})


class LutPort(wiring.Component):
    """The LUT-GEMM unit, its operand collector and epilogue (module doc). Ports: ``cmd``,
    ``signs``/``scales`` (in, from the memory system, as :class:`~dfx.rtl.lutgemm.LutGemm`
    takes them), ``bias`` (in: ``d`` FP16 per beat, ``ceil(n/d)`` beats per row with a bias),
    ``rx``, ``w``, ``check``, ``adv``, ``done``, ``idle``. ``leaf``: how the default unit adds
    its lanes and scalers and the epilogue its arithmetic leaves (:mod:`dfx.rtl.leaves`)."""

    def __init__(self, core: Any, cmd_layout: data.StructLayout, *, writers: int,
                 readers: int, lut: LutGemm | None = None, leaf: Leaf = add_leaf):
        if core.lutgemm is None:
            raise ValueError(f"core {core.name} has no lutgemm section")
        self._core = core
        self._lut = lut if lut is not None else LutGemm.from_core(core, leaf=leaf)
        d = core.d
        s = self._lut.slice
        if d % s:
            raise ValueError(f"d = {d} must be a multiple of the LUT-GEMM slice ({s} inputs)")
        self._le = min(self._lut.scalers, d)
        mpu = core.mpu
        self._epi = SfuM(d, self._le, add_latency=mpu.add_latency,
                         scale_latency=mpu.mul_latency, cvt_latency=DEFAULT_CVT_LATENCY,
                         gelu_table=gtab.table_from_spec("gelu", core.tables.gelu),
                         gelu_latency=mpu.sfu_latency, leaf=leaf)
        v = core.buffers.vrf_vectors
        self._cmd_layout = cmd_layout
        super().__init__({
            "cmd": In(stream.Signature(cmd_layout)),
            "signs": In(stream.Signature(data.ArrayLayout(s, self._lut.lanes))),
            "scales": In(stream.Signature(
                data.ArrayLayout(16, self._lut.scalers * (self._lut.max_q + 1)))),
            "bias": In(stream.Signature(data.ArrayLayout(16, d))),
            "rx": Out(VrfReadSignature(v, d)),
            "w": Out(VrfWriteSignature(v, d)),
            "check": Out(CheckSignature(v, writers)),
            "adv": Out(AdvanceSignature(writers)),
            "done": Out(DoneSignature(readers)),
            "idle": Out(1),
        })

    @property
    def lut(self) -> LutGemm:
        return self._lut

    @property
    def epilogue(self) -> SfuM:
        return self._epi

    @property
    def bias_slots(self) -> int:
        """Bias vectors buffered: one whole row of the largest lutmv, ceil(max_rows / d) (the
        memory system reads a row's bias before its stream; docs/core.md)."""
        return -(-self._lut.max_rows // self._core.d)

    @property
    def x_slots(self) -> int:
        """x vectors read ahead of the unit, at most."""
        return X_SLOTS

    @property
    def out_depth(self) -> int:
        """Instructions with outputs outstanding, at most (the port takes no more)."""
        return OUT_DEPTH

    @property
    def epilogue_depth(self) -> int:
        """Rows sent to the unit whose epilogue is not done, at most."""
        return EPI_DEPTH

    @property
    def epilogue_latency(self) -> int:
        """From a group of ``epilogue_lanes`` rows into the epilogue to the vector they
        complete, written into the VRF (the SfuM's latency: no output buffer)."""
        return self._epi.latency

    @property
    def epilogue_lanes(self) -> int:
        """Rows per cycle through the epilogue: min(scalers, d)."""
        return self._le

    def elaborate(self, platform: Any) -> Module:  # noqa: C901 - three streams
        m = Module()
        core = self._core
        d, le = core.d, self._le
        s = self._lut.slice
        sc = self._lut.scalers
        m.submodules.lut = lut = self._lut
        m.submodules.epi = epi = self._epi
        m.submodules.xbuf = xbuf = SyncFIFO(width=16 * d, depth=X_SLOTS)
        m.submodules.outs = outs = SyncFIFO(width=_OUT.size, depth=OUT_DEPTH)
        m.submodules.epis = epis = SyncFIFO(width=_EPI.size, depth=EPI_DEPTH)
        # a whole row of bias: the memory system sends it before the row's stream, and the
        # epilogue only needs it once the unit's results come (after the whole stream)
        m.submodules.biasq = biasq = SyncFIFO(width=16 * d, depth=self.bias_slots)
        m.d.comb += [biasq.w_data.eq(self.bias.payload), biasq.w_en.eq(self.bias.valid),
                     self.bias.ready.eq(biasq.w_rdy)]
        bias_data = data.View(data.ArrayLayout(16, d), biasq.r_data)
        wiring.connect(m, wiring.flipped(self.signs), lut.signs)
        wiring.connect(m, wiring.flipped(self.scales), lut.scales)

        # ---- the instruction being read: rows, x vectors --------------------------------
        cur = Signal(self._cmd_layout)
        lv = data.View(LAYOUTS["lut"], cur.word)
        active = Signal()
        row = Signal(9)
        rows = Signal(9)
        started = Signal()
        kv = Signal(32)  # x vectors per row
        kx = Signal(32)  # x vectors of this row read so far
        x_addr = Signal(32)
        m.d.comb += [x_addr.eq(cur.val[1] + row * kv + kx),
                     self.check.v.eq(x_addr), self.check.own.eq(cur.wid),
                     self.check.has_own.eq(1)]
        inflight = Signal()
        read = Signal()
        m.d.comb += read.eq(active & started & (xbuf.level + inflight < X_SLOTS)
                            & self.check.ok)
        m.d.comb += [self.rx.addr.eq(x_addr), self.rx.en.eq(read)]
        m.d.sync += inflight.eq(read)
        row_done = read & (kx + 1 == kv)
        last_read = row_done & (row + 1 == rows)
        with m.If(read):
            m.d.sync += kx.eq(kx + 1)
        with m.If(row_done):
            m.d.sync += [kx.eq(0), row.eq(row + 1), started.eq(0)]
        m.d.comb += [self.done.en.eq(last_read), self.done.idx.eq(cur.rid0)]

        # the row's unit command
        m.d.comb += [
            lut.cmd.payload.n.eq(cur.val[4]), lut.cmd.payload.ng.eq(cur.val[5]),
            lut.cmd.payload.gs.eq(lv.gs), lut.cmd.payload.q.eq(lv.q),
            lut.cmd.valid.eq(active & ~started & (row < rows) & epis.w_rdy),
        ]
        rec = Signal(_EPI)
        m.d.comb += [rec.n.eq(cur.val[4]), rec.bias.eq(lv.bias), rec.gelu.eq(lv.gelu),
                     epis.w_en.eq(lut.cmd.valid & lut.cmd.ready), epis.w_data.eq(rec)]
        with m.If(lut.cmd.valid & lut.cmd.ready):
            m.d.sync += started.eq(1)

        # the next instruction
        p = self.cmd.payload
        pl = data.View(LAYOUTS["lut"], p.word)
        p_batch = Mux(pl.batch == 0, 1, pl.batch)
        p_k = p.val[5] * pl.gs * s
        p_kv = (p_k + (d - 1)) >> (d.bit_length() - 1)
        p_yv = (p.val[4] + (d - 1)) >> (d.bit_length() - 1)
        take = Signal()
        m.d.comb += [take.eq(self.cmd.valid & (~active | last_read) & outs.w_rdy),
                     self.cmd.ready.eq(take)]
        with m.If(take):
            m.d.sync += [cur.eq(p), active.eq(1), row.eq(0), rows.eq(p_batch), kv.eq(p_kv),
                         kx.eq(0), started.eq(0)]
        with m.Elif(last_read):
            m.d.sync += active.eq(0)
        orec = Signal(_OUT)
        m.d.comb += [orec.y.eq(p.val[0]), orec.rows.eq(p_batch), orec.yv.eq(p_yv),
                     orec.wid.eq(p.wid), outs.w_en.eq(take), outs.w_data.eq(orec)]

        # ---- x vectors cut into slices; a row's last vector may hold unneeded inputs ----
        m.submodules.xrows = xrows = SyncFIFO(width=32, depth=4)  # slices per row
        m.d.comb += [xrows.w_en.eq(lut.cmd.valid & lut.cmd.ready),
                     xrows.w_data.eq(cur.val[5] * lv.gs)]
        fresh = self.rx.data.as_value()
        have = xbuf.r_rdy | inflight
        head = Mux(xbuf.r_rdy, xbuf.r_data, fresh)
        per = d // s
        piece = Signal(range(max(2, per)))
        given = Signal(32)  # slices of the current row given to the unit
        row_end = given + 1 == xrows.r_data
        beat = lut.x.valid & lut.x.ready
        take_vec = beat & ((piece == per - 1) | row_end)
        m.d.comb += [
            lut.x.valid.eq(have & xrows.r_rdy),
            lut.x.payload.eq(head.word_select(piece, 16 * s)),
            xbuf.r_en.eq(take_vec & xbuf.r_rdy),
            xbuf.w_en.eq(inflight & ~(take_vec & ~xbuf.r_rdy)), xbuf.w_data.eq(fresh),
            xrows.r_en.eq(beat & row_end),
        ]
        with m.If(beat):
            m.d.sync += [piece.eq(Mux(take_vec, 0, piece + 1)),
                         given.eq(Mux(row_end, 0, given + 1))]

        # ---- the epilogue ---------------------------------------------------------------------
        e = data.View(_EPI, epis.r_data)
        groups_per_beat = max(1, sc // le)
        gsub = Signal(range(max(2, groups_per_beat)))  # group within the unit's output beat
        g = Signal(20)  # group of the current row
        need = (e.n + (le - 1)) >> (le.bit_length() - 1)  # groups to feed
        last_g = g + 1 == need
        bsub = Signal(range(max(2, d // le)))  # group within the bias beat
        bias_ok = ~e.bias | biasq.r_rdy
        feed = Signal()
        m.d.comb += feed.eq(epis.r_rdy & lut.out.valid & bias_ok)
        for j in range(le):
            m.d.comb += [
                epi.acc[j].eq(lut.out.payload.data[(gsub * le + j) if groups_per_beat > 1
                                                   else j]),
                epi.bias[j].eq(Mux(e.bias, bias_data[(bsub * le + j) if d // le > 1 else j],
                                   0)),
            ]
        m.d.comb += [
            epi.use_bias.eq(e.bias), epi.use_scale.eq(0), epi.scale.eq(0), epi.masked.eq(0),
            epi.mask.eq(0), epi.gelu.eq(e.gelu), epi.rowmax.eq(0),
            epi.slot.eq(g[: max(0, (d // le).bit_length() - 1)] if d > le else 0),
            epi.last.eq(last_g), epi.valid_in.eq(feed), epi.en.eq(1),
        ]
        beat_end = gsub == groups_per_beat - 1
        m.d.comb += lut.out.ready.eq(feed & (beat_end | last_g))
        with m.If(feed):
            m.d.sync += [g.eq(Mux(last_g, 0, g + 1)),
                         gsub.eq(Mux(last_g | (gsub == groups_per_beat - 1), 0, gsub + 1))]
        bias_end = (bsub == (d // le) - 1) | last_g
        m.d.comb += biasq.r_en.eq(feed & e.bias & bias_end)
        with m.If(feed & e.bias):
            m.d.sync += bsub.eq(Mux(bias_end, 0, bsub + 1))
        m.d.comb += epis.r_en.eq(feed & last_g)

        # ---- results into the VRF ---------------------------------------------------------------
        o = data.View(_OUT, outs.r_data)
        j = Signal(32)
        total = o.rows * o.yv
        m.d.comb += [
            self.w.en.eq(epi.vec_valid), self.w.addr.eq(o.y + j),
            self.adv.en.eq(epi.vec_valid), self.adv.idx.eq(o.wid),
        ]
        for i in range(d):
            m.d.comb += self.w.data[i].eq(epi.vec[i])
        done_all = epi.vec_valid & (j + 1 == total)
        with m.If(epi.vec_valid):
            m.d.sync += j.eq(Mux(done_all, 0, j + 1))
        m.d.comb += outs.r_en.eq(done_all)
        m.d.comb += self.idle.eq(~active & ~outs.r_rdy & ~epis.r_rdy & ~xbuf.r_rdy & ~inflight)
        return m
