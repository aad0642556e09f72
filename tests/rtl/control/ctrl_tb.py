"""cocotb testbench of the control slave (``ctrl_harness.CtrlHarness``) driven by
cocotbext-axi's ``AxiLiteMaster`` exactly as XRT drives an ap_ctrl_hs kernel: write the
arguments (64-bit ones low word first), set ap_start, poll CTRL for ap_done / wait for the
interrupt, clear it (toggle-on-write ISR), start again; with random back-pressure.
"""

from __future__ import annotations

import itertools
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge, with_timeout
from cocotbext.axi import AxiLiteBus, AxiLiteMaster

from dfx.isa.config import load_core
from dfx.rtl.control import regmap as rm
from dfx.rtl.control.driver import ControlDriver

REGS = rm.regmap(load_core("tiny"))


class TB:
    def __init__(self, dut, pause: bool = False):
        self.dut = dut
        self.clock = Clock(dut.ap_clk, 10, unit="ns")
        self.axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axi_control"), dut.ap_clk,
                                  dut.ap_rst_n, reset_active_level=False)
        if pause:
            rng = random.Random(1)
            for ch in (self.axil.write_if.aw_channel, self.axil.write_if.w_channel,
                       self.axil.write_if.b_channel, self.axil.read_if.ar_channel,
                       self.axil.read_if.r_channel):
                ch.set_pause_generator(itertools.cycle([rng.random() < 0.4 for _ in range(97)]))
        self.drv = ControlDriver(REGS, self.axil.read_dword, self.axil.write_dword)

    async def reset(self):
        self.clock.start()
        self.dut.ap_rst_n.value = 0
        await ClockCycles(self.dut.ap_clk, 4)
        self.dut.ap_rst_n.value = 1
        await ClockCycles(self.dut.ap_clk, 2)

    async def set_args(self, **values):
        for name, value in values.items():
            reg = REGS[name]
            if reg.bits == 64:
                await self.axil.write_qword(reg.offset, value)
            else:
                await self.axil.write_dword(reg.offset, value)

    async def get(self, name):
        reg = REGS[name]
        words = [await self.axil.read_dword(off) for off in reg.word_offsets]
        return sum(w << (32 * i) for i, w in enumerate(words))

    async def run_and_poll(self, **args):
        await self.set_args(**args)
        await self.axil.write_dword(rm.CTRL, rm.AP_START)
        for _ in range(1000):
            ctrl = await self.axil.read_dword(rm.CTRL)
            if ctrl & rm.AP_DONE:
                return ctrl
        raise AssertionError("ap_done never set")


@cocotb.test(timeout_time=200, timeout_unit="us")
async def xrt_sequence_twice(dut):
    """Two runs in a row, each: args, ap_start, poll until ap_done; status read back (once
    by hand, once through ControlDriver)."""
    for pause in (False, True):
        tb = TB(dut, pause)
        await tb.reset()
        assert await tb.axil.read_dword(rm.CTRL) == rm.AP_IDLE
        for run in range(2):
            hbm = {f"hbm{i:02d}": (0x1_0000_0000 * (i + 1) + run) for i in range(4)}
            args = dict(prog_words=20 + run, prog=0x1000 + run, ddr=0xABCD_0000_0000 + run,
                        **hbm)
            want_word = sum(v << (64 * i) for i, v in enumerate(hbm.values()))
            if run == 0:
                ctrl = await tb.run_and_poll(**args)
                assert ctrl & rm.AP_IDLE and not ctrl & rm.AP_START
                assert await tb.axil.read_dword(rm.CTRL) == rm.AP_IDLE  # clear on read
                assert await tb.get("cycles") == 20
                assert await tb.get("status") == 0x00
                assert await tb.get("error_pc") == 0
                assert await tb.get("error_word") == want_word
            else:
                res = await tb.drv.run(args)
                assert (res.status, res.error_pc, res.cycles) == (0x01, 1, 21)
                assert res.error_word == want_word and res.polls >= 1
                assert await tb.drv.read("ddr") == 0xABCD_0000_0001
            assert await tb.get("hbm02") == hbm["hbm02"]
        assert int(dut.starts.value) == 2


@cocotb.test(timeout_time=200, timeout_unit="us")
async def interrupt_enable_and_clear(dut):
    tb = TB(dut)
    await tb.reset()
    await tb.drv.enable_interrupt(done=True)
    await tb.set_args(prog_words=50)
    await tb.axil.write_dword(rm.CTRL, rm.AP_START)
    assert not dut.interrupt.value
    await with_timeout(RisingEdge(dut.interrupt), 5, "us")
    assert await tb.axil.read_dword(rm.ISR) == rm.IRQ_DONE
    ctrl = await tb.axil.read_dword(rm.CTRL)
    assert ctrl & rm.AP_DONE
    assert await tb.drv.clear_interrupt() == rm.IRQ_DONE  # toggle on write clears it
    await ClockCycles(dut.ap_clk, 2)
    assert not dut.interrupt.value
    assert await tb.axil.read_dword(rm.ISR) == 0
    # second run, interrupt again; GIE off masks it
    await tb.axil.write_dword(rm.CTRL, rm.AP_START)
    await with_timeout(RisingEdge(dut.interrupt), 5, "us")
    await tb.axil.write_dword(rm.GIE, 0)
    await ClockCycles(dut.ap_clk, 2)
    assert not dut.interrupt.value
    assert await tb.axil.read_dword(rm.ISR) == rm.IRQ_DONE


@cocotb.test(timeout_time=200, timeout_unit="us")
async def concurrent_traffic(dut):
    """Many reads and writes in flight at once (the master overlaps AW/W and AR/R)."""
    tb = TB(dut, pause=True)
    await tb.reset()
    rng = random.Random(5)
    values = {f"hbm{i:02d}": rng.getrandbits(64) for i in range(4)}
    writes = [cocotb.start_soon(tb.set_args(**{name: v})) for name, v in values.items()]
    for w in writes:
        await w
    tasks = [cocotb.start_soon(tb.get(name)) for name in values for _ in range(3)]
    for task, name in zip(tasks, [n for n in values for _ in range(3)], strict=True):
        assert await task == values[name], name
