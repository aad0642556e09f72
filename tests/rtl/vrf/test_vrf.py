"""The vector register file: construction checks and read/write behaviour (Amaranth sim)."""

from __future__ import annotations

import pytest
from amaranth.sim import Simulator

from dfx.isa.config import load_core
from dfx.rtl.vrf.vrf import Vrf


@pytest.mark.parametrize("kw, msg", [
    ({"vectors": 0, "d": 8}, "vectors must be a positive integer"),
    ({"vectors": 4, "d": 6}, "d must be a power of two"),
])
def test_bad_parameters(kw: dict, msg: str) -> None:
    with pytest.raises(ValueError, match=msg):
        Vrf(**kw, read_ports=["a"], write_ports=["a"])


def test_bad_port_names() -> None:
    with pytest.raises(ValueError, match="read_ports must not repeat"):
        Vrf(4, 8, read_ports=["a", "a"], write_ports=["b"])
    with pytest.raises(ValueError, match="write_ports must be a non-empty"):
        Vrf(4, 8, read_ports=["a"], write_ports=[])


def test_from_core_and_ports() -> None:
    v = Vrf.from_core(load_core("tiny"), read_ports=["vpu_a", "mpu"], write_ports=["vpu"])
    assert v.vectors == 4096 and v.d == 8 and v.read_latency == 1
    assert v.read_ports == ("vpu_a", "mpu") and v.write_ports == ("vpu",)


def test_write_then_read_next_cycle() -> None:
    dut = Vrf(16, 4, read_ports=["a", "b"], write_ports=["x", "y"])

    async def bench(ctx):
        # two ports write different vectors in the same cycle
        ctx.set(dut.w_x.addr, 3)
        ctx.set(dut.w_x.data, [1, 2, 3, 4])
        ctx.set(dut.w_x.en, 1)
        ctx.set(dut.w_y.addr, 5)
        ctx.set(dut.w_y.data, [5, 6, 7, 8])
        ctx.set(dut.w_y.en, 1)
        ctx.set(dut.r_a.addr, 3)
        ctx.set(dut.r_a.en, 1)
        await ctx.tick()
        ctx.set(dut.w_x.en, 0)
        ctx.set(dut.w_y.en, 0)
        # the read in the write cycle saw the old contents; the next one sees the write
        assert [int(x) for x in ctx.get(dut.r_a.data)] == [0, 0, 0, 0]
        ctx.set(dut.r_b.addr, 5)
        ctx.set(dut.r_b.en, 1)
        await ctx.tick()
        assert [int(x) for x in ctx.get(dut.r_a.data)] == [1, 2, 3, 4]
        assert [int(x) for x in ctx.get(dut.r_b.data)] == [5, 6, 7, 8]
        ctx.set(dut.r_a.en, 0)
        ctx.set(dut.r_a.addr, 5)
        await ctx.tick()
        assert [int(x) for x in ctx.get(dut.r_a.data)] == [1, 2, 3, 4]  # held while en low

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
