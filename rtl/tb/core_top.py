"""``CoreTestTop``: one card for the Verilator testbench and ``dfx run --backend rtl``: a
:class:`~dfx.rtl.core.core.DfxCore` whose AXI masters drive the card's memory models
(:class:`~.axi_mem.MemorySystem`, the timing model's channel semantics, with a file back door).

Ports (Vitis names through :func:`dfx.rtl.bus.vitis.vitis_verilog`): ``s_axi_control_*``,
``interrupt``, ``bd_*`` (memory back door), ``stall`` (memory stall probability / 16),
``mem_error``, the ring streams ``tx_*``/``rx_*`` and the back doors ``dbg_vrf_r_*``,
``dbg_vrf_w_*``, ``dbg_srf_idx``/``dbg_srf_value``.
"""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Module
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from dfx.rtl.bus.axi import AxiLiteSignature
from dfx.rtl.core.core import DfxCore
from dfx.rtl.vrf.vrf import VrfReadSignature, VrfWriteSignature

from .axi_mem import BackdoorSignature, MemorySystem
from .mem_model import MemLayout

__all__ = ["CoreTestTop"]


class CoreTestTop(wiring.Component):
    """A core and its memories (module doc). ``layout``: the memories
    (:meth:`MemLayout.from_core`, sizes may be smaller than the board's)."""

    def __init__(self, core: Any, layout: MemLayout | None = None):
        self._core = core
        self._dut = DfxCore.from_core(core)
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
        })

    @property
    def core(self) -> DfxCore:
        return self._dut

    @property
    def layout(self) -> MemLayout:
        return self._layout

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        m.submodules.core = core = self._dut
        m.submodules.mem = mem = self._mem
        wiring.connect(m, wiring.flipped(self.s_axi_control), core.s_axi_control)
        m.d.comb += self.interrupt.eq(core.interrupt)
        for c in range(len(core.m_axi_hbm)):
            wiring.connect(m, core.m_axi_hbm[c], mem.hbm[c])
        wiring.connect(m, core.m_axi_ddr, mem.ddr)
        wiring.connect(m, wiring.flipped(self.bd), mem.bd)
        m.d.comb += [mem.stall.eq(self.stall), self.mem_error.eq(mem.error)]
        wiring.connect(m, core.tx, wiring.flipped(self.tx))
        wiring.connect(m, wiring.flipped(self.rx), core.rx)
        wiring.connect(m, wiring.flipped(self.dbg_vrf_r), core.dbg_vrf_r)
        wiring.connect(m, wiring.flipped(self.dbg_vrf_w), core.dbg_vrf_w)
        m.d.comb += [core.dbg_srf_idx.eq(self.dbg_srf_idx),
                     self.dbg_srf_value.eq(core.dbg_srf_value)]
        return m
