"""The DMA engine through the whole memory system: random load / store / store_t / copy
sequences over HBM, DDR and the weight buffer, bit for bit against the functional semantics,
with memory stalls and back-pressure; then throughput."""

from __future__ import annotations

import random

import dma_ref
import numpy as np
import pytest
from amaranth.sim import Simulator
from dma_harness import Mems, tiny_geometry, wbuf_image, wbuf_load

from dfx.isa.config import load_core
from dfx.rtl.dma.dma_ops import DmaOp
from dfx.rtl.dma.system import MemorySystem
from dfx.rtl.isa_layouts import Space

SPACES = {"hbm": Space.HBM, "ddr": Space.DDR, "wbuf": Space.WBUF}
OPS = {"load": DmaOp.LOAD, "store": DmaOp.STORE, "store_t": DmaOp.STORE_T, "copy": DmaOp.COPY}


def _span(g, kind: str, n: int, stride: int) -> int:
    """Bytes from the first to past the last byte a command touches in its strided space."""
    d, l = g.d, g.l  # noqa: E741
    if n == 0:
        return 0
    if kind == "store_t":
        return (-(-n // l) - 1) * stride + (min(l, n) - 1) * 2 * d + 2
    if kind in ("load", "store") and stride:
        return (-(-n // d) - 1) * stride + 2 * d
    return 2 * n


def _random_cmds(rng: random.Random, g, n_cmds: int, window: int, kinds=None):
    d = g.d
    cmds = []
    for _ in range(n_cmds):
        kind = rng.choice(kinds or ["load", "store", "store_t", "copy"])
        stride = rng.choice([0, 0, 2 * d, 2 * rng.randrange(1, 2 * d),
                             2 * rng.randrange(d, 6 * d)])
        if kind == "store_t":
            stride = rng.choice([0, 2 * rng.randrange(1, 8 * d), g.row_bytes])
        if kind == "copy":
            stride = 0
        n = rng.choice([0, 1, rng.randrange(1, 4 * d), d, 2 * d, rng.randrange(1, 12 * d)])
        while _span(g, kind, n, stride) > window // 2:
            n //= 2
        span = _span(g, kind, n, stride)
        a = rng.choice(list(SPACES))
        b = rng.choice(list(SPACES))
        x = 2 * rng.randrange((window - span) // 2 + 1)
        y = 2 * rng.randrange((window - 2 * n) // 2 + 1)
        if kind == "copy" and rng.random() < 0.5:  # overlapping copies, both directions
            b = a
            y = x + 2 * rng.randrange(-n - 4, n + 4)
            if rng.random() < 0.3:  # fast copy: R-aligned relative to each other
                y = x + g.row_bytes * rng.choice([-1, 1, 2])
            if y < 0 or y + 2 * n > window:
                y = x
        vec = [rng.getrandbits(16) for _ in range(-(-n // d) * d)]
        cmds.append({"kind": kind, "n": n, "stride": stride, "src_space": a, "src": x,
                     "dst_space": b if kind == "copy" else a, "dst": y if kind == "copy" else x,
                     "vec": vec})
    return cmds


def _reference(g, images, cmds):
    mem = dma_ref.memories(images)
    loads = []
    for c in cmds:
        n = c["n"]
        if n == 0:
            continue
        if c["kind"] == "load":
            loads.extend(dma_ref.load(mem[c["src_space"]], c["src"], n, c["stride"], g.d))
        elif c["kind"] == "store":
            v = np.array(c["vec"][:n], dtype=np.uint16)
            dma_ref.store(mem[c["src_space"]], c["src"], n, c["stride"], v, g.d)
        elif c["kind"] == "store_t":
            v = np.array(c["vec"][:n], dtype=np.uint16)
            dma_ref.store_t(mem[c["src_space"]], c["src"], n, c["stride"], v, g.d, g.l)
        else:
            dma_ref.copy(mem[c["src_space"]], c["src"], mem[c["dst_space"]], c["dst"], n)
    return loads, mem


def _payload(c):
    if c["kind"] in ("store", "store_t"):
        dst_space, dst, src_space, src = c["src_space"], c["src"], "hbm", 0
    elif c["kind"] == "load":
        dst_space, dst, src_space, src = "hbm", 0, c["src_space"], c["src"]
    else:
        dst_space, dst, src_space, src = c["dst_space"], c["dst"], c["src_space"], c["src"]
    return {"op": OPS[c["kind"]], "dst_space": SPACES[dst_space], "dst": dst,
            "src_space": SPACES[src_space], "src": src, "n": c["n"], "stride": c["stride"]}


def run_dma(g, cmds, *, window: int, stall: float, seed: int, wbuf_latency: int = 1,
            latency: int = 6, cycles: int | None = None):
    """Run ``cmds``; returns (loaded vectors, final images, cycle of each load vector, cycles
    of each done pulse, initial images)."""
    rng = random.Random(seed)
    dut = MemorySystem(g, wbuf_latency=wbuf_latency, max_interleave=2, bias_depth=8,
                       program_words=64)
    mems = Mems(g, hbm_bytes=4 * window, ddr_bytes=window, stall=stall, seed=seed,
                latency=latency)
    images = {k: rng.randbytes(window) for k in SPACES}
    mems.write_hbm(0, images["hbm"])
    mems.ddr[:window] = images["ddr"]
    got, when, dones = [], [], []
    final = {}
    n_loads = sum(-(-c["n"] // g.d) for c in cmds if c["kind"] == "load")

    async def cmd_feed(ctx):
        mems.set_bases(ctx, dut.hbm_base, dut.ddr_base)
        await wbuf_load(ctx, dut.wbuf_mem, g, images["wbuf"])
        for c in cmds:
            ctx.set(dut.dma_cmd.payload, _payload(c))
            ctx.set(dut.dma_cmd.valid, 1)
            await ctx.tick().until(dut.dma_cmd.ready)
            ctx.set(dut.dma_cmd.valid, 0)
            for _ in range(rng.randrange(3) if stall else 0):
                await ctx.tick()

    async def store_feed(ctx):
        r2 = random.Random(seed + 1)
        for c in cmds:
            if c["kind"] not in ("store", "store_t") or c["n"] == 0:
                continue
            for k in range(-(-c["n"] // g.d)):
                ctx.set(dut.dma_store.payload, c["vec"][k * g.d:(k + 1) * g.d])
                ctx.set(dut.dma_store.valid, 1)
                await ctx.tick().until(dut.dma_store.ready)
                ctx.set(dut.dma_store.valid, 0)
                if stall and r2.random() < stall:
                    await ctx.tick()

    async def sink(ctx):
        r3 = random.Random(seed + 2)
        cyc = 0
        while True:
            ok = int(not stall or r3.random() > stall)
            ctx.set(dut.dma_load.ready, ok)
            _, _, v, p, dn = await ctx.tick().sample(dut.dma_load.valid, dut.dma_load.payload,
                                                     dut.dma_done)
            cyc += 1
            if v and ok:
                got.append([int(x) for x in p])
                when.append(cyc)
            if dn:
                dones.append(cyc)

    async def main(ctx):
        limit = cycles or 200000
        for _ in range(limit):
            await ctx.tick()
            if len(dones) == len(cmds):
                break
        await ctx.tick().repeat(20)
        final["wbuf"] = wbuf_image(ctx, dut.wbuf_mem, g, window // g.row_bytes)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    mems.attach(sim, dut.hbm, dut.ddr)
    sim.add_testbench(cmd_feed, background=True)
    sim.add_testbench(store_feed, background=True)
    sim.add_testbench(sink, background=True)
    sim.add_testbench(main)
    sim.run()
    assert len(got) == n_loads, (len(got), n_loads)
    final["hbm"] = mems.read_hbm(0, window)
    final["ddr"] = bytes(mems.ddr[:window])
    return got, final, when, dones, images


@pytest.mark.parametrize("stall, seed", [
    (0.0, 1), (0.3, 2), pytest.param(0.0, 3, marks=pytest.mark.slow),
    pytest.param(0.2, 4, marks=pytest.mark.slow)])
def test_random_sequences(stall: float, seed: int) -> None:
    g = tiny_geometry()
    window = 2048
    rng = random.Random(seed)
    cmds = _random_cmds(rng, g, 24, window)
    got, final, _, dones, images = run_dma(g, cmds, window=window, stall=stall, seed=seed)
    loads, mem = _reference(g, images, cmds)
    assert len(dones) == len(cmds)
    assert [list(v) for v in loads] == got
    for k in SPACES:
        ref = bytes(mem[k].read(0, window, count=False))
        assert final[k] == ref, k


@pytest.mark.parametrize("src", [0, 6])
def test_load_rate(src: int) -> None:
    """A long contiguous load from HBM streams one vector per cycle; a vector that crosses
    a row boundary (two ops) costs one more cycle."""
    g = tiny_geometry()
    d, R = g.d, g.row_bytes  # noqa: N806
    nv = 64
    cmds = [{"kind": "load", "n": nv * d, "stride": 0, "src_space": "hbm", "src": src,
             "dst_space": "hbm", "dst": 0, "vec": []}]
    got, _, when, _, images = run_dma(g, cmds, window=4096, stall=0.0, seed=9)
    assert len(got) == nv
    crossing = sum((src + 2 * d * k) % R + 2 * d > R for k in range(nv))
    assert when[-1] - when[0] == nv - 1 + crossing


def test_from_core() -> None:
    ms = MemorySystem.from_core(load_core("tiny"))
    assert ms.geometry.channels == 4 and ms.geometry.beat_bytes == 16
