"""The memory system against the core testbench's AXI memory model (rtl/tb/axi_mem.py: the
timing model's channel semantics and its protocol checks: 4 KiB crossings, narrow bursts,
``wlast``): random DMA sequences and a weight stream, data checked bit for bit, no protocol
error flagged, with and without its stalls."""

from __future__ import annotations

import random

import pytest
from amaranth.hdl import Elaboratable, Module
from amaranth.lib import wiring
from amaranth.sim import Simulator
from dma_harness import wbuf_image, wbuf_load
from test_dma_engine import SPACES, _payload, _random_cmds, _reference

from dfx.isa.config import load_core
from dfx.rtl.dma.system import MemorySystem
from dfx.rtl.tb import axi_mem


class _Top(Elaboratable):
    def __init__(self, dut, mem):
        self.dut, self.mem = dut, mem

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut, m.submodules.mem = self.dut, self.mem
        for c in range(len(self.dut.hbm)):
            wiring.connect(m, self.dut.hbm[c], self.mem.hbm[c])
        wiring.connect(m, self.dut.ddr, self.mem.ddr)
        return m


@pytest.mark.parametrize("stall, seed", [(0, 1), pytest.param(6, 2, marks=pytest.mark.slow)])
def test_dma_on_tb_memory(stall: int, seed: int) -> None:
    core = load_core("tiny")
    dut = MemorySystem.from_core(core)
    g = dut.geometry
    window = 2048
    per = 2048  # bytes per pseudo-channel (the ISA window is 4 of them)
    mem = axi_mem.MemorySystem.from_core(core, hbm_bytes=per, ddr_bytes=window, ram="amaranth",
                                         seed=seed)
    rng = random.Random(seed)
    cmds = _random_cmds(rng, g, 20, window)
    images = {k: rng.randbytes(window) for k in SPACES}
    C, W = g.channels, g.beat_bytes  # noqa: N806
    got, final, err = [], {}, []
    n_loads = sum(-(-c["n"] // g.d) for c in cmds if c["kind"] == "load")
    dones = []

    def hbm_words(img: bytes) -> list[list[int]]:
        words = [[0] * (per // W) for _ in range(C)]
        for b in range(len(img) // W):
            words[b % C][b // C] = int.from_bytes(img[b * W:(b + 1) * W], "little")
        return words

    async def bench(ctx):
        for c in range(C):
            ctx.set(dut.hbm_base[c], 0)
        ctx.set(dut.ddr_base, 0)
        ctx.set(mem.stall, stall)
        for c, words in enumerate(hbm_words(images["hbm"])):
            for j, v in enumerate(words):
                ctx.set(mem.channels[c].ram.data[j], v)
        for j in range(window // W):
            ctx.set(mem.channels[C].ram.data[j],
                    int.from_bytes(images["ddr"][j * W:(j + 1) * W], "little"))
        await wbuf_load(ctx, dut.wbuf_mem, g, images["wbuf"])
        ctx.set(dut.dma_load.ready, 1)
        pending = list(cmds)
        stores = [c for c in cmds if c["kind"] in ("store", "store_t") and c["n"]]
        vecs = [c["vec"][k * g.d:(k + 1) * g.d] for c in stores for k in range(-(-c["n"] // g.d))]
        for _ in range(60000):
            if pending:
                ctx.set(dut.dma_cmd.payload, _payload(pending[0]))
                ctx.set(dut.dma_cmd.valid, 1)
            if vecs:
                ctx.set(dut.dma_store.payload, vecs[0])
                ctx.set(dut.dma_store.valid, 1)
            _, _, cv, cr, sv, sr, lv, lp, dn = await ctx.tick().sample(
                dut.dma_cmd.valid, dut.dma_cmd.ready, dut.dma_store.valid, dut.dma_store.ready,
                dut.dma_load.valid, dut.dma_load.payload, dut.dma_done)
            if cv and cr:
                pending.pop(0)
                ctx.set(dut.dma_cmd.valid, 0)
            if sv and sr:
                vecs.pop(0)
                ctx.set(dut.dma_store.valid, 0)
            if lv:
                got.append([int(x) for x in lp])
            dones.append(dn)
            if sum(dones) == len(cmds):
                break
        final["wbuf"] = wbuf_image(ctx, dut.wbuf_mem, g, window // g.row_bytes)
        words = [[int(ctx.get(mem.channels[c].ram.data[j])) for j in range(per // W)]
                 for c in range(C)]
        final["hbm"] = b"".join(words[b % C][b // C].to_bytes(W, "little")
                                for b in range(window // W))
        final["ddr"] = b"".join(int(ctx.get(mem.channels[C].ram.data[j])).to_bytes(W, "little")
                                for j in range(window // W))
        err.append(ctx.get(mem.error))

    sim = Simulator(_Top(dut, mem))
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    loads, ref = _reference(g, images, cmds)
    assert sum(dones) == len(cmds)
    assert len(got) == n_loads
    assert got == [list(v) for v in loads]
    assert err == [0]
    for k in SPACES:
        assert final[k] == bytes(ref[k].read(0, window, count=False)), k
