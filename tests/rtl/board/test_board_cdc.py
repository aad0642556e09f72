"""``LinkCdc`` (rtl/board/cdc.py) on Amaranth's simulator with two unrelated clocks: every beat
crosses in order, none lost or duplicated, under random valid/ready on both sides, in both
directions, with the link clock faster and slower than the kernel clock; a beat's crossing
takes at most ``latency_bound`` cycles."""

from __future__ import annotations

import random

import pytest
from amaranth.hdl import Module
from amaranth.sim import Simulator

from dfx.rtl.board.cdc import LINK_DOMAIN, LinkCdc

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")

N = 300


def _sim(dut: LinkCdc, sync_ns: float, link_ns: float) -> Simulator:
    m = Module()
    m.submodules.dut = dut
    sim = Simulator(m)
    sim.add_clock(sync_ns * 1e-9, domain="sync")
    sim.add_clock(link_ns * 1e-9, domain=LINK_DOMAIN)
    return sim


def _stream_test(sync_ns: float, link_ns: float, p_valid: float, p_ready: float,
                 seed: int) -> dict[str, list[int]]:
    dut = LinkCdc(16)
    sim = _sim(dut, sync_ns, link_ns)
    rng = random.Random(seed)
    got: dict[str, list[int]] = {"tx": [], "rx": []}

    def producer(stream, domain):
        async def bench(ctx):
            i = 0
            while i < N:
                valid = rng.random() < p_valid
                ctx.set(stream.valid, valid)
                ctx.set(stream.payload, i)
                ready = ctx.get(stream.ready)
                await ctx.tick(domain)
                i += bool(valid and ready)
            ctx.set(stream.valid, 0)
        return bench

    def consumer(stream, domain, tag):
        async def bench(ctx):
            while len(got[tag]) < N:
                ready = rng.random() < p_ready
                ctx.set(stream.ready, ready)
                valid, value = ctx.get(stream.valid), ctx.get(stream.payload)
                await ctx.tick(domain)
                if ready and valid:
                    got[tag].append(value)
            ctx.set(stream.ready, 0)
        return bench

    # kernel -> link (tx) and link -> kernel (rx)
    sim.add_testbench(producer(dut.tx, "sync"))
    sim.add_testbench(consumer(dut.link_tx, LINK_DOMAIN, "tx"))
    sim.add_testbench(producer(dut.link_rx, LINK_DOMAIN))
    sim.add_testbench(consumer(dut.rx, "sync", "rx"))
    sim.run_until(N * 12 * max(sync_ns, link_ns) * 1e-9)
    return got


@pytest.mark.parametrize("sync_ns,link_ns,p_valid,p_ready,seed", [
    (10.0, 10.0, 1.0, 1.0, 1),
    (10.0, 3.7, 0.8, 0.6, 2),   # link clock faster
    (3.1, 10.0, 0.9, 0.9, 3),   # link clock slower
    (7.0, 5.3, 0.5, 0.3, 4),
])
def test_cdc_in_order_no_loss(sync_ns, link_ns, p_valid, p_ready, seed):
    got = _stream_test(sync_ns, link_ns, p_valid, p_ready, seed)
    assert got["tx"] == list(range(N))
    assert got["rx"] == list(range(N))


def test_cdc_latency_within_bound():
    """One beat each way on equal, aligned clocks: valid on the far side within
    ``latency_bound`` cycles of the write handshake."""
    dut = LinkCdc(8)
    sim = _sim(dut, 10.0, 10.0)
    seen: dict[str, int] = {}

    async def bench(ctx):
        await ctx.tick().repeat(4)
        for src, dst, name in ((dut.tx, dut.link_tx, "tx"), (dut.link_rx, dut.rx, "rx")):
            ctx.set(src.payload, 0x5A)
            ctx.set(src.valid, 1)
            assert ctx.get(src.ready)
            await ctx.tick()
            ctx.set(src.valid, 0)
            for cycle in range(1, 20):
                if ctx.get(dst.valid):
                    assert ctx.get(dst.payload) == 0x5A
                    seen[name] = cycle
                    break
                await ctx.tick()
            ctx.set(dst.ready, 1)
            await ctx.tick()
            ctx.set(dst.ready, 0)

    sim.add_testbench(bench)
    sim.run_until(100e-8)
    assert set(seen) == {"tx", "rx"}
    assert max(seen.values()) <= dut.latency_bound, seen


def test_cdc_parameters():
    c = LinkCdc(256)
    assert c.width == 256 and c.depth == 16 and c.link_domain == LINK_DOMAIN
    with pytest.raises(ValueError, match="width"):
        LinkCdc(0)
    with pytest.raises(ValueError, match="depth"):
        LinkCdc(8, depth=6)
    with pytest.raises(ValueError, match="link_domain"):
        LinkCdc(8, link_domain="sync")
