"""RegFifo: order, throughput and readiness at depths 1..4 (Amaranth sim)."""

from __future__ import annotations

import pytest
from amaranth.sim import Simulator

from dfx.rtl.bus.stream import RegFifo


def test_bad_depth() -> None:
    with pytest.raises(ValueError, match="depth must be a positive integer"):
        RegFifo(8, 0)


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
@pytest.mark.parametrize("pop_every", [1, 2, 3])
def test_order_and_levels(depth: int, pop_every: int) -> None:
    f = RegFifo(8, depth)
    got: list[int] = []

    async def bench(ctx):
        items = list(range(10, 30))
        for cyc in range(200):
            ctx.set(f.w_en, bool(items))
            ctx.set(f.w_data, items[0] if items else 0)
            ctx.set(f.r_en, cyc % pop_every == 0)
            assert ctx.get(f.w_rdy) == (ctx.get(f.level) < depth)
            w = ctx.get(f.w_rdy) and items
            if ctx.get(f.r_rdy) and cyc % pop_every == 0:
                got.append(ctx.get(f.r_data))
            await ctx.tick()
            if w:
                items.pop(0)

    sim = Simulator(f)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert got == list(range(10, 30))
