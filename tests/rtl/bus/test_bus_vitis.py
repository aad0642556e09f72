"""Flat Vitis port names (rtl/bus/vitis.py): names, directions, widths, buses, the ap_clk /
active-low ap_rst_n wrapper (Amaranth simulation of the converted wrapper's behaviour)."""

from __future__ import annotations

import re

import pytest
from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from dfx.rtl.bus.axi import AxiLiteSignature, AxiSignature
from dfx.rtl.bus.vitis import VitisTop, vitis_buses, vitis_port_map, vitis_ports, vitis_verilog

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


class Toy(wiring.Component):
    """A kernel-shaped component: control slave, three HBM masters, DDR, streams, interrupt."""

    def __init__(self, n: int = 3):
        super().__init__({
            "s_axi_control": In(AxiLiteSignature(addr_width=12)),
            "m_axi_hbm": Out(AxiSignature(data_width=128, id_width=2)).array(n),
            "m_axi_ddr": Out(AxiSignature(data_width=64)),
            "tx": Out(stream.Signature(16)),
            "rx": In(stream.Signature(8)),
            "interrupt": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        count = Signal(4)
        m.d.sync += count.eq(count + 1)
        m.d.comb += [
            self.interrupt.eq(count == 3),
            self.tx.payload.eq(self.rx.payload),
            self.tx.valid.eq(self.rx.valid),
            self.rx.ready.eq(self.tx.ready),
            self.s_axi_control.awready.eq(1),
        ]
        for h in self.m_axi_hbm:
            m.d.comb += h.araddr.eq(self.s_axi_control.araddr)
        return m


def test_names_directions_widths():
    ports = {p.name: p for p in vitis_ports(Toy())}
    assert list(ports)[:2] == ["ap_clk", "ap_rst_n"]
    assert ports["m_axi_hbm02_awaddr"] == ("m_axi_hbm02_awaddr", "out", 64)
    assert ports["m_axi_hbm00_wdata"].width == 128
    assert ports["m_axi_hbm01_awready"].direction == "in"
    assert ports["m_axi_hbm01_awid"].width == 2
    assert ports["m_axi_ddr_rdata"] == ("m_axi_ddr_rdata", "in", 64)
    assert ports["s_axi_control_awaddr"] == ("s_axi_control_awaddr", "in", 12)
    assert ports["s_axi_control_rdata"].direction == "out"
    assert ports["tx_tdata"] == ("tx_tdata", "out", 16)
    assert ports["tx_tready"].direction == "in"
    assert ports["rx_tdata"] == ("rx_tdata", "in", 8)
    assert ports["rx_tready"].direction == "out"
    assert ports["interrupt"] == ("interrupt", "out", 1)
    assert not any("__" in n for n in ports)
    # one entry per member: 3 x 29 AXI4 + 29 AXI4 + 17 AXI-Lite + 2 x 3 stream + 1 + clk/rst
    assert len(ports) == 3 * 29 + 29 + 17 + 6 + 1 + 2


def test_index_digits_and_buses():
    names = [p.name for p in vitis_ports(Toy(), index_digits=3)]
    assert "m_axi_hbm002_rlast" in names
    buses = {b.name: b for b in vitis_buses(Toy())}
    assert [b.kind for b in buses.values()] == [
        "clock", "reset", "s_axilite", "m_axi", "m_axi", "m_axi", "m_axi", "m_axis", "s_axis",
        "wire"]
    assert buses["m_axi_hbm01"].signature == AxiSignature(data_width=128, id_width=2)
    assert {p.name for p in buses["tx"].ports} == {"tx_tdata", "tx_tvalid", "tx_tready"}
    assert len(buses["s_axi_control"].ports) == 17
    with pytest.raises(ValueError, match="index_digits"):
        vitis_ports(Toy(), index_digits=0)


def test_name_collision_is_an_error():
    class Clash(wiring.Component):
        def __init__(self):
            super().__init__({"a": Out(wiring.Signature({"b": Out(1)})), "a_b": Out(1)})

        def elaborate(self, platform):
            return Module()

    with pytest.raises(ValueError, match="'a_b'"):
        vitis_ports(Clash())

    class ClkClash(wiring.Component):
        def __init__(self):
            super().__init__({"ap_clk": In(1)})

        def elaborate(self, platform):
            return Module()

    with pytest.raises(ValueError, match="ap_clk"):
        vitis_ports(ClkClash())
    with pytest.raises(TypeError, match="wiring.Component"):
        vitis_ports(Module())


def test_verilog_port_declarations():
    text = vitis_verilog(Toy(2), "toy_kernel", emit_src=False)
    start = text.index("module toy_kernel(")
    top = text[start:text.index("endmodule", start)]
    decls = {name: kind for kind, name in
             re.findall(r"^\s*(input|output)\s+(?:wire\s+|reg\s+)?(?:\[[^\]]*\]\s*)?(\w+);",
                        top, re.M)}
    expected = {p.name: ("input" if p.direction == "in" else "output")
                for p in vitis_ports(Toy(2))}
    assert decls == expected
    with pytest.raises(ValueError, match="identifier"):
        vitis_verilog(Toy(), "not a name")


def test_reset_is_active_low_and_synchronous():
    """The wrapper's ap_rst_n = 0 resets the sync domain at the next ap_clk edge."""
    toy = Toy()
    top, ports = vitis_port_map(toy)
    assert isinstance(top, VitisTop) and set(ports) >= {"ap_clk", "ap_rst_n"}
    sim = Simulator(top)
    seen = []

    async def bench(ctx):
        async def edge():
            ctx.set(top.ap_clk, 1)
            await ctx.delay(1e-9)
            ctx.set(top.ap_clk, 0)
            await ctx.delay(1e-9)

        for _ in range(3):
            await edge()
        seen.append(ctx.get(toy.interrupt))  # count == 3
        ctx.set(top.ap_rst_n, 0)
        await edge()
        ctx.set(top.ap_rst_n, 1)
        seen.append(ctx.get(toy.interrupt))  # count back to 0
        for _ in range(3):
            await edge()
        seen.append(ctx.get(toy.interrupt))

    sim.add_testbench(bench)
    sim.run()
    assert seen == [1, 0, 1]


def test_registered_reset_acts_one_edge_later():
    """registered_reset: the reset goes through a flip-flop (high at power-on), so it takes
    effect at the second edge after ap_rst_n falls and ends one edge after it rises."""
    toy = Toy()
    top, _ports = vitis_port_map(toy, registered_reset=True)
    assert top.registered_reset
    sim = Simulator(top)
    seen = []

    async def bench(ctx):
        async def edge():
            ctx.set(top.ap_clk, 1)
            await ctx.delay(1e-9)
            ctx.set(top.ap_clk, 0)
            await ctx.delay(1e-9)

        await edge()  # power-on: held in reset by the flip-flop, count stays 0
        seen.append(ctx.get(toy.interrupt))
        for _ in range(3):
            await edge()
        seen.append(ctx.get(toy.interrupt))  # count == 3
        ctx.set(top.ap_rst_n, 0)
        await edge()  # the flip-flop takes the reset; count still counts
        seen.append(ctx.get(toy.interrupt))  # count == 4
        await edge()  # now reset
        ctx.set(top.ap_rst_n, 1)
        await edge()  # the flip-flop still holds the reset
        for _ in range(3):
            await edge()
        seen.append(ctx.get(toy.interrupt))  # count == 3 again

    sim.add_testbench(bench)
    sim.run()
    assert seen == [0, 1, 0, 1]
    assert "ap_rst_n" in vitis_verilog(Toy(), "toy", registered_reset=True)
