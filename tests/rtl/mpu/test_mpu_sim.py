"""The MPU on Amaranth's simulator (tiny core, d = 8, l = 4): command streams against the
golden ``matvec`` bit for bit (every option combination, operand families with ±0,
subnormals, max normals, FP16 overflow, NaN, ties), idle gaps and back-pressure, and the
sustained rate of one tile per cycle."""

from __future__ import annotations

import random

import numpy as np
import pytest
from amaranth.hdl import Value
from amaranth.sim import Simulator

from dfx.isa.config import load_core
from dfx.rtl.mpu import Mpu
from dfx.rtl.tb.mpu import (
    KINDS,
    Geometry,
    Problem,
    check,
    expected_streams,
    problem_mix,
    random_problem,
)

TINY = load_core("tiny")


def simulate(
    dut: Mpu,
    problems: list[Problem],
    geo: Geometry,
    *,
    in_gap: float = 0.0,
    ready_p: float = 1.0,
    seed: int = 0,
    max_cycles: int = 100_000,
) -> dict:
    """Drive commands, tiles and biases (random idle gaps with probability ``in_gap``), take
    outputs with random ``ready`` (probability ``ready_p``); return what came out and when."""
    rnd = random.Random(seed)
    cmds = [p.command() for p in problems]
    tiles = [t for p in problems for t in p.tiles(geo.interleave)]
    biases = [b for p in problems for b in p.biases()]
    want_out, want_max = expected_streams(problems, geo)
    res = {"out": [], "max": [], "accept": [], "cycles": 0}

    def gap() -> int:
        return rnd.randint(1, 4) if in_gap and rnd.random() < in_gap else 0

    def driver(stream, items):
        async def run(ctx):
            for item in items:
                for _ in range(gap()):
                    await ctx.tick()
                ctx.set(Value.cast(stream.payload), item)
                ctx.set(stream.valid, 1)
                await ctx.tick().until(stream.ready)
                ctx.set(stream.valid, 0)

        return run

    def monitor(stream, sink):
        async def run(ctx):
            while True:
                ctx.set(stream.ready, int(rnd.random() < ready_p))
                _, _, valid, ready, payload = await ctx.tick().sample(
                    stream.valid, stream.ready, Value.cast(stream.payload)
                )
                if valid and ready:
                    sink.append(payload)

        return run

    async def watch(ctx):
        t = 0
        async for _, _, valid, ready in ctx.tick().sample(dut.tiles.valid, dut.tiles.ready):
            if valid and ready:
                res["accept"].append(t)
            t += 1
            res["cycles"] = t
            done = len(res["out"]) >= len(want_out) and len(res["max"]) >= len(want_max)
            if done and len(res["accept"]) == len(tiles):
                break
            assert t < max_cycles, "simulation did not finish"
        for _ in range(3 * dut.latency):  # nothing more may come out
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(driver(dut.cmd, cmds), background=True)
    sim.add_testbench(driver(dut.tiles, tiles), background=True)
    sim.add_testbench(driver(dut.bias, biases), background=True)
    sim.add_testbench(monitor(dut.out, res["out"]), background=True)
    sim.add_testbench(monitor(dut.rowmax, res["max"]), background=True)
    sim.add_testbench(watch)
    sim.run()
    check(res["out"], want_out, res["max"], want_max, geo.d, problems)
    return res


@pytest.fixture(scope="module")
def geo() -> Geometry:
    return Geometry.from_core(TINY)


def test_single_small_matvec(geo):
    p = random_problem(np.random.default_rng(1), geo, kt=2, nt=3, rowmax=True)
    simulate(Mpu.from_core(TINY), [p], geo)


def test_operand_families_all_options(geo):
    """Each operand family with bias + scale + mask + GELU + row max, and with none."""
    rng = np.random.default_rng(10)
    full = {"bias": True, "scale": True, "mask": True, "gelu": True, "rowmax": True}
    problems = []
    for kind in KINDS:
        problems += [
            random_problem(rng, geo, kt=2, nt=3, kind=kind, **full),
            random_problem(rng, geo, kt=3, nt=2, kind=kind, rowmax=True),
        ]
    simulate(Mpu.from_core(TINY), problems, geo)


def test_every_option_combination(geo):
    """32 commands back to back: all 2^5 combinations of bias/scale/mask/gelu/rowmax."""
    problems = problem_mix(np.random.default_rng(20), geo, 32, max_kt=2, max_nt=3)
    simulate(Mpu.from_core(TINY), problems, geo)


@pytest.mark.parametrize(
    ("in_gap", "ready_p"), [(0.4, 1.0), (0.0, 0.3), (0.3, 0.5)], ids=["gaps", "bp", "both"]
)
def test_idle_and_backpressure(geo, in_gap, ready_p):
    problems = problem_mix(np.random.default_rng(30), geo, 10, max_kt=3, max_nt=4)
    simulate(Mpu.from_core(TINY), problems, geo, in_gap=in_gap, ready_p=ready_p, seed=31)


def test_corner_values(geo):
    """Directed: signed zeros, -0 sums, overflow to inf in FP16 and FP32, inf - inf, NaN, a
    tie in round16, subnormal outputs, masked-out NaN, GELU of large values."""
    d, l = geo.d, geo.l  # noqa: E741
    f16 = lambda bits: np.asarray(bits, dtype=np.uint16).view(np.float16)  # noqa: E731
    w = np.zeros((2, 1, l, d), dtype=np.float16)
    x = f16([0x3C00] * d)  # ones
    w[0, 0, 0, :] = f16([0x8000] * d)  # -0 sum stays -0
    w[0, 0, 1, :2] = f16([0x7BFF, 0x7BFF])  # 131008 -> inf in FP16
    w[0, 0, 2, :2] = f16([0x7C00, 0xFC00])  # inf - inf -> NaN
    w[0, 0, 3, :3] = f16([0x6800, 0x3C00, 0x8001])  # 2048 + 1 - tiny: below the tie
    w[1, 0, 0, :2] = f16([0x6800, 0x3C00])  # 2049: exact FP16 tie -> 2048 (even)
    w[1, 0, 1, :2] = f16([0x0001, 0x0001])  # subnormal sum
    w[1, 0, 2, :1] = f16([0x7E00])  # NaN
    w[1, 0, 3, :1] = f16([0x5800])  # 128: GELU(x) = x above the table
    probs = [
        Problem(w=w, x=x, rowmax=True),
        Problem(w=w, x=x, gelu=True, rowmax=True),
        Problem(w=w, x=x, limit=5, rowmax=True),  # the NaN lane is masked out
        Problem(w=w, x=x, limit=0, scale=np.float32(2.0**-130), rowmax=True),
        Problem(w=w, x=x, bias=f16([0x8000, 0xFC00, 0, 0x7BFF] * 2), rowmax=True),
    ]
    simulate(Mpu.from_core(TINY), probs, geo)


@pytest.mark.parametrize("interleave", [3, 4])
def test_wider_interleave(interleave):
    """G > add_latency: more partial sums, the same numbers (and other short blocks)."""
    geo = Geometry.from_core(TINY, interleave)
    problems = problem_mix(np.random.default_rng(40 + interleave), geo, 8, max_kt=3, max_nt=9)
    simulate(Mpu.from_core(TINY, interleave=interleave), problems, geo, ready_p=0.8)


def test_other_latencies():
    """Longer pipelines (add 3, mul 1, scale 2, GELU 5) and a deeper/shallower queue."""
    dut = Mpu.from_core(
        TINY, add_latency=3, mul_latency=1, scale_latency=2, gelu_latency=5, queue_depth=2
    )
    geo = Geometry.from_core(TINY, dut.interleave)  # 4: two whole vectors cover add = 3
    problems = problem_mix(np.random.default_rng(50), geo, 10, max_kt=4, max_nt=4)
    simulate(dut, problems, geo, in_gap=0.2, ready_p=0.7)


def test_one_tile_per_cycle(geo):
    """1000+ tiles without back-pressure: the tile stream moves on every cycle from the first
    to the last tile, except the documented bubbles of short blocks (a block of gb < A groups
    waits A - gb cycles between its kt rounds), also across command boundaries. The tiles
    repeat one random tile (the event-driven simulator then only evaluates what changes); the
    results are still checked bit for bit."""
    rng = np.random.default_rng(60)
    g = a = geo.interleave  # = add_latency
    base = random_problem(rng, geo, kt=1, nt=1, kind="normal")
    problems = []
    for i in range(12):
        kt, nt = (8, 8 * g) if i % 2 else (2, 16 * g + 1)  # long reductions; a short block
        w = np.broadcast_to(base.w[0, 0], (nt, kt, geo.l, geo.d)).copy()
        x = np.tile(base.x, kt)
        bias = np.tile(np.float16([0.5, -1.0, 2.0, 0.0]), nt) if i % 3 == 0 else None
        problems.append(Problem(w=w, x=x, bias=bias, gelu=bool(i % 2), rowmax=True))
    bubbles = 0
    for p in problems:
        gb = p.nt % g or g
        bubbles += (p.kt - 1) * max(0, a - gb)
    res = simulate(Mpu.from_core(TINY), problems, geo)
    acc = res["accept"]
    n = len(acc)
    span = acc[-1] - acc[0] + 1
    assert n == sum(p.kt * p.nt for p in problems) >= 1000
    assert span == n + bubbles, f"{n} tiles in {span} cycles, {bubbles} bubbles expected"
    assert n / span >= 0.99
    print(f"throughput: {n} tiles in {span} cycles = {n / span:.4f} tiles/cycle")


def test_one_tile_commands_back_to_back(geo):
    """40 one-tile commands (KT = NT = 1, e.g. Q.K^T of a head in the first decode steps):
    still one tile per cycle, the command queue covers the pipeline."""
    rng = np.random.default_rng(61)
    problems = [
        random_problem(rng, geo, kt=1, nt=1, kind=KINDS[i % 5], rowmax=True, mask=bool(i % 2))
        for i in range(40)
    ]
    res = simulate(Mpu.from_core(TINY), problems, geo)
    assert res["accept"][-1] - res["accept"][0] + 1 == 40
