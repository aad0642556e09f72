"""``CoreTestTop``: one card for the Verilator testbench and ``dfx run --backend rtl``: a
:class:`~dfx.rtl.core.core.DfxCore` whose AXI masters drive the card's memory models
(:class:`~.axi_mem.MemorySystem`, the timing model's channel semantics, with a file back door).

Ports (Vitis names through :func:`dfx.rtl.bus.vitis.vitis_verilog`): ``s_axi_control_*``,
``interrupt``, ``bd_*`` (memory back door), ``stall`` (memory stall probability / 16),
``mem_error``, the ring streams ``tx_*``/``rx_*`` and the back doors ``dbg_vrf_r_*``,
``dbg_vrf_w_*``, ``dbg_srf_idx``/``dbg_srf_value`` and the trace monitor's ``dbg_trace``.

Every input reaches the core through a register (testbench register slices): the AXI4-Lite
channels and (in a one-card model) the ring streams through two-entry FIFOs
(:class:`~dfx.rtl.bus.stream.Fifo2`: one more cycle each way, full throughput), ``stall`` and
the debug ports through flip-flops (a debug read's data comes one cycle later). Verilator
evaluates every piece of logic that depends combinationally on a top-level input on each
input change, i.e. on both clock edges; without
these registers that is most of the core (through the AXI handshakes and the control slave).
Only the memory back door (``bd_*``, used while the core is idle) is direct. For the same
reason the card's reset comes through a flip-flop (domain ``dut``: Amaranth puts the reset
into every next-state function).
"""

from __future__ import annotations

from typing import Any

from amaranth.hdl import ClockDomain, ClockSignal, DomainRenamer, Module, ResetSignal, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from dfx.rtl.bus.axi import AxiLiteSignature
from dfx.rtl.bus.stream import Fifo2
from dfx.rtl.core.backend import trace_layout
from dfx.rtl.core.core import DfxCore
from dfx.rtl.leaves import Leaf, add_leaf
from dfx.rtl.vrf.vrf import VrfReadSignature, VrfWriteSignature

from .axi_mem import BackdoorSignature, MemorySystem
from .mem_model import MemLayout

__all__ = ["CoreTestTop", "connect_memories", "control_slices"]


class CoreTestTop(wiring.Component):
    """A core and its memories (module doc). ``layout``: the memories
    (:meth:`MemLayout.from_core`, sizes may be smaller than the board's); ``leaf``: the core's
    (:func:`dfx.rtl.core.generate.core_verilog` passes black boxes). ``ring_fifos``: the ring
    streams through register FIFOs (top-level ports of a one-card model); ``False`` for a card
    of the ring model, whose streams meet a router inside the model as on the board, so that
    the ring's cycles are the board's."""

    def __init__(self, core: Any, layout: MemLayout | None = None, *, leaf: Leaf = add_leaf,
                 ring_fifos: bool = True):
        self._core = core
        self._ring_fifos = bool(ring_fifos)
        self._dut = DfxCore.from_core(core, leaf=leaf)
        self._layout = layout if layout is not None else MemLayout.from_core(core)
        self._mem = MemorySystem(self._layout)
        v, d = core.buffers.vrf_vectors, core.d
        bd = self._mem.signature.members["bd"].signature
        vec = data.ArrayLayout(16, d)
        super().__init__({
            "s_axi_control": In(AxiLiteSignature(addr_width=self._dut.regs.addr_width)),
            "interrupt": Out(1),
            "bd": In(BackdoorSignature(bd.sel_bits, bd.addr_bits)),
            "stall": In(4),
            "mem_error": Out(4),
            "tx": Out(stream.Signature(vec)),
            "rx": In(stream.Signature(vec)),
            "dbg_vrf_r": In(VrfReadSignature(v, d)),
            "dbg_vrf_w": In(VrfWriteSignature(v, d)),
            "dbg_srf_idx": In(range(core.buffers.srf_scalars)),
            "dbg_srf_value": Out(32),
            "dbg_trace": Out(trace_layout(core)),
        })

    @property
    def core(self) -> DfxCore:
        return self._dut

    @property
    def layout(self) -> MemLayout:
        return self._layout

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        # the whole card runs in domain "dut": the sync clock, the sync reset through a
        # reset-less flip-flop (high at power-on)
        m.domains.dut = ClockDomain("dut", local=True)
        rst_q = Signal(init=1, reset_less=True)
        m.d.sync += rst_q.eq(ResetSignal("sync"))
        m.d.comb += [ClockSignal("dut").eq(ClockSignal("sync")), ResetSignal("dut").eq(rst_q)]
        m.submodules.card = DomainRenamer("dut")(self._card())
        return m

    def _card(self) -> Module:
        m = Module()
        m.submodules.core = core = self._dut
        m.submodules.mem = mem = self._mem
        control_slices(m, self.s_axi_control, core.s_axi_control)
        m.d.comb += self.interrupt.eq(core.interrupt)
        connect_memories(m, core, mem, self)
        # the ring streams through Fifo2s (one-card model) or direct (ring model)
        vec = core.tx.payload.shape()
        for name, src, dst in (("tx", core.tx, self.tx), ("rx", self.rx, core.rx)):
            if not self._ring_fifos:
                m.d.comb += [dst.payload.eq(src.payload), dst.valid.eq(src.valid),
                             src.ready.eq(dst.ready)]
                continue
            m.submodules[f"{name}_q"] = q = Fifo2(vec)
            m.d.comb += [q.w_data.eq(src.payload), q.w_en.eq(src.valid), src.ready.eq(q.w_rdy),
                         dst.payload.eq(q.r_data), dst.valid.eq(q.r_rdy), q.r_en.eq(dst.ready)]
        # the debug ports through flip-flops (read data one cycle later)
        m.d.sync += [core.dbg_vrf_r.addr.eq(self.dbg_vrf_r.addr),
                     core.dbg_vrf_r.en.eq(self.dbg_vrf_r.en),
                     core.dbg_vrf_w.addr.eq(self.dbg_vrf_w.addr),
                     core.dbg_vrf_w.data.eq(self.dbg_vrf_w.data),
                     core.dbg_vrf_w.en.eq(self.dbg_vrf_w.en),
                     core.dbg_srf_idx.eq(self.dbg_srf_idx)]
        m.d.comb += [self.dbg_trace.eq(core.dbg_trace),
                     self.dbg_vrf_r.data.eq(core.dbg_vrf_r.data),
                     self.dbg_srf_value.eq(core.dbg_srf_value)]
        return m


def control_slices(m: Module, host: Any, dut: Any) -> None:
    """The AXI4-Lite channels between the testbench (``host``) and a control slave (``dut``)
    through :class:`~dfx.rtl.bus.stream.Fifo2`\\ s (module doc: aw, w, ar to the slave; b, r
    back)."""
    for name, fields, to_dut in (("aw", ("awaddr",), True), ("w", ("wdata", "wstrb"), True),
                                 ("ar", ("araddr",), True), ("b", ("bresp",), False),
                                 ("r", ("rdata", "rresp"), False)):
        lay = data.StructLayout({f: len(getattr(host, f)) for f in fields})
        m.submodules[f"axil_{name}"] = q = Fifo2(lay)
        src, dst = (host, dut) if to_dut else (dut, host)
        m.d.comb += [q.w_en.eq(getattr(src, f"{name}valid")),
                     getattr(src, f"{name}ready").eq(q.w_rdy),
                     getattr(dst, f"{name}valid").eq(q.r_rdy),
                     q.r_en.eq(getattr(dst, f"{name}ready"))]
        for f in fields:
            m.d.comb += [getattr(q.w_data, f).eq(getattr(src, f)),
                         getattr(dst, f).eq(getattr(q.r_data, f))]


def connect_memories(m: Module, kernel: Any, mem: MemorySystem, top: Any) -> None:
    """A kernel's AXI masters to the card's memories; the top's back door ``bd`` straight to
    them, its ``stall`` through a flip-flop, their error bits to its ``mem_error``."""
    for c in range(len(kernel.m_axi_hbm)):
        wiring.connect(m, kernel.m_axi_hbm[c], mem.hbm[c])
    wiring.connect(m, kernel.m_axi_ddr, mem.ddr)
    wiring.connect(m, wiring.flipped(top.bd), mem.bd)
    stall = Signal.like(top.stall)
    m.d.sync += stall.eq(top.stall)
    m.d.comb += [mem.stall.eq(stall), top.mem_error.eq(mem.error)]
