"""``MpuPort``: the matrix operand collector (DFX §2.6) around the :class:`~dfx.rtl.mpu.Mpu`.

For each matrix instruction (conv1d, maskedmm, mm) and each of its ``batch`` input rows it
sends the MPU one command and, in the MPU's tile order (:func:`dfx.rtl.mpu.tile_order`, block
width ``Mpu.interleave``), pairs every weight tile arriving from the memory system with the
input vector ``x[row * kt + k]`` it multiplies. Each x read waits until the vector is available
(chaining) and the x buffer has room; reads run ahead of the tiles by up to ``X_SLOTS``.
Outputs are written to ``y + row * ceil(nt * l / d) + j`` as the MPU produces them, row maxima
(maskedmm) to ``s{max + row}``; conv1d biases come from the memory system's bias stream.

Cycle rules: a command taken from the queue in cycle t reads its first x in t + 1 (after the
row's MPU command has been accepted); an x read in cycle r can meet its tile in r + 1; x's
reader entry is retired with the instruction's last x read.

Row masks: maskedmm masks output column j of row i when ``j > r{limit} + i``; the bound goes
to the MPU clamped to -1 .. 2^31 - 1 (every column masked .. none), which keeps its meaning.
"""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from dfx.rtl.isa_layouts import LAYOUTS, Opcode
from dfx.rtl.issue.ports import AdvanceSignature, CheckSignature, DoneSignature
from dfx.rtl.leaves import Leaf, add_leaf
from dfx.rtl.mpu import Mpu
from dfx.rtl.mpu.mpu import command_layout as mpu_command_layout
from dfx.rtl.regs.srf import SrfWriteSignature
from dfx.rtl.vrf.vrf import VrfReadSignature, VrfWriteSignature

__all__ = ["OUT_DEPTH", "X_SLOTS", "MpuPort"]

X_SLOTS = 4
"""Input vectors read ahead of their tiles."""
OUT_DEPTH = 8
"""Instructions taken whose outputs (and row maxima) are not all written, at most."""

_OUT = data.StructLayout({"y": unsigned(32), "n": unsigned(32), "wid": unsigned(16),
                          "max": unsigned(8), "rows": unsigned(9), "rowmax": unsigned(1)})
"""Where an instruction's outputs go: y base, vectors (batch * yv), writer entry, s{max},
rows, and whether it has row maxima."""


class MpuPort(wiring.Component):
    """The MPU and its operand collector (module doc). ``cmd_layout``: the issue command
    layout; ``writers``/``readers``: scoreboard table sizes; ``mpu``: the unit (default
    ``Mpu.from_core(core)``); ``leaf``: how the default unit adds its arithmetic leaves
    (:mod:`dfx.rtl.leaves`).

    Ports: ``cmd`` (in), ``tiles`` (in: the weight tiles of each row in tile order, l lanes
    of d FP16 each), ``bias`` (in: l FP16 per output group, conv1d rows only), ``rx`` (VRF
    read), ``w`` (VRF write), ``check``, ``adv``, ``done``, ``srf``, ``idle``.
    """

    def __init__(self, core: Any, cmd_layout: data.StructLayout, *, writers: int,
                 readers: int, mpu: Mpu | None = None, leaf: Leaf = add_leaf):
        self._core = core
        self._mpu = mpu if mpu is not None else Mpu.from_core(core, leaf=leaf)
        v, d, l = core.buffers.vrf_vectors, core.d, core.l  # noqa: E741
        self._cmd_layout = cmd_layout
        super().__init__({
            "cmd": In(stream.Signature(cmd_layout)),
            "tiles": In(stream.Signature(data.ArrayLayout(data.ArrayLayout(16, d), l))),
            "bias": In(stream.Signature(data.ArrayLayout(16, l))),
            "rx": Out(VrfReadSignature(v, d)),
            "w": Out(VrfWriteSignature(v, d)),
            "check": Out(CheckSignature(v, writers)),
            "adv": Out(AdvanceSignature(writers)),
            "done": Out(DoneSignature(readers)),
            "srf": Out(SrfWriteSignature(core.buffers.srf_scalars)),
            "idle": Out(1),
        })

    @property
    def mpu(self) -> Mpu:
        return self._mpu

    @property
    def x_slots(self) -> int:
        """x vectors read ahead of their tiles, at most."""
        return X_SLOTS

    @property
    def out_depth(self) -> int:
        """Instructions with outputs outstanding, at most (the port takes no more)."""
        return OUT_DEPTH

    def elaborate(self, platform: Any) -> Module:  # noqa: C901 - one stream each
        m = Module()
        core = self._core
        d, l = core.d, core.l  # noqa: E741
        G = self._mpu.interleave  # noqa: N806
        m.submodules.mpu = mpu = self._mpu
        m.submodules.xbuf = xbuf = SyncFIFO(width=16 * d, depth=X_SLOTS)
        m.submodules.outs = outs = SyncFIFO(width=_OUT.size, depth=OUT_DEPTH)
        m.submodules.maxs = maxs = SyncFIFO(width=_OUT.size, depth=OUT_DEPTH)

        # ---- the instruction being read ------------------------------------------------
        cur = Signal(self._cmd_layout)
        mat = data.View(LAYOUTS["mat"], cur.word)
        active = Signal()  # reading x of the current instruction
        row = Signal(9)
        rows = Signal(9)
        kt = Signal(17)
        nt = Signal(17)
        started = Signal()  # this row's MPU command has been sent
        k = Signal(17)
        g = Signal(range(max(2, G)))
        base = Signal(17)
        gb_m1 = Signal(range(max(2, G)))
        rem = Signal(17)
        m.d.comb += [rem.eq(nt - base), gb_m1.eq(Mux(rem >= G, G - 1, rem - 1))]

        x_addr = Signal(32)
        m.d.comb += x_addr.eq(cur.val[1] + row * kt + k)
        m.d.comb += [self.check.v.eq(x_addr), self.check.own.eq(cur.wid),
                     self.check.has_own.eq(1)]
        inflight = Signal()
        read = Signal()
        m.d.comb += read.eq(active & started & (xbuf.level + inflight < X_SLOTS)
                            & self.check.ok)
        m.d.comb += [self.rx.addr.eq(x_addr), self.rx.en.eq(read)]
        m.d.sync += inflight.eq(read)

        last_in_block = g == gb_m1
        last_k = k == kt - 1
        last_block = rem <= G
        last_of_row = last_in_block & last_k & last_block
        last_row = row + 1 == rows
        last_read = read & last_of_row & last_row
        with m.If(read):
            with m.If(last_in_block):
                m.d.sync += g.eq(0)
                with m.If(last_k):
                    m.d.sync += k.eq(0)
                    with m.If(last_block):
                        m.d.sync += [base.eq(0), row.eq(row + 1), started.eq(0)]
                    with m.Else():
                        m.d.sync += base.eq(base + G)
                with m.Else():
                    m.d.sync += k.eq(k + 1)
            with m.Else():
                m.d.sync += g.eq(g + 1)
        m.d.comb += [self.done.en.eq(last_read), self.done.idx.eq(cur.rid0)]

        # ---- the row's MPU command ---------------------------------------------------------
        mc = Signal(mpu_command_layout())
        is_conv = cur.op == Opcode.CONV1D
        is_masked = cur.op == Opcode.MASKEDMM
        lim = Signal(signed(64))
        m.d.comb += lim.eq(cur.limit + row)
        m.d.comb += [
            mc.kt.eq(kt), mc.nt.eq(nt),
            mc.use_bias.eq(is_conv), mc.use_scale.eq(is_masked), mc.scale.eq(cur.s0),
            mc.mask.eq(is_masked), mc.rowmax.eq(is_masked), mc.gelu.eq(is_conv & mat.gelu),
            mc.limit.eq(Mux(lim < -1, -1, Mux(lim > 0x7FFFFFFF, 0x7FFFFFFF, lim))),
            mpu.cmd.payload.eq(mc),
            mpu.cmd.valid.eq(active & ~started & (row < rows)),
        ]
        with m.If(mpu.cmd.valid & mpu.cmd.ready):
            m.d.sync += started.eq(1)

        # ---- taking the next instruction ------------------------------------------------
        p = self.cmd.payload
        pm = data.View(LAYOUTS["mat"], p.word)
        p_batch = Mux(pm.batch == 0, 1, pm.batch)
        p_yv = (p.val[5] * l + (d - 1)) >> (d.bit_length() - 1)
        free = ~active | last_read
        take = Signal()
        m.d.comb += [take.eq(self.cmd.valid & free & outs.w_rdy & maxs.w_rdy),
                     self.cmd.ready.eq(take)]
        with m.If(take):
            m.d.sync += [cur.eq(p), active.eq(1), row.eq(0), rows.eq(p_batch),
                         kt.eq(p.val[4]), nt.eq(p.val[5]), started.eq(0), k.eq(0), g.eq(0),
                         base.eq(0)]
        with m.Elif(last_read):
            m.d.sync += active.eq(0)
        rec = Signal(_OUT)
        m.d.comb += [rec.y.eq(p.val[0]), rec.n.eq(p_batch * p_yv), rec.wid.eq(p.wid),
                     rec.max.eq(pm.max), rec.rows.eq(p_batch),
                     rec.rowmax.eq(p.op == Opcode.MASKEDMM),
                     outs.w_en.eq(take), outs.w_data.eq(rec),
                     maxs.w_en.eq(take & (p.op == Opcode.MASKEDMM)), maxs.w_data.eq(rec)]

        # ---- x meets its tile ---------------------------------------------------------------
        fresh = self.rx.data.as_value()
        head = Signal(16 * d)
        have_x = xbuf.r_rdy | inflight
        m.d.comb += head.eq(Mux(xbuf.r_rdy, xbuf.r_data, fresh))
        pair = have_x & self.tiles.valid
        m.d.comb += [
            mpu.tiles.valid.eq(pair),
            mpu.tiles.payload.x.eq(head),
            mpu.tiles.payload.w.eq(self.tiles.payload),
            self.tiles.ready.eq(have_x & mpu.tiles.ready),
        ]
        used = pair & mpu.tiles.ready
        m.d.comb += [xbuf.r_en.eq(used & xbuf.r_rdy),
                     xbuf.w_en.eq(inflight & ~(used & ~xbuf.r_rdy)), xbuf.w_data.eq(fresh)]
        wiring.connect(m, wiring.flipped(self.bias), mpu.bias)

        # ---- results: vectors and row maxima, each in instruction order -------------------
        r = data.View(_OUT, outs.r_data)
        mx = data.View(_OUT, maxs.r_data)
        j = Signal(32)  # output vectors of the current instruction written so far
        mrow = Signal(9)  # row maxima of the current maskedmm written so far
        m.d.comb += [
            mpu.out.ready.eq(1),
            self.w.en.eq(mpu.out.valid), self.w.addr.eq(r.y + j),
            self.w.data.eq(mpu.out.payload.data),
            self.adv.en.eq(mpu.out.valid), self.adv.idx.eq(r.wid),
            mpu.rowmax.ready.eq(1),
            self.srf.en.eq(mpu.rowmax.valid), self.srf.idx.eq(mx.max + mrow),
            self.srf.value.eq(mpu.rowmax.payload),
        ]
        out_done = mpu.out.valid & (j + 1 == r.n)
        max_done = mpu.rowmax.valid & (mrow + 1 == mx.rows)
        with m.If(mpu.out.valid):
            m.d.sync += j.eq(Mux(out_done, 0, j + 1))
        with m.If(mpu.rowmax.valid):
            m.d.sync += mrow.eq(Mux(max_done, 0, mrow + 1))
        m.d.comb += [outs.r_en.eq(out_done), maxs.r_en.eq(max_done)]
        m.d.comb += self.idle.eq(~active & ~outs.r_rdy & ~maxs.r_rdy & ~xbuf.r_rdy & ~inflight)
        return m
