"""``BoardTestTop``: one Alveo kernel (:class:`~dfx.rtl.board.top.BoardTop`, the real
``dfx_core``: the core with ``debug=False``, the ring router, one clock-domain crossing per QSFP
link) with the card's memory models, for the Verilator testbench (issue 13: the RTL backend
runs the board top, so the wrapper is what is tested).

Ports (Vitis names): those of :class:`~.core_top.CoreTestTop` without the debug back doors and
the core's ring streams — ``s_axi_control_*``, ``interrupt``, ``bd_*``, ``stall``,
``mem_error`` — plus ``router_overflow`` (the router's sticky receive-FIFO overflow: never),
the link clock ``ap_clk_2`` / ``ap_rst_n_2`` and the kernel's QSFP streams ``qsfpP_tx_*`` /
``qsfpP_rx_*`` on it (QSFP0: the next card, QSFP1: the previous one; docs/u280.md).

The register slices are :class:`~.core_top.CoreTestTop`'s (:func:`~.core_top.control_slices`,
:func:`~.core_top.connect_memories`: every input of the core side through a register, the
reset through a flip-flop) for Verilator's speed; ``ap_rst_n_2`` too reaches the kernel through
a flip-flop on the link clock. The QSFP streams go straight to the kernel's crossing FIFOs (a
few registers, no core logic behind them).
"""

from __future__ import annotations

from typing import Any

from amaranth.hdl import ClockDomain, ClockSignal, DomainRenamer, Module, ResetSignal, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from dfx.rtl.board.top import AP_CLK_2, AP_RST_N_2, BoardTop
from dfx.rtl.bus.axi import AxiLiteSignature
from dfx.rtl.leaves import Leaf, add_leaf

from .axi_mem import BackdoorSignature, MemorySystem
from .core_top import connect_memories, control_slices
from .mem_model import MemLayout

__all__ = ["ROUTER_OVERFLOW", "BoardTestTop"]

#: The card's sticky router overflow output.
ROUTER_OVERFLOW = "router_overflow"


class BoardTestTop(wiring.Component):
    """A board kernel and its memories (module doc). ``layout``: the memories
    (:func:`~.core_build.core_layout`); ``leaf``: the core's leaf factory."""

    def __init__(self, core: Any, layout: MemLayout | None = None, *, leaf: Leaf = add_leaf):
        self._core = core
        self._kernel = BoardTop(core, leaf=leaf)
        self._layout = layout if layout is not None else MemLayout.from_core(core)
        self._mem = MemorySystem(self._layout)
        bd = self._mem.signature.members["bd"].signature
        k = self._kernel
        members: dict[str, Any] = {
            "s_axi_control": In(AxiLiteSignature(addr_width=k.regs.addr_width)),
            "interrupt": Out(1),
            "bd": In(BackdoorSignature(bd.sel_bits, bd.addr_bits)),
            "stall": In(4),
            "mem_error": Out(4),
            ROUTER_OVERFLOW: Out(1),
            AP_CLK_2: In(1),
            AP_RST_N_2: In(1, init=1),
        }
        for q in k.links:
            members[f"{q}_tx"] = k.signature.members[f"{q}_tx"]
            members[f"{q}_rx"] = k.signature.members[f"{q}_rx"]
        super().__init__(members)

    @property
    def kernel(self) -> BoardTop:
        return self._kernel

    @property
    def core(self) -> Any:
        return self._kernel.core

    @property
    def layout(self) -> MemLayout:
        return self._layout

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        # the kernel side in domain "dut" (sync clock, reset through a flip-flop), as CoreTestTop
        m.domains.dut = ClockDomain("dut", local=True)
        rst_q = Signal(init=1, reset_less=True)
        m.d.sync += rst_q.eq(ResetSignal("sync"))
        m.d.comb += [ClockSignal("dut").eq(ClockSignal("sync")), ResetSignal("dut").eq(rst_q)]
        # the link reset through a flip-flop on the link clock
        m.domains.tb_link = tl = ClockDomain("tb_link", local=True, reset_less=True)
        rst2_q = Signal(init=1, reset_less=True)
        m.d.comb += tl.clk.eq(getattr(self, AP_CLK_2))
        m.d.tb_link += rst2_q.eq(~getattr(self, AP_RST_N_2))
        m.submodules.card = DomainRenamer("dut")(self._card(rst2_q))
        return m

    def _card(self, link_rst: Signal) -> Module:
        m = Module()
        m.submodules.kernel = k = self._kernel
        m.submodules.mem = mem = self._mem
        control_slices(m, self.s_axi_control, k.s_axi_control)
        m.d.comb += self.interrupt.eq(k.interrupt)
        connect_memories(m, k, mem, self)
        m.d.comb += getattr(self, ROUTER_OVERFLOW).eq(getattr(k.router, "overflow", 0))
        m.d.comb += [getattr(k, AP_CLK_2).eq(getattr(self, AP_CLK_2)),
                     getattr(k, AP_RST_N_2).eq(~link_rst)]
        for q in k.links:
            wiring.connect(m, getattr(k, f"{q}_tx"), wiring.flipped(getattr(self, f"{q}_tx")))
            wiring.connect(m, wiring.flipped(getattr(self, f"{q}_rx")), getattr(k, f"{q}_rx"))
        return m
