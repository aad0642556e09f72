"""Amaranth-simulator driver of the whole ``LutGemm`` unit (shared by the unit tests)."""

from __future__ import annotations

import random

from amaranth.hdl import Value
from amaranth.sim import Simulator

from dfx.rtl.lutgemm import LutGemm
from dfx.rtl.tb.lutgemm import Geometry, Problem, check, streams

INPUTS = ("cmd", "x", "signs", "scales")


def simulate(dut: LutGemm, problems: list[Problem], geo: Geometry, *, in_gap: float = 0.0,
             ready_p: float = 1.0, seed: int = 0, max_cycles: int = 100_000) -> dict:
    """Drive the four input streams (random idle gaps with probability ``in_gap``), take the
    output with random ``ready`` (probability ``ready_p``), compare every bit with the golden
    model; return the beats, the cycles on which they and the sign beats moved."""
    rnd = random.Random(seed)
    st = streams(problems, geo)
    res: dict = {"out": [], "out_t": [], "signs": [], "cycles": 0}

    def driver(stream, items):
        async def run(ctx):
            for item in items:
                while in_gap and rnd.random() < in_gap:
                    await ctx.tick()
                ctx.set(Value.cast(stream.payload), item)
                ctx.set(stream.valid, 1)
                await ctx.tick().until(stream.ready)
                ctx.set(stream.valid, 0)

        return run

    async def monitor(ctx):
        t = 0
        while True:
            ctx.set(dut.out.ready, int(rnd.random() < ready_p))
            _, _, valid, ready, payload = await ctx.tick().sample(
                dut.out.valid, dut.out.ready, Value.cast(dut.out.payload))
            if valid and ready:
                res["out"].append(payload)
                res["out_t"].append(t)
            t += 1

    async def watch(ctx):
        t = 0
        async for _, _, valid, ready in ctx.tick().sample(dut.signs.valid, dut.signs.ready):
            if valid and ready:
                res["signs"].append(t)
            t += 1
            res["cycles"] = t
            if len(res["out"]) >= len(st["out"]) and len(res["signs"]) == len(st["signs"]):
                break
            assert t < max_cycles, (
                f"simulation did not finish: {len(res['out'])}/{len(st['out'])} beats out, "
                f"{len(res['signs'])}/{len(st['signs'])} sign beats")
        for _ in range(60):  # nothing more may come out
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    for name in INPUTS:
        sim.add_testbench(driver(getattr(dut, name), st[name]), background=True)
    sim.add_testbench(monitor, background=True)
    sim.add_testbench(watch)
    sim.run()
    check(res["out"], st["out"], problems, geo)
    return res


def rne32(v: int, frac: int) -> int:
    """FP32 bits nearest to ``v * 2^-frac`` (ties to even; a normal or 0), integers only."""
    if v == 0:
        return 0
    sign, mag = int(v < 0), abs(v)
    e = mag.bit_length() - 1
    if e > 23:
        sh = e - 23
        m, rem = mag >> sh, mag & ((1 << sh) - 1)
        half = 1 << (sh - 1)
        m += rem > half or (rem == half and m & 1)
        if m >> 24:
            m >>= 1
            e += 1
    else:
        m = mag << (23 - e)
    exp = e - frac + 127
    assert 1 <= exp <= 254
    return sign << 31 | exp << 23 | (m & 0x7FFFFF)
