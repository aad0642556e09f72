"""A ``ControlSlave`` with a fake core behind it, as a Vitis-named top for Verilator
(``test_control_cocotb.py``; driven by ``ctrl_tb.py``).

The fake core: on ``start`` it runs ``prog_words`` cycles (``idle`` low), then pulses ``done``
with ``status`` = low byte of ``prog``, ``error_pc`` = low word of ``ddr``, ``cycles`` = the
run length, ``error_word`` = the HBM bases concatenated (hbm00 in the low bits).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from dfx.isa.config import CoreConfig
from dfx.rtl.bus.axi import AxiLiteSignature
from dfx.rtl.control.ctrl import ControlSlave

TOP = "ctrl_harness"


class CtrlHarness(wiring.Component):
    def __init__(self, core: CoreConfig):
        self._slave = ControlSlave.from_core(core)
        super().__init__({
            "s_axi_control": In(AxiLiteSignature(addr_width=self._slave.regs.addr_width)),
            "interrupt": Out(1),
            "starts": Out(16),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.ctrl = c = self._slave
        wiring.connect(m, wiring.flipped(self.s_axi_control), c.s_axi_control)
        busy = Signal()
        left = Signal(32)
        m.d.comb += [self.interrupt.eq(c.interrupt), c.idle.eq(~busy)]
        m.d.sync += c.done.eq(0)
        with m.If(c.start):
            m.d.sync += [busy.eq(1), left.eq(c.prog_words), self.starts.eq(self.starts + 1)]
        with m.Elif(busy):
            with m.If(left <= 1):
                m.d.sync += [busy.eq(0), c.done.eq(1), c.cycles.eq(c.prog_words),
                             c.status.eq(c.prog[:8]), c.error_pc.eq(c.ddr[:32]),
                             c.error_word.eq(Cat(*c.hbm))]
            with m.Else():
                m.d.sync += left.eq(left - 1)
        return m
