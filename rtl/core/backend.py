"""``Backend``: everything after the controller (docs/core.md): issue, the scoreboard, the
scalar and vector register files and the unit ports (operand collectors with their units).

It takes resolved instructions from the controller (``ins``) and talks to the memory system
through streams (weights, biases, DMA data; the memory commands leave at issue on ``mem``).
``dbg_*`` ports read and write the VRF and read the SRF for testbenches and the host's debug
reads (the VRF back doors share the DMA mover's VRF ports, the SRF's has a read port of its
own); with ``debug=False`` (the Vitis kernel) they and the SRF port do not exist. ``leaf``:
how the MPU, VPU, LUT-GEMM unit and epilogue add their repeated arithmetic blocks
(:mod:`dfx.rtl.leaves`).
"""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from dfx.rtl.control.regmap import BUSY_UNITS, MOVER_ACTIVE
from dfx.rtl.core.faults import Fault
from dfx.rtl.isa_layouts import Opcode
from dfx.rtl.issue.issue import Issue, command_layout
from dfx.rtl.issue.plan import resolved_layout
from dfx.rtl.issue.ports import IntWriteSignature
from dfx.rtl.issue.scoreboard import Scoreboard
from dfx.rtl.leaves import Leaf, add_leaf
from dfx.rtl.regs.srf import ScalarRegs
from dfx.rtl.vrf.vrf import Vrf, VrfReadSignature, VrfWriteSignature

from .lut_port import LutPort
from .mover import VectorMover
from .mpu_port import MpuPort
from .vpu_port import VpuPort

__all__ = ["TRACE_UNITS", "Backend", "trace_layout"]

WRITERS = 16
"""Scoreboard writer entries: one per in-flight instruction with a VRF destination."""
READERS = 16
"""Scoreboard reader entries: one per in-flight VRF source range."""


#: The units of the ``dbg_trace`` port, in the order of the timing model's trace tracks
#: (``dfx.sim.timing.stats.UNITS``: mpu, vpu, dma, router_tx, router_rx, lut).
TRACE_UNITS = ("mpu", "vpu", "dma", "tx", "rx", "lut")


def trace_layout(core: Any) -> data.StructLayout:
    """The ``dbg_trace`` port, registered (it shows cycle c's state from cycle c + 1): per unit
    of :data:`TRACE_UNITS`, ``take`` (toggles when the unit takes an instruction from issue,
    so that every take changes the port), ``busy`` (the unit is working) and ``pc`` (of the
    instruction last taken); ``run``: the cycles the core's ``cycles`` register counts (from
    the first fetch to done; driven by the core top). The testbench's trace monitor wakes on
    its changes only (``dfx run --backend rtl --trace``)."""
    n = len(TRACE_UNITS)
    pc = command_layout(core, WRITERS, READERS)["pc"].shape
    return data.StructLayout({"take": n, "busy": n, "pc": data.ArrayLayout(pc, n), "run": 1})


class Backend(wiring.Component):
    """Issue, scoreboard, SRF, VRF and unit ports of one core (module doc)."""

    def __init__(self, core: Any, *, debug: bool = True, leaf: Leaf = add_leaf):
        self._core = core
        self._debug = bool(debug)
        self._leaf = leaf
        v, d = core.buffers.vrf_vectors, core.d
        n_srf = core.buffers.srf_scalars
        self._cmd = command_layout(core, WRITERS, READERS)
        lc = core.lutgemm
        if lc is None:
            raise ValueError(f"core {core.name}: the core top needs a lutgemm section")
        self._mpu = MpuPort(core, self._cmd, writers=WRITERS, readers=READERS, leaf=leaf)
        dbg = {
            "dbg_vrf_r": In(VrfReadSignature(v, d)),
            "dbg_vrf_w": In(VrfWriteSignature(v, d)),
            "dbg_srf_idx": In(range(n_srf)),
            "dbg_srf_value": Out(32),
            "dbg_trace": Out(trace_layout(core)),
        } if self._debug else {}
        super().__init__({
            "ins": In(stream.Signature(resolved_layout(core))),
            "cards": In(8),
            "clear": In(1),
            "mem": Out(stream.Signature(self._cmd)),
            "mpu_tiles": In(stream.Signature(data.ArrayLayout(data.ArrayLayout(16, d),
                                                              core.l))),
            "mpu_bias": In(stream.Signature(data.ArrayLayout(16, core.l))),
            "lut_signs": In(stream.Signature(data.ArrayLayout(lc.slice, lc.lanes))),
            "lut_scales": In(stream.Signature(data.ArrayLayout(16, lc.scalers * (lc.max_q + 1)))),
            "lut_bias": In(stream.Signature(data.ArrayLayout(16, d))),
            "dma_load": In(stream.Signature(data.ArrayLayout(16, d))),
            "dma_store": Out(stream.Signature(data.ArrayLayout(16, d))),
            "tx": Out(stream.Signature(data.ArrayLayout(16, d))),
            "rx": In(stream.Signature(data.ArrayLayout(16, d))),
            "rd": Out(IntWriteSignature()),
            "fault": Out(Fault),
            "fault_pc": Out(self._cmd["pc"].shape),
            "fault_word": Out(self._cmd["word"].shape),
            "idle": Out(1),
            "busy": Out(len(BUSY_UNITS)),
            "tx_pc": Out(32),
            "rx_pc": Out(32),
            "ring_count": Out(32),
            **dbg,
        })

    @property
    def command_layout(self):
        return self._cmd

    @property
    def debug(self) -> bool:
        """Whether the ``dbg_*`` back doors exist."""
        return self._debug

    @property
    def mpu_port(self) -> MpuPort:
        return self._mpu

    @property
    def mpu_interleave(self) -> int:
        """The MPU's tile-order block width (the weight streamer must follow it)."""
        return self._mpu.mpu.interleave

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        core = self._core
        m.submodules.issue = issue = Issue(core, writers=WRITERS, readers=READERS)
        m.submodules.vpu = vpu = VpuPort(core, self._cmd, writers=WRITERS, readers=READERS,
                                         leaf=self._leaf)
        m.submodules.mpu = mpu = self._mpu
        m.submodules.lut = lut = LutPort(core, self._cmd, writers=WRITERS, readers=READERS,
                                         leaf=self._leaf)
        movers = {
            "dma": VectorMover(core, self._cmd, writers=WRITERS, readers=READERS,
                               reads={Opcode.STORE: (1, 2), Opcode.STORE_T: (1, 2)},
                               writes={Opcode.LOAD: (0, 2)}, elements=True),
            "tx": VectorMover(core, self._cmd, writers=WRITERS, readers=READERS,
                              reads={Opcode.SEND: (0, 1)}, writes={}, elements=False),
            "rx": VectorMover(core, self._cmd, writers=WRITERS, readers=READERS,
                              reads={}, writes={Opcode.RECV: (0, 1)}, elements=False),
        }
        for name, mover in movers.items():
            m.submodules[name] = mover
        m.submodules.sb = sb = Scoreboard(
            core.buffers.vrf_vectors, writers=WRITERS, readers=READERS,
            check_ports=["vpu_a", "vpu_b", "mpu", "lut", "dma", "tx", "rx"],
            write_units=["vpu", "mpu", "lut", "dma", "tx", "rx"],
            read_units=["vpu_a", "vpu_b", "mpu", "lut", "dma", "tx", "rx"])
        dbg = ["dbg"] if self._debug else []
        m.submodules.srf = srf = ScalarRegs.from_core(
            core, read_ports=["i0", "i1", *dbg], write_ports=["sli", "vpu", "mpu"])
        # the debug back doors share the DMA mover's VRF ports (the core is idle when a host
        # uses them), so a debug build has the same VRF copies as the kernel
        m.submodules.vrf = vrf = Vrf.from_core(
            core, read_ports=["vpu_a", "vpu_b", "mpu", "lut", "dma", "tx"],
            write_ports=["vpu", "mpu", "lut", "dma", "rx"])

        # controller -> issue -> memory system
        wiring.connect(m, wiring.flipped(self.ins), issue.ins)
        wiring.connect(m, issue.mem, wiring.flipped(self.mem))
        m.d.comb += [issue.cards.eq(self.cards), issue.clear.eq(self.clear),
                     sb.clear.eq(self.clear), srf.clear.eq(self.clear)]

        # issue <-> scoreboard and SRF
        for name in ("alloc_w_en", "alloc_w_lo", "alloc_w_n", "alloc_r0_en", "alloc_r0_lo",
                     "alloc_r0_n", "alloc_r1_en", "alloc_r1_lo", "alloc_r1_n", "dst_lo",
                     "dst_n"):
            m.d.comb += getattr(sb, name).eq(getattr(issue, "sb_" + name))
        for name in ("alloc_w_idx", "w_full", "alloc_r0_idx", "alloc_r1_idx", "r_full",
                     "waw_busy", "war_busy"):
            m.d.comb += getattr(issue, "sb_" + name).eq(getattr(sb, name))
        m.d.comb += [
            issue.srf_pending.eq(srf.pending),
            srf.r_i0_idx.eq(issue.srf_r0_idx), issue.srf_r0_value.eq(srf.r_i0_value),
            srf.r_i1_idx.eq(issue.srf_r1_idx), issue.srf_r1_value.eq(srf.r_i1_value),
            srf.claim_en.eq(issue.srf_claim_en), srf.claim_lo.eq(issue.srf_claim_lo),
            srf.claim_count.eq(issue.srf_claim_count),
            srf.w_sli.en.eq(issue.srf_sli_en), srf.w_sli.idx.eq(issue.srf_sli_idx),
            srf.w_sli.value.eq(issue.srf_sli_value),
        ]

        # the VPU port
        wiring.connect(m, issue.vpu, vpu.cmd)
        wiring.connect(m, vpu.ra, vrf.r_vpu_a)
        wiring.connect(m, vpu.rb, vrf.r_vpu_b)
        wiring.connect(m, vpu.w, vrf.w_vpu)
        wiring.connect(m, vpu.check_a, sb.check_vpu_a)
        wiring.connect(m, vpu.check_b, sb.check_vpu_b)
        wiring.connect(m, vpu.adv, sb.adv_vpu)
        wiring.connect(m, vpu.done_a, sb.done_vpu_a)
        wiring.connect(m, vpu.done_b, sb.done_vpu_b)
        wiring.connect(m, vpu.srf, srf.w_vpu)
        wiring.connect(m, vpu.rd, wiring.flipped(self.rd))

        # the MPU port
        wiring.connect(m, issue.mpu, mpu.cmd)
        wiring.connect(m, wiring.flipped(self.mpu_tiles), mpu.tiles)
        wiring.connect(m, wiring.flipped(self.mpu_bias), mpu.bias)
        wiring.connect(m, mpu.rx, vrf.r_mpu)
        wiring.connect(m, mpu.w, vrf.w_mpu)
        wiring.connect(m, mpu.check, sb.check_mpu)
        wiring.connect(m, mpu.adv, sb.adv_mpu)
        wiring.connect(m, mpu.done, sb.done_mpu)
        wiring.connect(m, mpu.srf, srf.w_mpu)

        # the vector movers: DMA (memory), router transmit and receive (the ring)
        for name, mover in movers.items():
            wiring.connect(m, getattr(issue, name), mover.cmd)
            wiring.connect(m, mover.check, getattr(sb, f"check_{name}"))
            wiring.connect(m, mover.adv, getattr(sb, f"adv_{name}"))
            wiring.connect(m, mover.done, getattr(sb, f"done_{name}"))
            if name != "rx" and not (name == "dma" and self._debug):
                wiring.connect(m, mover.rv, getattr(vrf, f"r_{name}"))
            if name != "tx" and not (name == "dma" and self._debug):
                wiring.connect(m, mover.w, getattr(vrf, f"w_{name}"))
        wiring.connect(m, wiring.flipped(self.dma_load), movers["dma"].load)
        wiring.connect(m, movers["dma"].store, wiring.flipped(self.dma_store))
        wiring.connect(m, movers["tx"].store, wiring.flipped(self.tx))
        wiring.connect(m, wiring.flipped(self.rx), movers["rx"].load)
        m.d.comb += [movers["tx"].load.valid.eq(0), movers["rx"].store.ready.eq(0)]

        # the LUT-GEMM port
        wiring.connect(m, issue.lut, lut.cmd)
        wiring.connect(m, wiring.flipped(self.lut_signs), lut.signs)
        wiring.connect(m, wiring.flipped(self.lut_scales), lut.scales)
        wiring.connect(m, wiring.flipped(self.lut_bias), lut.bias)
        wiring.connect(m, lut.rx, vrf.r_lut)
        wiring.connect(m, lut.w, vrf.w_lut)
        wiring.connect(m, lut.check, sb.check_lut)
        wiring.connect(m, lut.adv, sb.adv_lut)
        wiring.connect(m, lut.done, sb.done_lut)

        # status and debug
        m.d.comb += [self.fault.eq(issue.fault), self.fault_pc.eq(issue.fault_pc),
                     self.fault_word.eq(issue.fault_word)]
        unit_busy = {"issue": ~issue.idle, "vpu": ~vpu.idle, "mpu": ~mpu.idle,
                     "lut": ~lut.idle, "dma": ~movers["dma"].idle, "tx": ~movers["tx"].idle,
                     "rx": ~movers["rx"].idle, "pending": ~sb.empty | (srf.pending != 0)}
        m.d.comb += [self.busy.eq(Cat(*(unit_busy[u] for u in BUSY_UNITS))),
                     self.idle.eq(self.busy == 0)]
        # where a card waits on the ring (the live registers of rtl/control/regmap.py)
        for name in ("tx", "rx"):
            mv = movers[name]
            m.d.comb += getattr(self, f"{name}_pc").eq(Mux(mv.active, MOVER_ACTIVE, 0) | mv.pc)
        sent, got = Signal(16), Signal(16)
        with m.If(self.clear):
            m.d.sync += [sent.eq(0), got.eq(0)]
        with m.Else():
            with m.If(self.tx.valid & self.tx.ready):
                m.d.sync += sent.eq(sent + 1)
            with m.If(self.rx.valid & self.rx.ready):
                m.d.sync += got.eq(got + 1)
        m.d.comb += self.ring_count.eq(Cat(sent, got))
        if self._debug:
            units = {"mpu": mpu, "vpu": vpu, "lut": lut, **movers}
            for k, u in enumerate(TRACE_UNITS):
                cmd = getattr(issue, u)
                m.d.sync += self.dbg_trace.busy[k].eq(~units[u].idle)
                with m.If(cmd.valid & cmd.ready):
                    m.d.sync += [self.dbg_trace.take[k].eq(~self.dbg_trace.take[k]),
                                 self.dbg_trace.pc[k].eq(cmd.payload.pc)]
            rv, w, dr, dw = movers["dma"].rv, movers["dma"].w, self.dbg_vrf_r, self.dbg_vrf_w
            m.d.comb += [
                vrf.r_dma.addr.eq(Mux(dr.en, dr.addr, rv.addr)),
                vrf.r_dma.en.eq(dr.en | rv.en), rv.data.eq(vrf.r_dma.data),
                dr.data.eq(vrf.r_dma.data),
                vrf.w_dma.addr.eq(Mux(dw.en, dw.addr, w.addr)),
                vrf.w_dma.data.eq(Mux(dw.en, dw.data, w.data)), vrf.w_dma.en.eq(dw.en | w.en),
            ]
            m.d.comb += [srf.r_dbg_idx.eq(self.dbg_srf_idx),
                         self.dbg_srf_value.eq(srf.r_dbg_value)]
        return m
