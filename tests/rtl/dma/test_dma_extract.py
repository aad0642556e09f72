"""``Extractor``, ``Placer``, ``ScatterPlacer``: units cut from rows and put into rows, random
offsets and lengths, with back-pressure; one unit per cycle."""

from __future__ import annotations

import random

import pytest
from amaranth.sim import Simulator
from dma_harness import tiny_geometry

from dfx.rtl.dma.extract import Extractor
from dfx.rtl.dma.geometry import Geometry
from dfx.rtl.dma.place import Placer, ScatterPlacer


def _geoms() -> list[Geometry]:
    # tiny (C=4, W=16) and a wider one (C=8, W=16, d=16, l=4)
    return [tiny_geometry(), tiny_geometry(channels=8, d=16)]


def _run_stream(dut, inputs, in_port, out_port, n_out, stall, seed):
    rng = random.Random(seed)
    got, when = [], []

    async def feed(ctx):
        for x in inputs:
            ctx.set(in_port.payload, x)
            ctx.set(in_port.valid, 1)
            await ctx.tick().until(in_port.ready)
            ctx.set(in_port.valid, 0)
            if stall and rng.random() < stall:
                await ctx.tick()

    async def sink(ctx):
        cyc = 0
        while len(got) < n_out:
            ok = int(not stall or rng.random() > stall)
            ctx.set(out_port.ready, ok)
            _, _, v, p = await ctx.tick().sample(out_port.valid, out_port.payload)
            cyc += 1
            if v and ok:
                got.append(p)
                when.append(cyc)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(feed, background=True)
    sim.add_testbench(sink)
    sim.run()
    return got, when


@pytest.mark.parametrize("gi", [0, 1])
@pytest.mark.parametrize("stall", [0.0, 0.3])
def test_extractor(gi: int, stall: float) -> None:
    g = _geoms()[gi]
    R, U = g.row_bytes, g.vector_bytes  # noqa: N806
    dut = Extractor(g, U, user_bits=8)
    rng = random.Random(gi * 10 + int(stall * 10))
    rows, expect = [], []
    for i in range(40):
        o = 2 * rng.randrange(R // 2)
        nb = 2 * rng.randrange(1, U // 2 + 1)
        two = o + nb > R
        win = rng.randbytes(2 * R)
        if two:
            rows.append({"data": int.from_bytes(win[:R], "little"), "o": o, "nbytes": nb,
                         "two": 1, "done": 0, "user": 0})
        rows.append({"data": int.from_bytes(win[R:] if two else win[:R], "little"), "o": o,
                     "nbytes": nb, "two": int(two), "done": 1, "user": i})
        expect.append((win[o:o + nb] + bytes(U - nb), i))
    got, when = _run_stream(dut, rows, dut.row, dut.unit, len(expect), stall, 5)
    for p, (ref, user) in zip(got, expect, strict=True):
        assert p.data.to_bytes(U, "little") == ref
        assert p.user == user
    if not stall:
        n_rows = len(rows)
        assert when[-1] - when[0] + 1 <= n_rows  # one row per cycle


@pytest.mark.parametrize("gi", [0, 1])
@pytest.mark.parametrize("stall", [0.0, 0.3])
def test_placer(gi: int, stall: float) -> None:
    g = _geoms()[gi]
    R, U = g.row_bytes, g.vector_bytes  # noqa: N806
    dut = Placer(g, U)
    rng = random.Random(gi + 3)
    units, expect = [], []
    for _ in range(30):
        o = 2 * rng.randrange(R // 2)
        nb = 2 * rng.randrange(1, U // 2 + 1)
        two = o + nb > R
        d = rng.randbytes(U)
        units.append({"data": int.from_bytes(d, "little"), "o": o, "nbytes": nb,
                      "two": int(two)})
        win = bytearray(2 * R)
        win[o:o + nb] = d[:nb]
        strb = sum(1 << b for b in range(o, o + nb))
        expect.append((win[:R], strb & ((1 << R) - 1), int(not two)))
        if two:
            expect.append((win[R:], strb >> R, 1))
    got, _ = _run_stream(dut, units, dut.unit, dut.row, len(expect), stall, 7)
    for p, (ref, strb, last) in zip(got, expect, strict=True):
        raw = p.data.to_bytes(R, "little")
        assert p.strb == strb
        assert bytes(raw[b] for b in range(R) if strb >> b & 1) == bytes(
            ref[b] for b in range(R) if strb >> b & 1)
        assert p.last == last


@pytest.mark.parametrize("gi", [0, 1])
def test_scatter_placer(gi: int) -> None:
    g = _geoms()[gi]
    R, L, D = g.row_bytes, g.l, g.d  # noqa: N806
    dut = ScatterPlacer(g)
    rng = random.Random(gi + 11)
    units, expect = [], []
    for _ in range(30):
        o = 2 * rng.randrange(R // 2)
        cnt = rng.randrange(1, L + 1)
        span = (cnt - 1) * 2 * D + 2
        two = o + span > R
        el = [rng.getrandbits(16) for _ in range(L)]
        units.append({"elems": el, "cnt": cnt, "o": o, "two": int(two)})
        win = bytearray(2 * R)
        strb = 0
        for e in range(cnt):
            a = o + e * 2 * D
            win[a:a + 2] = el[e].to_bytes(2, "little")
            strb |= 3 << a
        expect.append((win[:R], strb & ((1 << R) - 1)))
        if two:
            expect.append((win[R:], strb >> R))
    got, _ = _run_stream(dut, units, dut.unit, dut.row, len(expect), 0.2, 9)
    for p, (ref, strb) in zip(got, expect, strict=True):
        raw = p.data.to_bytes(R, "little")
        assert p.strb == strb
        assert all(raw[b] == ref[b] for b in range(R) if strb >> b & 1)
