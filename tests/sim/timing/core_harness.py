"""Run small programs on the whole core RTL (:class:`dfx.rtl.core.core.DfxCore` with the
testbench's memory models, :class:`dfx.rtl.tb.axi_mem.MemorySystem` on Amaranth memories) in
Amaranth's simulator, for cycle-exact comparisons with the timing model.

The host side is the XRT sequence (:class:`dfx.rtl.control.driver.ControlDriver` over a small
AXI4-Lite driver): arguments, ap_start, wait for done, read ``cycles``. Recorded per run: the
cycle of ``first_fetch``, every instruction's fire cycle (``fire``/``fire_pc``), the cycle of
done and the core's ``cycles`` register. Building the simulator takes about a minute for the
tiny core, so :func:`run_programs` runs many programs on one build.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.sim import Simulator

from dfx.isa.config import CoreConfig
from dfx.isa.encoding import Instruction, encode_program
from dfx.rtl.control import regmap as rm
from dfx.rtl.control.driver import ControlDriver
from dfx.rtl.core.core import DfxCore
from dfx.rtl.tb.axi_mem import MemorySystem
from dfx.rtl.tb.mem_model import MemLayout

#: Memory sizes of the harness (small Amaranth memories; programs must stay inside).
HBM_BYTES = 1 << 14  # per pseudo-channel
DDR_BYTES = 1 << 16
PROG_OFF = 1 << 15  # the program's DDR offset


def request_images(binary, prompt: list[int], gen: int, hbm_bytes: int, ddr_bytes: int
                   ) -> dict[str, bytes]:
    """A compiled model's card 0 memory images with the host's request written in (the ``cfg``
    block and the prompt tokens, as the runtime does)."""
    img = binary.cards[0]
    mem = {"hbm": bytearray(hbm_bytes), "ddr": bytearray(ddr_bytes)}
    for seg in img.segments:
        if seg.space in mem:
            data = seg.to_bytes()
            assert seg.addr + len(data) <= len(mem[seg.space]), f"{seg} does not fit"
            mem[seg.space][seg.addr:seg.addr + len(data)] = data
    cfg, tok = img.symbols["cfg"], img.symbols["tokens"]
    values = {"prompt_len": len(prompt), "gen_len": gen, "write_logits": 0, "card_id": 0,
              "n_cards": 1}
    for k, f in enumerate(cfg.get("fields", ("prompt_len", "gen_len", "write_logits",
                                             "card_id", "n_cards"))):
        a = cfg["addr"] + 4 * k
        mem[cfg["space"]][a:a + 4] = values[f].to_bytes(4, "little")
    for k, t in enumerate(list(prompt) + [0xFFFFFFFF] * gen):
        a = tok["addr"] + 4 * k
        mem[tok["space"]][a:a + 4] = int(t).to_bytes(4, "little")
    return {k: bytes(v) for k, v in mem.items()}


@dataclass
class Run:
    """One program on the core."""

    first_fetch: int = -1
    fires: list[tuple[int, int]] = field(default_factory=list)  # (cycle, pc)
    done: int = -1
    cycles: int = -1
    status: int = 0
    error_pc: int = 0


class _Top(wiring.Component):
    def __init__(self, core: CoreConfig, layout: MemLayout):
        self.core = DfxCore.from_core(core)
        self.mem = MemorySystem(layout, ram="amaranth")
        super().__init__({})

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = c = self.core
        m.submodules.mem = mem = self.mem
        for i in range(len(c.m_axi_hbm)):
            wiring.connect(m, c.m_axi_hbm[i], mem.hbm[i])
        wiring.connect(m, c.m_axi_ddr, mem.ddr)
        m.d.comb += [c.rx.valid.eq(0), c.tx.ready.eq(1)]
        return m


def layout_of(core: CoreConfig) -> MemLayout:
    n = core.b.hbm.pseudo_channels
    return MemLayout.from_core(core, hbm_bytes=HBM_BYTES, ddr_bytes=DDR_BYTES,
                               hbm_bases=tuple((i + 1) * HBM_BYTES for i in range(n)),
                               ddr_base=0)


def _words(image: bytes | np.ndarray, beat: int) -> list[int]:
    raw = np.frombuffer(bytes(image), np.uint8)
    if raw.size % beat:
        raw = np.concatenate([raw, np.zeros(beat - raw.size % beat, np.uint8)])
    return [int.from_bytes(raw[i:i + beat].tobytes(), "little") for i in range(0, raw.size, beat)]


def run_programs(core: CoreConfig, programs: list[tuple[list[Instruction], dict[str, bytes]]],
                 *, max_cycles: int = 20_000, vcd: str | None = None,
                 partial: bool = False) -> list[Run]:
    """Run each (program, {"hbm": bytes, "ddr": bytes}) on one simulator build; ``vcd``:
    write every signal to that file (for exploring, slow). ``partial``: a program that is not
    done after ``max_cycles`` ends the runs with what it did so far (done = -1)."""
    layout = layout_of(core)
    top = _Top(core, layout)
    dut = top.core
    regs = dut.regs
    beat = layout.beat_bytes
    il, n = layout.interleave, layout.hbm_channels
    runs: list[Run] = []
    cu = dut.control_unit
    ctrl = dut.s_axi_control

    async def bench(ctx):
        async def write_word(addr: int, value: int) -> None:
            ctx.set(ctrl.awaddr, addr)
            ctx.set(ctrl.awvalid, 1)
            ctx.set(ctrl.wdata, value)
            ctx.set(ctrl.wstrb, 0xF)
            ctx.set(ctrl.wvalid, 1)
            ctx.set(ctrl.bready, 1)
            aw = w = False
            while not (aw and w):
                a_r, w_r = ctx.get(ctrl.awready), ctx.get(ctrl.wready)
                await ctx.tick()
                aw = aw or a_r
                w = w or w_r
                if aw:
                    ctx.set(ctrl.awvalid, 0)
                if w:
                    ctx.set(ctrl.wvalid, 0)
            while not ctx.get(ctrl.bvalid):
                await ctx.tick()
            await ctx.tick()
            ctx.set(ctrl.bready, 0)

        async def read_word(addr: int) -> int:
            ctx.set(ctrl.araddr, addr)
            ctx.set(ctrl.arvalid, 1)
            ctx.set(ctrl.rready, 1)
            while not ctx.get(ctrl.arready):
                await ctx.tick()
            await ctx.tick()
            ctx.set(ctrl.arvalid, 0)
            while not ctx.get(ctrl.rvalid):
                await ctx.tick()
            v = ctx.get(ctrl.rdata)
            await ctx.tick()
            ctx.set(ctrl.rready, 0)
            return v

        drv = ControlDriver(regs, read_word, write_word)
        for prog, images in programs:
            # memories: HBM interleaved over the pseudo-channels, DDR, the program
            hbm = np.frombuffer(bytes(images.get("hbm", b"")), np.uint8)
            for c in range(n):
                mem = top.mem.channels[c].ram
                local = bytearray(HBM_BYTES)
                for blk in range(c, -(-hbm.size // il), n):
                    lo = (blk // n) * il
                    chunk = hbm[blk * il:(blk + 1) * il].tobytes()
                    local[lo:lo + len(chunk)] = chunk
                for i, wd in enumerate(_words(local, beat)):
                    if wd:
                        ctx.set(mem.data[i], wd)
            ddr = bytearray(DDR_BYTES)
            img = bytes(images.get("ddr", b""))
            ddr[:len(img)] = img
            code = bytes(encode_program(prog))
            ddr[PROG_OFF:PROG_OFF + len(code)] = code
            dmem = top.mem.channels[n].ram
            for i, wd in enumerate(_words(ddr, beat)):
                ctx.set(dmem.data[i], wd)
            args = {"prog_words": len(prog), "prog": PROG_OFF, "ddr": 0,
                    **{f"hbm{i:02d}": (i + 1) * HBM_BYTES for i in range(n)}, "cards": 1}
            await drv.write_args(args)
            run = Run()
            await write_word(rm.CTRL, rm.AP_START)
            cyc = 0
            while True:
                ff, fire, pc, done = (ctx.get(cu.first_fetch), ctx.get(cu.fire),
                                      ctx.get(cu.fire_pc), ctx.get(dut._ctrl.done))
                if ff:
                    run.first_fetch = cyc
                if fire:
                    run.fires.append((cyc, pc))
                if done:
                    run.done = cyc
                    await ctx.tick()
                    break
                await ctx.tick()
                cyc += 1
                if cyc > max_cycles:
                    if not partial:
                        raise AssertionError(f"no done after {max_cycles} cycles")
                    runs.append(run)
                    return
            run.cycles = await drv.read("cycles")
            run.status = await drv.read("status")
            run.error_pc = await drv.read("error_pc")
            await drv.wait_done(4)
            runs.append(run)

    sim = Simulator(top)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()
    return runs
