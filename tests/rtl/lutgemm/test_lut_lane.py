"""One LUT-GEMM row lane on Amaranth's simulator: keyed reads (both table forms, MSB negation),
exact key sums and the read-modify-write accumulation per address against a Python model,
including the same address on consecutive cycles (the transparent read), bubbles, group
restarts (``first``) and the scale stage's read port."""

from __future__ import annotations

import random

import pytest
from amaranth.sim import Simulator

from dfx.isa.config import load_core
from dfx.rtl.lutgemm import LutLane
from dfx.rtl.lutgemm.fixed import FIX_MAX, sum_bits

TINY = load_core("tiny")
pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


def lookup(tables: list[list[int]], word: int, mu: int, keys: int, symmetric: bool) -> int:
    total = 0
    for t in range(keys):
        key = (word >> (t * mu)) & ((1 << mu) - 1)
        if symmetric and key >> (mu - 1):
            total -= tables[t][~key & ((1 << (mu - 1)) - 1)]
        else:
            total += tables[t][key]
    return total


def test_from_core():
    lane = LutLane.from_core(TINY)
    assert lane.word_bits == 8 and lane.latency == 1
    assert lane.sum_bits == sum_bits(8192) == 54
    with pytest.raises(ValueError):
        LutLane(4, 2, symmetric=True, depth=6, max_group=64)
    with pytest.raises(ValueError):
        LutLane(4, 2, symmetric=True, depth=8, max_group=4)


@pytest.mark.parametrize(
    ("mu", "keys", "symmetric", "latency"),
    [(4, 2, True, 1), (4, 2, False, 2), (2, 4, True, 3)],
)
def test_accumulate(mu, keys, symmetric, latency):
    depth, max_group = 8, 64
    dut = LutLane(mu, keys, symmetric=symmetric, depth=depth, max_group=max_group,
                  lookup_latency=latency)
    rnd = random.Random(mu + latency)
    entries = 1 << (mu - 1 if symmetric else mu)
    lim = mu * FIX_MAX
    model = [None] * depth
    ops = []  # (word, addr, first, tables) or None for a bubble
    for i in range(400):
        if rnd.random() < 0.2:
            ops.append(None)
            continue
        # runs on one address (back to back), then jumps
        addr = rnd.randrange(depth) if i % 5 == 0 or not ops or ops[-1] is None else ops[-1][1]
        first = int(model[addr] is None or rnd.random() < 0.1)
        tables = [[rnd.choice([rnd.randrange(-lim, lim + 1), lim, -lim, 0])
                   for _ in range(entries)] for _ in range(keys)]
        word = rnd.randrange(1 << (mu * keys))
        v = lookup(tables, word, mu, keys, symmetric)
        model[addr] = v if first else model[addr] + v
        ops.append((word, addr, first, tables))

    async def tb(ctx):
        for op in ops:
            ctx.set(dut.valid, int(op is not None))
            if op is not None:
                word, addr, first, tables = op
                ctx.set(dut.word, word)
                ctx.set(dut.addr, addr)
                ctx.set(dut.first, first)
                for t in range(keys):
                    for e in range(entries):
                        ctx.set(dut.tables[t][e], tables[t][e])
            await ctx.tick()
        ctx.set(dut.valid, 0)
        await ctx.tick().repeat(latency + 1)
        ctx.set(dut.rd_en, 1)
        for a in range(depth):
            ctx.set(dut.rd_addr, a)
            await ctx.tick()
            if model[a] is not None:
                assert ctx.get(dut.rd_data) == model[a], a

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
