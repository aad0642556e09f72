"""``AxiChannel``: bursts in order, read-after-write ordering, credits, throughput."""

from __future__ import annotations

import random

import pytest
from amaranth.sim import Simulator
from dma_axi_model import AxiMem

from dfx.rtl.dma.channel import AxiChannel

W = 16


def _run(dut: AxiChannel, mem: AxiMem, ops: list, wbeats: list, *, cycles: int = 3000,
         r_stall: float = 0.0, seed: int = 1):
    """Feed ``ops`` (write, beat, count) and ``wbeats`` (data, strb); collect R beats and
    ``acked`` pulses; returns (rbeats, acks, cycle of each R beat)."""
    got: list[int] = []
    when: list[int] = []
    acks = [0]
    rng = random.Random(seed)

    async def feed(ctx):
        ctx.set(dut.base, mem.base)
        for wr, beat, count in ops:
            ctx.set(dut.op.payload, {"write": wr, "beat": beat, "count": count})
            ctx.set(dut.op.valid, 1)
            await ctx.tick().until(dut.op.ready)
        ctx.set(dut.op.valid, 0)

    async def wfeed(ctx):
        for data, strb in wbeats:
            ctx.set(dut.w.payload, {"data": data, "strb": strb})
            ctx.set(dut.w.valid, 1)
            await ctx.tick().until(dut.w.ready)
        ctx.set(dut.w.valid, 0)

    async def sink(ctx):
        cyc = 0
        while True:
            ok = 0 if r_stall and rng.random() < r_stall else 1
            ctx.set(dut.r.ready, ok)
            _, _, v, p, a = await ctx.tick().sample(dut.r.valid, dut.r.payload, dut.acked)
            cyc += 1
            if v and ok:
                got.append(p)
                when.append(cyc)
            acks[0] += a

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_process(mem.process)
    sim.add_testbench(feed)
    sim.add_testbench(wfeed)
    sim.add_testbench(sink, background=True)

    async def stop(ctx):
        await ctx.tick().repeat(cycles)

    sim.add_testbench(stop)
    sim.run()
    return got, acks[0], when


def _beat(mem: bytearray, i: int) -> int:
    return int.from_bytes(mem[i * W:(i + 1) * W], "little")


def _chan(**kw) -> AxiChannel:
    return AxiChannel(beat_bytes=W, beat_bits=12, max_len=kw.pop("max_len", 8),
                      credits=kw.pop("credits", 16), **kw)


def test_parameters() -> None:
    with pytest.raises(ValueError, match="max_len must be an integer 1..8"):
        AxiChannel(beat_bytes=16, beat_bits=12, max_len=9, credits=16)
    with pytest.raises(ValueError, match="credits must be a power of two"):
        AxiChannel(beat_bytes=16, beat_bits=12, max_len=4, credits=12)
    with pytest.raises(ValueError, match="beat_bytes must be a power of two >= 4"):
        AxiChannel(beat_bytes=2, beat_bits=12, max_len=4, credits=16)


@pytest.mark.parametrize("stall", [0.0, 0.4])
def test_reads_writes_in_order(stall: float) -> None:
    dut = _chan()
    base = 0x10000
    init = bytearray(random.Random(3).randbytes(4096))
    mem = AxiMem(dut.axi, 4096, base=base, latency=6, stall=stall, seed=5, mem=bytearray(init))
    ref = bytearray(init)
    rng = random.Random(7)
    ops, wbeats, expect = [], [], []
    nwrites = 0
    for _ in range(40):
        wr = rng.random() < 0.4
        count = rng.randrange(0, 9)
        beat = rng.randrange(0, 200)
        ops.append((int(wr), beat, count))
        if wr:
            nwrites += 1
            for i in range(count):
                data = rng.getrandbits(8 * W)
                strb = rng.getrandbits(W)
                wbeats.append((data, strb))
                raw = data.to_bytes(W, "little")
                for j in range(W):
                    if strb >> j & 1:
                        ref[(beat + i) * W + j] = raw[j]
        else:
            expect += [_beat(ref, beat + i) for i in range(count)]
    got, acks, _ = _run(dut, mem, ops, wbeats, cycles=2500, r_stall=stall)
    assert got == expect
    assert acks == nwrites
    assert mem.mem == ref


@pytest.mark.parametrize("latency, full", [(4, True), (5, False)])
def test_stream_rate_and_credit_loop(latency: int, full: bool) -> None:
    """Bursts of 8 with 16 credits stream one beat per cycle iff credits - burst >=
    Lm + CREDIT_LOOP, Lm = cycles from the AR handshake to the first R handshake (the model's
    ``latency`` + 1)."""
    dut = _chan(max_len=8, credits=16)
    assert (16 - 8 >= latency + 1 + dut.credit_loop) == full
    mem = AxiMem(dut.axi, 4096, latency=latency, mem=bytearray(random.randbytes(4096)))
    ops = [(0, 8 * k, 8) for k in range(12)]
    got, _, when = _run(dut, mem, ops, [], cycles=200)
    assert got == [_beat(mem.mem, i) for i in range(96)]
    assert (when[-1] - when[0] == len(when) - 1) == full
    assert mem.max_reads <= 2
