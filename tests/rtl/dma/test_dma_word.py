"""lw / sw (the controller's word port) and the program loader through the memory system;
lw / sw mixed with DMA commands in one issue order (a lw after a DMA store to the same bytes
sees the store, a DMA load after a sw sees the sw)."""

from __future__ import annotations

import random

import dma_ref
import numpy as np
import pytest
from amaranth.sim import Simulator
from dma_harness import DDR_BASE, Mems, tiny_geometry

from dfx.rtl.dma.dma_ops import DmaOp
from dfx.rtl.dma.system import MemorySystem
from dfx.rtl.isa_layouts import Space

SP = {"hbm": Space.HBM, "ddr": Space.DDR}


def _system(g):
    return MemorySystem(g, wbuf_latency=1, max_interleave=2, bias_depth=8, program_words=64)


@pytest.mark.parametrize("stall, seed", [(0.0, 1), (0.3, 2)])
def test_words_and_dma_in_issue_order(stall: float, seed: int) -> None:
    g = tiny_geometry()
    d = g.d
    window = 512
    rng = random.Random(seed)
    dut = _system(g)
    mems = Mems(g, hbm_bytes=4 * window, ddr_bytes=window, stall=stall, seed=seed)
    images = {k: rng.randbytes(window) for k in SP}
    mems.write_hbm(0, images["hbm"])
    mems.ddr[:window] = images["ddr"]
    items = []
    for _ in range(40):
        sp = rng.choice(list(SP))
        a = 4 * rng.randrange(64)  # a small window: many hazards
        r = rng.random()
        if r < 0.35:
            items.append(("lw", sp, a, 0))
        elif r < 0.7:
            items.append(("sw", sp, a, rng.getrandbits(32)))
        elif r < 0.85:
            n = rng.randrange(1, 3 * d)
            items.append(("store", sp, 2 * rng.randrange(100), n,
                          [rng.getrandbits(16) for _ in range(-(-n // d) * d)]))
        else:
            items.append(("load", sp, 2 * rng.randrange(100), rng.randrange(1, 3 * d)))
    resp, loads = [], []
    n_resp = sum(it[0] in ("lw", "sw") for it in items)
    n_load = sum(-(-it[3] // d) for it in items if it[0] == "load")

    async def issue(ctx):
        mems.set_bases(ctx, dut.hbm_base, dut.ddr_base)
        for it in items:
            if it[0] in ("lw", "sw"):
                port = dut.word_req
                ctx.set(port.payload, {"write": it[0] == "sw", "space": SP[it[1]],
                                       "addr": it[2], "wdata": it[3]})
            else:
                port = dut.dma_cmd
                ctx.set(port.payload, {"op": DmaOp.STORE if it[0] == "store" else DmaOp.LOAD,
                                       "dst_space": SP[it[1]], "dst": it[2],
                                       "src_space": SP[it[1]], "src": it[2], "n": it[3],
                                       "stride": 0})
            ctx.set(port.valid, 1)
            await ctx.tick().until(port.ready)
            ctx.set(port.valid, 0)

    async def store_feed(ctx):
        for it in items:
            if it[0] != "store":
                continue
            for k in range(-(-it[3] // d)):
                ctx.set(dut.dma_store.payload, it[4][k * d:(k + 1) * d])
                ctx.set(dut.dma_store.valid, 1)
                await ctx.tick().until(dut.dma_store.ready)
                ctx.set(dut.dma_store.valid, 0)

    n_dma = sum(it[0] in ("store", "load") for it in items)

    async def sink(ctx):
        r2 = random.Random(seed)
        cyc = dones = 0
        while len(resp) < n_resp or len(loads) < n_load or dones < n_dma:
            ok = int(not stall or r2.random() > stall)
            ctx.set(dut.word_resp.ready, ok)
            ctx.set(dut.dma_load.ready, 1)
            _, _, rv, rp, lv, lp, dn = await ctx.tick().sample(
                dut.word_resp.valid, dut.word_resp.payload, dut.dma_load.valid,
                dut.dma_load.payload, dut.dma_done)
            cyc += 1
            assert cyc < 20000
            if rv and ok:
                resp.append(rp.rdata)
            if lv:
                loads.append([int(x) for x in lp])
            dones += dn

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    mems.attach(sim, dut.hbm, dut.ddr)
    sim.add_testbench(issue, background=True)
    sim.add_testbench(store_feed, background=True)
    sim.add_testbench(sink)
    sim.run()

    mem = dma_ref.memories(images)
    eresp, eloads = [], []
    for it in items:
        m = mem[it[1]]
        if it[0] == "lw":
            eresp.append(int(m.read(it[2], 4).view("<u4")[0]))
        elif it[0] == "sw":
            m.write(it[2], it[3].to_bytes(4, "little"))
            eresp.append(None)
        elif it[0] == "store":
            dma_ref.store(m, it[2], it[3], 0, np.array(it[4][:it[3]], dtype=np.uint16), d)
        else:
            eloads.extend(list(v) for v in dma_ref.load(m, it[2], it[3], 0, d))
    assert [r for r, e in zip(resp, eresp, strict=True) if e is not None] == [
        e for e in eresp if e is not None]
    assert loads == eloads
    assert mems.read_hbm(0, window) == bytes(mem["hbm"].read(0, window))
    assert bytes(mems.ddr[:window]) == bytes(mem["ddr"].read(0, window))


@pytest.mark.parametrize("offset, words", [(0, 9), (96, 17), (32, 1)])
def test_program_loader(offset: int, words: int) -> None:
    g = tiny_geometry()
    dut = _system(g)
    mems = Mems(g, ddr_bytes=4096, stall=0.2, seed=offset)
    prog = random.Random(words).randbytes(32 * words)
    mems.ddr[offset:offset + len(prog)] = prog
    got: list[int] = []

    async def bench(ctx):
        mems.set_bases(ctx, dut.hbm_base, dut.ddr_base)
        ctx.set(dut.prog_cmd.payload, {"addr": DDR_BASE + offset, "words": words})
        ctx.set(dut.prog_cmd.valid, 1)
        await ctx.tick().until(dut.prog_cmd.ready)
        ctx.set(dut.prog_cmd.valid, 0)
        ctx.set(dut.prog_data.ready, 1)
        cyc = 0
        while len(got) < words:
            _, _, v, p = await ctx.tick().sample(dut.prog_data.valid, dut.prog_data.payload)
            cyc += 1
            assert cyc < 5000
            if v:
                got.append(p)
        await ctx.tick().repeat(5)
        assert not ctx.get(dut.prog_data.valid)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    mems.attach(sim, dut.hbm, dut.ddr)
    sim.add_testbench(bench)
    sim.run()
    assert got == [int.from_bytes(prog[32 * i:32 * (i + 1)], "little") for i in range(words)]
