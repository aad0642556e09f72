"""``DfxCore``: one DFX compute core (DFX §2) as an XRT-managed kernel would see it
(docs/core.md): the ``ap_ctrl_hs`` control slave, the control unit (loader, fetch, decode,
controller), the backend (issue, scoreboard, register files, MPU, LUT-GEMM unit, VPU, vector
movers) and the memory system with one AXI4 master per HBM pseudo-channel and one for DDR;
the router's stream ports ``tx``/``rx`` (the ring is issue 11's).

A run: the host writes the arguments and sets ap_start; the core clears its state (scalar
registers, scoreboard), loads the program from DDR, runs it and, once it has halted (or
faulted) and every unit and memory transfer has finished, reports ``done`` with ``status`` (0
or the :class:`~.faults.Fault`), ``error_pc``, ``error_word`` and ``cycles`` (from the first
fetch to done).
"""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from dfx.rtl.bus.axi import AxiLiteSignature, AxiSignature
from dfx.rtl.control.ctrl import ControlSlave
from dfx.rtl.controller.unit import ControlUnit
from dfx.rtl.dma.system import MemorySystem
from dfx.rtl.leaves import Leaf, add_leaf
from dfx.rtl.vrf.vrf import VrfReadSignature, VrfWriteSignature

from .backend import Backend, trace_layout
from .faults import Fault
from .memfront import MemFront

__all__ = ["DfxCore"]


class DfxCore(wiring.Component):
    """One core (module doc); :meth:`from_core` builds it from a core configuration.

    Ports: ``s_axi_control`` (AXI4-Lite slave), ``interrupt``, ``m_axi_hbm`` (one AXI4 master
    per pseudo-channel), ``m_axi_ddr``, ``tx``/``rx`` (d-wide FP16 vector streams to and from
    the ring), ``dbg_vrf_r``/``dbg_vrf_w``/``dbg_srf_*`` (testbench back doors; ``debug=False``,
    the Vitis kernel :func:`dfx.rtl.core.generate.core_verilog` writes, leaves them out).
    ``leaf``: how the datapath units add their repeated arithmetic blocks
    (:mod:`dfx.rtl.leaves`; fast Verilog generation passes black boxes).
    """

    def __init__(self, core: Any, *, debug: bool = True, leaf: Leaf = add_leaf):
        self._core = core
        self._debug = bool(debug)
        self._ctrl = ControlSlave.from_core(core)
        self._cu = ControlUnit.from_core(core)
        self._be = Backend(core, debug=self._debug, leaf=leaf)
        self._mem = MemorySystem.from_core(core)
        g = self._mem.geometry
        v, d = core.buffers.vrf_vectors, core.d
        vec = data.ArrayLayout(16, d)
        dbg = {
            "dbg_vrf_r": In(VrfReadSignature(v, d)),
            "dbg_vrf_w": In(VrfWriteSignature(v, d)),
            "dbg_srf_idx": In(range(core.buffers.srf_scalars)),
            "dbg_srf_value": Out(32),
            "dbg_trace": Out(trace_layout(core)),
        } if self._debug else {}
        super().__init__({
            "s_axi_control": In(AxiLiteSignature(addr_width=self._ctrl.regs.addr_width)),
            "interrupt": Out(1),
            "m_axi_hbm": Out(AxiSignature(data_width=8 * g.beat_bytes)).array(g.channels),
            "m_axi_ddr": Out(AxiSignature(data_width=8 * g.beat_bytes)),
            "tx": Out(stream.Signature(vec)),
            "rx": In(stream.Signature(vec)),
            **dbg,
        })

    @classmethod
    def from_core(cls, core: Any, **kwargs: Any) -> DfxCore:
        """The core of a :class:`dfx.isa.config.CoreConfig`; ``kwargs``: ``debug``, ``leaf``."""
        return cls(core, **kwargs)

    @property
    def core(self) -> Any:
        return self._core

    @property
    def debug(self) -> bool:
        """Whether the ``dbg_*`` back doors are ports."""
        return self._debug

    @property
    def regs(self) -> Any:
        """The control register map (:func:`dfx.rtl.control.regmap.regmap`)."""
        return self._ctrl.regs

    @property
    def control_unit(self) -> ControlUnit:
        return self._cu

    @property
    def backend(self) -> Backend:
        return self._be

    @property
    def memory(self) -> MemorySystem:
        return self._mem

    def elaborate(self, platform: Any) -> Module:  # noqa: C901 - the top's wiring
        m = Module()
        m.submodules.ctrl = ctrl = self._ctrl
        m.submodules.cu = cu = self._cu
        m.submodules.be = be = self._be
        m.submodules.mem = mem = self._mem
        mpu_g = be.mpu_interleave
        m.submodules.front = front = MemFront.for_system(be.command_layout, mem, mpu_g)

        # host control
        wiring.connect(m, wiring.flipped(self.s_axi_control), ctrl.s_axi_control)
        m.d.comb += self.interrupt.eq(ctrl.interrupt)

        # the run sequence: clear, load, run, drain, done
        running = Signal()
        counting = Signal()
        cycles = Signal(64)
        start = ctrl.start
        be_fault = be.fault != Fault.OK
        cu_fault = cu.fault != Fault.OK
        stopped = cu.halted | be_fault | cu_fault
        dma_out = Signal(16)  # DMA commands not yet done
        dma_sent = mem.dma_cmd.valid & mem.dma_cmd.ready
        m.d.sync += dma_out.eq(dma_out + dma_sent - mem.dma_done)
        drained = be.idle & cu.idle & (dma_out == 0) & ~cu.loading & ~mem.dma_cmd.valid
        finish = running & stopped & drained
        m.d.comb += [
            cu.start.eq(start), be.clear.eq(start),
            cu.prog.eq(ctrl.prog), cu.prog_words.eq(ctrl.prog_words),
            cu.stop.eq(be_fault),
            be.cards.eq(ctrl.cards),
            ctrl.idle.eq(~running),
            ctrl.done.eq(finish),
        ]
        with m.If(start):
            m.d.sync += [running.eq(1), counting.eq(0), cycles.eq(0)]
        with m.Elif(finish):
            m.d.sync += [running.eq(0), counting.eq(0)]
        with m.If(cu.first_fetch):
            m.d.sync += counting.eq(1)
        with m.If((counting | cu.first_fetch) & running & ~finish):
            m.d.sync += cycles.eq(cycles + 1)
        with m.If(finish):
            m.d.sync += cycles.eq(cycles + 1)
        status = Mux(cu_fault, cu.fault, be.fault)
        status_q = Signal(8)
        m.d.comb += [ctrl.status.eq(Mux(running, 0, status_q)), ctrl.cycles.eq(cycles)]
        err_pc = Signal(32)
        err_word = Signal(256)
        with m.If(finish):
            m.d.sync += [status_q.eq(status),
                         err_pc.eq(Mux(cu_fault, cu.fault_pc, be.fault_pc)),
                         err_word.eq(Mux(cu_fault, cu.fault_word, be.fault_word))]
        with m.If(start):
            m.d.sync += [status_q.eq(0), err_pc.eq(0), err_word.eq(0)]
        m.d.comb += [ctrl.error_pc.eq(err_pc), ctrl.error_word.eq(err_word)]
        # the live registers: where the core is while it runs
        m.d.comb += [ctrl.pc.eq(cu.fire_pc), ctrl.busy.eq(be.busy), ctrl.tx_pc.eq(be.tx_pc),
                     ctrl.rx_pc.eq(be.rx_pc), ctrl.ring_count.eq(be.ring_count)]

        # control unit <-> memory system and backend
        wiring.connect(m, cu.prog_cmd, mem.prog_cmd)
        wiring.connect(m, mem.prog_data, cu.prog_data)
        m.d.comb += [
            mem.word_req.payload.write.eq(cu.mem_req.payload.write),
            mem.word_req.payload.space.eq(cu.mem_req.payload.space),
            mem.word_req.payload.addr.eq(cu.mem_req.payload.addr),
            mem.word_req.payload.wdata.eq(cu.mem_req.payload.wdata),
            mem.word_req.valid.eq(cu.mem_req.valid), cu.mem_req.ready.eq(mem.word_req.ready),
            cu.mem_resp.payload.rdata.eq(mem.word_resp.payload.rdata),
            cu.mem_resp.valid.eq(mem.word_resp.valid), mem.word_resp.ready.eq(cu.mem_resp.ready),
        ]
        wiring.connect(m, cu.issue, be.ins)
        m.d.comb += [cu.rd_write.valid.eq(be.rd.en), cu.rd_write.reg.eq(be.rd.reg),
                     cu.rd_write.value.eq(be.rd.value)]

        # backend <-> memory system
        wiring.connect(m, be.mem, front.cmd)
        wiring.connect(m, front.dma, mem.dma_cmd)
        wiring.connect(m, front.mpu, mem.mpu_cmd)
        wiring.connect(m, front.lut, mem.lut_cmd)
        wiring.connect(m, mem.dma_load, be.dma_load)
        wiring.connect(m, be.dma_store, mem.dma_store)
        wiring.connect(m, mem.mpu_tiles, be.mpu_tiles)
        wiring.connect(m, mem.mpu_bias, be.mpu_bias)
        wiring.connect(m, mem.lut_signs, be.lut_signs)
        wiring.connect(m, mem.lut_scales, be.lut_scales)
        wiring.connect(m, mem.lut_bias, be.lut_bias)
        for c in range(len(self.m_axi_hbm)):
            wiring.connect(m, mem.hbm[c], wiring.flipped(self.m_axi_hbm[c]))
            m.d.comb += mem.hbm_base[c].eq(ctrl.hbm[c])
        wiring.connect(m, mem.ddr, wiring.flipped(self.m_axi_ddr))
        m.d.comb += mem.ddr_base.eq(ctrl.ddr)

        # the ring and the back doors
        wiring.connect(m, be.tx, wiring.flipped(self.tx))
        wiring.connect(m, wiring.flipped(self.rx), be.rx)
        if self._debug:
            wiring.connect(m, wiring.flipped(self.dbg_vrf_r), be.dbg_vrf_r)
            wiring.connect(m, wiring.flipped(self.dbg_vrf_w), be.dbg_vrf_w)
            m.d.comb += self.dbg_trace.eq(be.dbg_trace)
            run_q = Signal()  # registered like the backend's part of the port
            m.d.sync += run_q.eq(((counting | cu.first_fetch) & running & ~finish) | finish)
            m.d.comb += self.dbg_trace.run.eq(run_q)
            m.d.comb += [be.dbg_srf_idx.eq(self.dbg_srf_idx),
                         self.dbg_srf_value.eq(be.dbg_srf_value)]
        return m
