"""``VpuPort``: the VPU's operand collector (DFX §2.6 "vector operand collector") around the
:class:`~dfx.rtl.vpu.Vpu`.

For each command from issue (in order) it queues the VPU command (op, count, the scalars read
at issue) and reads the source vectors ``a[i]`` (and ``b[i]``) from the VRF, each in the first
cycle in which the scoreboard says it is available (chaining) and the operand buffer has room,
one per cycle. The reads of the next command start in the cycle after the last read of the
previous one (the VPU command queue lets the reader run ahead of the VPU), so back-to-back
instructions stream without a gap. Element-wise results are written to ``y + j`` in the cycle
they leave the VPU (the scoreboard counts them); scalar results go to ``s{sd}`` (vacc, vaccsq,
vmax, scalar ops) or, for vargmax, to ``r{rd}`` through the controller, in the cycle the VPU
presents them.

Cycle rules: a command leaves the issue queue in cycle t (the reader is free, or reads the
previous command's last vector in t) and its first vector can be read in t + 1; a vector read
in cycle r enters the VPU in r + 1 at the earliest (the VPU's ``a``/``b`` streams; the operand
buffer holds it while the VPU is busy); a source reader entry is retired in the cycle of its
last read.
"""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from dfx.rtl.isa_layouts import LAYOUTS, Opcode
from dfx.rtl.issue.ports import AdvanceSignature, CheckSignature, DoneSignature, IntWriteSignature
from dfx.rtl.leaves import Leaf, add_leaf
from dfx.rtl.regs.srf import SrfWriteSignature
from dfx.rtl.vpu import Vpu
from dfx.rtl.vpu.vpu import Command as VpuCommand
from dfx.rtl.vrf.vrf import VrfReadSignature, VrfWriteSignature

__all__ = ["COMMAND_SLOTS", "OPERAND_SLOTS", "SCALAR_DESTS", "VECTOR_DESTS", "VpuPort"]

_TWO_SOURCES = (Opcode.VADD, Opcode.VSUB, Opcode.VMUL)
_SCALAR_OPS = (Opcode.SADD, Opcode.SSUB, Opcode.SMUL, Opcode.SRECIP, Opcode.SRSQRT)
_VECTOR_OUT = (Opcode.VADD, Opcode.VSUB, Opcode.VMUL, Opcode.VADDS, Opcode.VSUBS,
               Opcode.VMULS, Opcode.VEXP, Opcode.VGELU, Opcode.VMOV)

OPERAND_SLOTS = 4
"""Vector pairs read ahead of the VPU: the VRF's read latency plus slack for the VPU's
command hand-over."""
COMMAND_SLOTS = 2
"""VPU commands queued between the port's reader and the VPU."""
VECTOR_DESTS = 16
"""Commands with vector results in flight (taken, last result not yet written)."""
SCALAR_DESTS = 4
"""Commands with a scalar result in flight."""

KIND_VECTOR, KIND_SCALAR, KIND_INT = 0, 1, 2

_DEST = data.StructLayout({"kind": unsigned(2), "tgt": unsigned(32), "n": unsigned(32),
                           "wid": unsigned(16)})
"""Where a command's results go: kind, VRF base / s index / r index, vectors, writer entry."""


class VpuPort(wiring.Component):
    """The VPU and its operand collector (module doc). ``cmd_layout``: the issue command
    layout (:func:`dfx.rtl.issue.issue.command_layout`); ``writers``/``readers``: scoreboard
    table sizes; ``vpu``: the unit (default ``Vpu.from_core(core)``); ``leaf``: how the
    default unit adds its arithmetic leaves (:mod:`dfx.rtl.leaves`)."""

    def __init__(self, core: Any, cmd_layout: data.StructLayout, *, writers: int,
                 readers: int, vpu: Vpu | None = None, leaf: Leaf = add_leaf):
        self._core = core
        self._vpu = vpu if vpu is not None else Vpu.from_core(core, leaf=leaf)
        v, d = core.buffers.vrf_vectors, core.d
        self._cmd_layout = cmd_layout
        super().__init__({
            "cmd": In(stream.Signature(cmd_layout)),
            "ra": Out(VrfReadSignature(v, d)),
            "rb": Out(VrfReadSignature(v, d)),
            "w": Out(VrfWriteSignature(v, d)),
            "check_a": Out(CheckSignature(v, writers)),
            "check_b": Out(CheckSignature(v, writers)),
            "adv": Out(AdvanceSignature(writers)),
            "done_a": Out(DoneSignature(readers)),
            "done_b": Out(DoneSignature(readers)),
            "srf": Out(SrfWriteSignature(core.buffers.srf_scalars)),
            "rd": Out(IntWriteSignature()),
            "idle": Out(1),
        })

    @property
    def vpu(self) -> Vpu:
        return self._vpu

    # -- figures the timing model reads (docs/timing.md "VPU") ------------------------------
    @property
    def operand_slots(self) -> int:
        """Vectors read and not yet taken by the VPU, at most."""
        return OPERAND_SLOTS

    @property
    def command_slots(self) -> int:
        """VPU commands taken by the port and not yet by the VPU, at most."""
        return COMMAND_SLOTS

    @property
    def vector_dests(self) -> int:
        """Commands with vector results outstanding, at most (the port takes no more)."""
        return VECTOR_DESTS

    @property
    def scalar_dests(self) -> int:
        """Commands with a scalar result outstanding, at most."""
        return SCALAR_DESTS

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        d = self._core.d
        m.submodules.vpu = vpu = self._vpu
        m.submodules.vcmd = vcmd = SyncFIFO(width=VpuCommand.size, depth=COMMAND_SLOTS)
        # results leave the VPU in command order per kind (vectors / scalars), not across kinds
        m.submodules.vdests = vdests = SyncFIFO(width=_DEST.size, depth=VECTOR_DESTS)
        m.submodules.sdests = sdests = SyncFIFO(width=_DEST.size, depth=SCALAR_DESTS)
        m.submodules.ops = ops = SyncFIFO(width=32 * d, depth=OPERAND_SLOTS)

        # ---- the reader: source vectors of the current command --------------------------
        cur = Signal(self._cmd_layout)
        nvec = Signal(32)  # source vectors still to read (0: free for the next command)
        idx = Signal(32)
        two = Signal()
        m.d.comb += two.eq(Cat(*(cur.op == o for o in _TWO_SOURCES)).any())
        a_addr, b_addr = cur.val[1] + idx, cur.val[2] + idx
        for chk, addr in ((self.check_a, a_addr), (self.check_b, b_addr)):
            m.d.comb += [chk.v.eq(addr), chk.own.eq(cur.wid), chk.has_own.eq(1)]
        inflight = Signal()  # a read issued last cycle (data not yet in `ops`)
        read = Signal()
        m.d.comb += read.eq((nvec != 0) & (ops.level + inflight < OPERAND_SLOTS)
                            & self.check_a.ok & (~two | self.check_b.ok))
        m.d.comb += [self.ra.addr.eq(a_addr), self.ra.en.eq(read),
                     self.rb.addr.eq(b_addr), self.rb.en.eq(read & two)]
        m.d.sync += inflight.eq(read)
        fresh = Signal(32 * d)  # the pair read last cycle, straight from the VRF
        m.d.comb += fresh.eq((self.rb.data.as_value() << (16 * d)) | self.ra.data.as_value())
        last_read = read & (nvec == 1)
        with m.If(read):
            m.d.sync += [nvec.eq(nvec - 1), idx.eq(idx + 1)]
        m.d.comb += [self.done_a.en.eq(last_read), self.done_a.idx.eq(cur.rid0),
                     self.done_b.en.eq(last_read & two), self.done_b.idx.eq(cur.rid1)]

        # ---- taking the next command ----------------------------------------------------
        p = self.cmd.payload
        n_in = p.val[3]
        reads_of = Signal(32)
        with m.Switch(p.op):
            with m.Case(*_SCALAR_OPS):
                m.d.comb += reads_of.eq(0)
            with m.Case(Opcode.VARGMAX):
                m.d.comb += reads_of.eq((n_in + (d - 1)) >> (d.bit_length() - 1))
            with m.Default():
                m.d.comb += reads_of.eq(n_in)
        take = Signal()
        m.d.comb += [take.eq(self.cmd.valid & ((nvec == 0) | last_read) & vcmd.w_rdy
                             & vdests.w_rdy & sdests.w_rdy),
                     self.cmd.ready.eq(take)]
        with m.If(take):
            m.d.sync += [cur.eq(p), nvec.eq(reads_of), idx.eq(0)]
        vc = Signal(VpuCommand)
        m.d.comb += [vc.op.eq(p.op.as_value()), vc.n.eq(n_in), vc.s.eq(p.s0), vc.t.eq(p.s1),
                     vcmd.w_en.eq(take), vcmd.w_data.eq(vc),
                     vpu.cmd.valid.eq(vcmd.r_rdy), vpu.cmd.payload.eq(vcmd.r_data),
                     vcmd.r_en.eq(vpu.cmd.ready)]

        # where its results go
        pv = data.View(LAYOUTS["vec"], p.word)
        ps = data.View(LAYOUTS["scal"], p.word)
        dest = Signal(_DEST)
        m.d.comb += [dest.n.eq(n_in), dest.wid.eq(p.wid)]
        with m.Switch(p.op):
            with m.Case(*_VECTOR_OUT):
                m.d.comb += [dest.kind.eq(KIND_VECTOR), dest.tgt.eq(p.val[0])]
            with m.Case(Opcode.VARGMAX):
                m.d.comb += [dest.kind.eq(KIND_INT), dest.tgt.eq(pv.rd)]
            with m.Case(*_SCALAR_OPS):
                m.d.comb += [dest.kind.eq(KIND_SCALAR), dest.tgt.eq(ps.sd)]
            with m.Default():
                m.d.comb += [dest.kind.eq(KIND_SCALAR), dest.tgt.eq(pv.sd)]
        m.d.comb += [vdests.w_en.eq(take & (dest.kind == KIND_VECTOR)), vdests.w_data.eq(dest),
                     sdests.w_en.eq(take & (dest.kind != KIND_VECTOR)), sdests.w_data.eq(dest)]

        # ---- operands into the VPU, results out -----------------------------------------
        # the operand buffer is bypassed when empty: a pair read in cycle r enters in r + 1
        head = Signal(32 * d)
        m.d.comb += [
            head.eq(Mux(ops.r_rdy, ops.r_data, fresh)),
            vpu.a.valid.eq(ops.r_rdy | inflight), vpu.b.valid.eq(ops.r_rdy | inflight),
            vpu.a.payload.eq(head[:16 * d]), vpu.b.payload.eq(head[16 * d:]),
            ops.r_en.eq(vpu.a.ready & ops.r_rdy),
            ops.w_en.eq(inflight & ~(vpu.a.ready & ~ops.r_rdy)), ops.w_data.eq(fresh),
        ]
        r = data.View(_DEST, vdests.r_data)
        rs = data.View(_DEST, sdests.r_data)
        yj = Signal(32)
        m.d.comb += [
            vpu.y.ready.eq(1),
            self.w.en.eq(vpu.y.valid), self.w.addr.eq(r.tgt + yj),
            self.w.data.eq(vpu.y.payload),
            self.adv.en.eq(vpu.y.valid), self.adv.idx.eq(r.wid),
            vpu.result.ready.eq(1),
            self.srf.en.eq(vpu.result.valid & (rs.kind == KIND_SCALAR)),
            self.srf.idx.eq(rs.tgt), self.srf.value.eq(vpu.result.payload),
            self.rd.en.eq(vpu.result.valid & (rs.kind == KIND_INT)), self.rd.reg.eq(rs.tgt),
            self.rd.value.eq(vpu.result.payload),
        ]
        vec_done = vpu.y.valid & (yj + 1 == r.n)
        with m.If(vpu.y.valid):
            m.d.sync += yj.eq(Mux(vec_done, 0, yj + 1))
        m.d.comb += [vdests.r_en.eq(vec_done), sdests.r_en.eq(vpu.result.valid)]
        m.d.comb += self.idle.eq((nvec == 0) & ~inflight & ~ops.r_rdy & ~vcmd.r_rdy
                                 & ~vdests.r_rdy & ~sdests.r_rdy)
        return m
