"""``Fifo2`` (rtl/bus/stream.py) against a Python queue under random push/pop, on Amaranth's
simulator: order, capacity 2, one item per cycle, ready flags from registered state only."""

from __future__ import annotations

import random

import pytest
from amaranth.lib import data
from amaranth.sim import Simulator

from dfx.rtl.bus.stream import Fifo2

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


def _run(dut, body, cycles):
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(body)
    sim.run_until(cycles * 1e-8)


@pytest.mark.parametrize("p_push,p_pop", [(1.0, 1.0), (0.7, 0.4), (0.4, 0.8), (0.9, 0.9)])
def test_fifo2_matches_queue(p_push, p_pop):
    dut = Fifo2(8)
    rng = random.Random(int(p_push * 10 + p_pop * 100))
    model: list[int] = []
    stats = {"moved": 0}
    n = 400

    async def body(ctx):
        nxt = 0
        for cycle in range(n):
            push = rng.random() < p_push
            pop = rng.random() < p_pop
            ctx.set(dut.w_data, nxt & 0xFF)
            ctx.set(dut.w_en, push)
            ctx.set(dut.r_en, pop)
            w_rdy, r_rdy = ctx.get(dut.w_rdy), ctx.get(dut.r_rdy)
            # ready flags are registered: equal to the model level, whatever w_en / r_en are
            assert w_rdy == (len(model) < 2), cycle
            assert r_rdy == (len(model) > 0), cycle
            if r_rdy and pop:
                assert ctx.get(dut.r_data) == model.pop(0)
                stats["moved"] += 1
            if w_rdy and push:
                model.append(nxt & 0xFF)
                nxt += 1
            await ctx.tick()

    _run(dut, body, n + 2)
    if p_push == p_pop == 1.0:
        assert stats["moved"] >= n - 2  # one item per cycle in steady state


def test_fifo2_layout_payload_and_properties():
    layout = data.StructLayout({"a": 4, "b": 3})
    f = Fifo2(layout)
    assert f.depth == 2 and f.latency == 1 and f.shape is layout
    with pytest.raises(TypeError, match="shape must be a shape"):
        Fifo2("wide")
