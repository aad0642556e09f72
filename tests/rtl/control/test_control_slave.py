"""``ControlSlave`` (rtl/control/ctrl.py) on Amaranth's simulator: AXI4-Lite handshakes in every
order with back-pressure, every register readable, ap_ctrl_hs start/done/idle/ready,
auto_restart, GIE/IER/ISR and the interrupt, against a fake core that runs N cycles."""

from __future__ import annotations

import random

import pytest
from amaranth.sim import Simulator

from dfx.isa.config import load_core
from dfx.rtl.control import regmap as rm
from dfx.rtl.control.ctrl import ControlSlave

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")

TINY = load_core("tiny")


class Lite:
    """A cycle-level AXI4-Lite master for the Amaranth simulator."""

    def __init__(self, ctx, bus, rng=None, stall=0.0):
        self.ctx, self.bus, self.rng, self.stall = ctx, bus, rng or random.Random(0), stall

    def _stalled(self) -> bool:
        return self.stall > 0 and self.rng.random() < self.stall

    async def write(self, addr, data, strb=0xF, order="same"):
        """order: "same" (AW and W together), "aw" (AW first, W 3 cycles later), "w"."""
        ctx, bus = self.ctx, self.bus
        aw_wait = 3 if order == "w" else 0
        w_wait = 3 if order == "aw" else 0
        aw_done = w_done = False
        ctx.set(bus.awaddr, addr)
        ctx.set(bus.wdata, data)
        ctx.set(bus.wstrb, strb)
        while not (aw_done and w_done):
            ctx.set(bus.awvalid, not aw_done and aw_wait == 0)
            ctx.set(bus.wvalid, not w_done and w_wait == 0)
            aw_hs = ctx.get(bus.awvalid) and ctx.get(bus.awready)
            w_hs = ctx.get(bus.wvalid) and ctx.get(bus.wready)
            await ctx.tick()
            aw_done |= bool(aw_hs)
            w_done |= bool(w_hs)
            aw_wait = max(0, aw_wait - 1)
            w_wait = max(0, w_wait - 1)
        ctx.set(bus.awvalid, 0)
        ctx.set(bus.wvalid, 0)
        while True:
            ready = not self._stalled()
            ctx.set(bus.bready, ready)
            hs = ready and ctx.get(bus.bvalid)
            if hs:
                assert ctx.get(bus.bresp) == 0
            await ctx.tick()
            if hs:
                break
        ctx.set(bus.bready, 0)

    async def read(self, addr):
        ctx, bus = self.ctx, self.bus
        ctx.set(bus.araddr, addr)
        ctx.set(bus.arvalid, 1)
        while True:
            hs = ctx.get(bus.arready)
            await ctx.tick()
            if hs:
                break
        ctx.set(bus.arvalid, 0)
        while True:
            ready = not self._stalled()
            ctx.set(bus.rready, ready)
            hs = ready and ctx.get(bus.rvalid)
            value = ctx.get(bus.rdata)
            if hs:
                assert ctx.get(bus.rresp) == 0
            await ctx.tick()
            if hs:
                break
        ctx.set(bus.rready, 0)
        return value


def run(dut, bench, *, run_len=5, cycles=20000, core_log=None):
    """Simulate ``bench(ctx, lite)`` with a fake core: after each ``start`` it is busy for
    ``run_len`` cycles (``idle`` low), then pulses ``done`` and drives status values."""
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    log = core_log if core_log is not None else []

    async def core(ctx):
        busy = 0
        ctx.set(dut.idle, 1)
        trig = ctx.tick().sample(dut.start, dut.prog_words, dut.prog, dut.ddr, *dut.hbm)
        async for _clk, _rst, start, words, prog, ddr, *hbm in trig:
            ctx.set(dut.done, 0)
            if busy:
                busy -= 1
                if busy == 0:
                    ctx.set(dut.done, 1)
                    ctx.set(dut.idle, 1)
                    ctx.set(dut.cycles, run_len + len(log))
            if start:
                assert busy == 0
                log.append((words, prog, ddr, hbm))
                busy = run_len
                ctx.set(dut.idle, 0)

    async def body(ctx):
        await bench(ctx, Lite(ctx, dut.s_axi_control))

    sim.add_process(core)
    sim.add_testbench(body)
    sim.run_until(cycles * 1e-8)
    return log


async def ticks(ctx, n):
    for _ in range(n):
        await ctx.tick()


@pytest.mark.parametrize("order", ["same", "aw", "w"])
def test_args_every_register_and_strobes(order):
    dut = ControlSlave.from_core(TINY)
    regs = dut.regs
    rng = random.Random(order)
    done = []

    async def bench(ctx, lite):
        lite.stall, lite.rng = 0.3, rng
        ctx.set(dut.status, 0x11)
        ctx.set(dut.error_pc, 0x22)
        ctx.set(dut.cycles, 0x3333_4444_5555_6666)
        ctx.set(dut.error_word, (0xABCD << 240) | 0x77)
        values = {r.name: rng.getrandbits(r.bits) for r in regs.args}
        for name, v in values.items():
            for off, word in regs.words(name, v):
                await lite.write(off, word, order=order)
        for name, v in values.items():
            got = 0
            for i, off in enumerate(regs[name].word_offsets):
                got |= (await lite.read(off)) << (32 * i)
            assert got == v, name
            assert ctx.get(dut.arg(name)) == v
        # byte strobes: change byte 2 of hbm01's low word only
        off = regs["hbm01"].offset
        await lite.write(off, 0xFFFF_FFFF, strb=0b0100, order=order)
        want = (values["hbm01"] & ~(0xFF << 16)) | (0xFF << 16)
        assert ctx.get(dut.hbm[1]) == want
        # status registers read the core's inputs; writes to them are ignored
        await lite.write(regs["status"].offset, 0xFFFF, order=order)
        assert await lite.read(regs["status"].offset) == 0x11
        assert await lite.read(regs["error_pc"].offset) == 0x22
        assert await lite.read(regs["cycles"].offset) == 0x5555_6666
        assert await lite.read(regs["cycles"].offset + 4) == 0x3333_4444
        assert await lite.read(regs["error_word"].offset) == 0x77
        assert await lite.read(regs["error_word"].offset + 28) == 0xABCD_0000
        # reserved / unmapped words read 0
        for off in (0x14, 0x20, 0x2C, regs.range - 4):
            await lite.write(off, 0xFFFF_FFFF, order=order)
            assert await lite.read(off) == 0
        # CTRL of an idle core with nothing started: ap_idle only
        assert await lite.read(rm.CTRL) == rm.AP_IDLE
        done.append(1)

    run(dut, bench)
    assert done


def test_xrt_sequence_start_twice_and_idle():
    """Write args, set ap_start, poll CTRL until ap_done; twice; ap_done is clear-on-read."""
    dut = ControlSlave.from_core(TINY)
    regs = dut.regs
    log: list = []
    seen = []

    async def bench(ctx, lite):
        for run_no in range(2):
            for name, v in (("prog_words", 7 + run_no), ("prog", 0x1000), ("ddr", 0x2000),
                            ("hbm03", 0x4_0000_0000 + run_no)):
                for off, word in regs.words(name, v):
                    await lite.write(off, word)
            await lite.write(rm.CTRL, rm.AP_START)
            first = await lite.read(rm.CTRL)
            seen.append(first)
            polls = 0
            while True:
                ctrl = await lite.read(rm.CTRL)
                polls += 1
                if ctrl & rm.AP_DONE:
                    break
                assert polls < 50
            assert ctrl & rm.AP_IDLE and not ctrl & rm.AP_START
            seen.append(ctrl)
            assert await lite.read(rm.CTRL) == rm.AP_IDLE  # done and ready cleared on read
            cyc = await lite.read(regs["cycles"].offset)
            assert cyc == 12 + len(log)

    run(dut, bench, run_len=12, core_log=log)
    assert len(log) == 2
    assert [entry[0] for entry in log] == [7, 8]
    assert log[1][3][3] == 0x4_0000_0001 and log[0][1] == 0x1000 and log[0][2] == 0x2000
    # right after the write the core has started (ap_start cleared, ap_ready seen, not idle)
    assert seen[0] == rm.AP_READY
    assert seen[1] & rm.AP_DONE


def test_start_waits_for_idle_and_auto_restart():
    dut = ControlSlave.from_core(TINY)
    log: list = []

    async def bench(ctx, lite):
        ctx.set(dut.idle, 0)  # the core is busy with something else
        await lite.write(rm.CTRL, rm.AP_START | rm.AUTO_RESTART)
        await ticks(ctx, 5)
        assert not log
        ctrl = await lite.read(rm.CTRL)
        assert ctrl == rm.AP_START | rm.AUTO_RESTART  # waiting, not idle
        ctx.set(dut.idle, 1)
        await ticks(ctx, 30)
        n = len(log)
        assert n >= 3  # restarts by itself (run_len 5 + 1 cycle to restart)
        await lite.write(rm.CTRL, 0)  # clear auto_restart (ap_start is not cleared by a write)
        await ticks(ctx, 30)
        assert len(log) <= n + 2
        m = len(log)
        await ticks(ctx, 30)
        assert len(log) == m
        ctrl = await lite.read(rm.CTRL)
        assert ctrl & rm.AP_DONE and ctrl & rm.AP_IDLE and not ctrl & rm.AUTO_RESTART

    run(dut, bench, run_len=5, core_log=log)


def test_interrupts_gie_ier_isr():
    dut = ControlSlave.from_core(TINY)
    trace = []

    async def bench(ctx, lite):
        await lite.write(rm.CTRL, rm.AP_START)  # no interrupt enabled
        await ticks(ctx, 20)
        assert not ctx.get(dut.interrupt)
        assert await lite.read(rm.ISR) == 0
        await lite.write(rm.IER, rm.IRQ_DONE)
        await lite.write(rm.CTRL, rm.AP_START)
        await ticks(ctx, 20)
        assert await lite.read(rm.ISR) == rm.IRQ_DONE
        assert not ctx.get(dut.interrupt)  # GIE off
        await lite.write(rm.GIE, 1)
        assert ctx.get(dut.interrupt)
        trace.append("irq")
        await lite.write(rm.ISR, rm.IRQ_DONE)  # toggle clears
        assert not ctx.get(dut.interrupt)
        assert await lite.read(rm.ISR) == 0
        await lite.write(rm.ISR, rm.IRQ_READY)  # toggle sets (ready not enabled: no irq)
        assert await lite.read(rm.ISR) == rm.IRQ_READY
        assert not ctx.get(dut.interrupt)
        await lite.write(rm.ISR, rm.IRQ_READY)
        # ready interrupt: fires when the core takes ap_start
        await lite.write(rm.IER, rm.IRQ_READY)
        await lite.write(rm.CTRL, rm.AP_START)
        assert ctx.get(dut.interrupt)
        assert await lite.read(rm.ISR) == rm.IRQ_READY
        await lite.write(rm.ISR, rm.IRQ_READY)
        assert not ctx.get(dut.interrupt)
        await ticks(ctx, 20)
        assert not ctx.get(dut.interrupt)  # done not enabled
        assert await lite.read(rm.GIE) == 1 and await lite.read(rm.IER) == rm.IRQ_READY
        trace.append("ok")

    run(dut, bench, run_len=6)
    assert trace == ["irq", "ok"]


def test_done_and_clear_on_read_in_one_cycle_keeps_done():
    """A done arriving in the cycle of a CTRL read is not lost."""
    dut = ControlSlave.from_core(TINY)
    result = []

    async def bench(ctx, lite):
        ctx.set(dut.idle, 1)
        await lite.write(rm.CTRL, rm.AP_START)
        # the fake core (run_len 4) pulses done 4 cycles after start; issue reads back to back
        values = [await lite.read(rm.CTRL) for _ in range(6)]
        result.append(values)

    run(dut, bench, run_len=4)
    values = result[0]
    assert any(v & rm.AP_DONE for v in values)
    # once reported, done is cleared by that read
    i = next(i for i, v in enumerate(values) if v & rm.AP_DONE)
    assert all(not v & rm.AP_DONE for v in values[i + 1:])


def test_parameters_and_properties():
    regs = rm.regmap(TINY)
    dut = ControlSlave(regs)
    assert dut.regs is regs and dut.read_latency == 1 and dut.write_latency == 2
    assert len(dut.hbm) == TINY.b.hbm.pseudo_channels
    assert dut.arg("hbm02") is dut.hbm[2]
    assert dut.s_axi_control.awaddr.shape().width == 12
    with pytest.raises(TypeError, match="regs must be a RegMap"):
        ControlSlave(TINY)
    with pytest.raises(KeyError):
        dut.arg("status")
