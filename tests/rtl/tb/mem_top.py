"""Verilator top for the memory model tests (``test_axi_mem_cocotb.py`` / ``mem_tb.py``): the
tiny card's :class:`MemorySystem` (4 x 1 MiB HBM, 16 MiB DDR), its AXI ports at the top
(``hbm00_*`` .. ``hbm03_*``, ``ddr_*``) for cocotbext-axi, and a hardware traffic generator
that takes the HBM ports over while ``gen_en`` is high (free-running speed measurement)."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from dfx.isa.config import load_core
from dfx.rtl.bus.axi import AxiSignature
from dfx.rtl.bus.vitis import vitis_verilog
from dfx.rtl.tb.axi_mem import MemorySystem, with_ram

TOP = "mem_top"
# distinct, size-aligned AXI bases, so that the tests see the base being subtracted
HBM_BASES = tuple((i + 1) << 32 for i in range(4))
DDR_BASE = 0x40_0000_0000


class TrafficGen(wiring.Component):
    """Per channel: three 16-beat read bursts, then one 16-beat write burst, forever, to
    incrementing addresses; R and B always ready. ``beats`` counts R beats + W beats."""

    def __init__(self, sig: AxiSignature, base: int, words: int):
        self._sig, self._base, self._words = sig, base, words
        super().__init__({"axi": Out(sig), "en": In(1), "beats": Out(32)})

    def elaborate(self, platform):
        m = Module()
        a = self.axi
        b = self._sig.data_width // 8
        word = Signal(range(self._words))
        phase = Signal(2)
        wleft = Signal(5)  # W beats still to send (the write's data follows its AW)
        is_write = phase == 3
        m.d.comb += [
            a.arvalid.eq(self.en & ~is_write), a.araddr.eq(self._base + word * b),
            a.arlen.eq(15), a.arsize.eq(self._sig.size), a.arburst.eq(1),
            a.awvalid.eq(self.en & is_write & (wleft == 0)),
            a.awaddr.eq(self._base + word * b), a.awlen.eq(15), a.awsize.eq(self._sig.size),
            a.awburst.eq(1),
            a.wvalid.eq(wleft != 0), a.wdata.eq(word), a.wstrb.eq(-1), a.wlast.eq(wleft == 1),
            a.rready.eq(1), a.bready.eq(1),
        ]
        step = (a.arvalid & a.arready) | (a.awvalid & a.awready)
        with m.If(step):
            m.d.sync += [phase.eq(phase + 1), word.eq(word + 16)]
        with m.If(a.awvalid & a.awready):
            m.d.sync += wleft.eq(16)
        with m.Elif(a.wvalid & a.wready):
            m.d.sync += wleft.eq(wleft - 1)
        m.d.sync += self.beats.eq(self.beats + (a.rvalid & a.rready) + (a.wvalid & a.wready))
        return m


def _mux(m, sel, gen, ext, mem):
    """mem <- gen if sel else ext (manager-driven members); responses to the selected one."""
    for name, member in mem.signature.members.items():
        if member.flow == In:  # driven by the manager (mem.axi is flipped)
            m.d.comb += getattr(mem, name).eq(Mux(sel, getattr(gen, name), getattr(ext, name)))
        else:
            v = getattr(mem, name)
            gate = name.endswith(("valid", "ready"))
            m.d.comb += [
                getattr(gen, name).eq(v & sel if gate else v),
                getattr(ext, name).eq(v & ~sel if gate else v),
            ]


class MemTop(wiring.Component):
    def __init__(self):
        self.mem = MemorySystem.from_core(load_core("tiny"), hbm_bases=HBM_BASES,
                                          ddr_base=DDR_BASE, id_width=2)
        lay = self.mem.layout
        sig = self.mem.channels[0].axi.signature.flip()
        self.gens = [TrafficGen(sig, HBM_BASES[i], lay.words(i) // 2) for i in range(4)]
        super().__init__({
            "hbm": In(sig).array(4),
            "ddr": In(sig),
            "bd": In(self.mem.bd.signature.flip()),
            "stall": In(4),
            "error": Out(4),
            "gen_en": In(1),
            "gen_beats": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = mem = self.mem
        wiring.connect(m, wiring.flipped(self.ddr), mem.ddr)
        wiring.connect(m, wiring.flipped(self.bd), mem.bd)
        m.d.comb += [mem.stall.eq(self.stall), self.error.eq(mem.error)]
        total = 0
        for i, g in enumerate(self.gens):
            m.submodules[f"gen{i}"] = g
            m.d.comb += g.en.eq(self.gen_en)
            _mux(m, self.gen_en, g.axi, self.hbm[i], mem.hbm[i])
            total = total + g.beats
        m.d.comb += self.gen_beats.eq(total)
        return m


def verilog() -> str:
    return with_ram(vitis_verilog(MemTop(), TOP, emit_src=False))
