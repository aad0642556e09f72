"""The LUT-GEMM stream reader through the memory system: ``signs`` and ``scales`` beats cut out
of packed streams (dfx.isa.golden.lutgemm.pack) exactly as rtl/lutgemm/top.py documents them,
plus the lutmv bias, with memory stalls and back-pressure."""

from __future__ import annotations

import random

import numpy as np
import pytest
from amaranth.sim import Simulator
from dma_harness import Mems, tiny_geometry, wbuf_load

from dfx.isa.config import load_core
from dfx.isa.golden import lutgemm as glut
from dfx.rtl.dma.system import MemorySystem
from dfx.rtl.isa_layouts import Space

SPACES = {"hbm": Space.HBM, "ddr": Space.DDR, "wbuf": Space.WBUF}


def _stream(rng: np.random.Generator, n: int, ng: int, gs: int, q: int, s: int) -> bytes:
    k = ng * gs * s
    w = glut.Bcq(rng.random((q, k, n)) < 0.5, rng.standard_normal((ng, q, n)).astype(np.float16),
                 rng.standard_normal((ng, n)).astype(np.float16), gs * s)
    return glut.pack(w, s).tobytes()


def _expect(core, cmd, stream: bytes, bias_img: bytes):
    c = core.lutgemm
    S, L, Sc = c.slice, c.lanes, c.scalers  # noqa: N806
    n, ng, gs, q = cmd["n"], cmd["ng"], cmd["gs"], cmd["q"]
    sec = glut.section_bytes(n, gs, q, S)
    blk = n * S // 8
    signs, scales, bias = [], [], []
    for _ in range(cmd["batch"] or 1):
        for G in range(ng):  # noqa: N806
            base = G * sec
            for j in range(gs * q):
                b0 = base + j * blk
                for rb in range(-(-n // L)):
                    lo = rb * L * S // 8
                    signs.append(stream[b0 + lo:b0 + min(lo + L * S // 8, blk)])
            s0 = base + gs * q * blk
            bb = Sc * (q + 1) * 2
            for cc in range(-(-n // Sc)):
                scales.append(stream[s0 + cc * bb:s0 + min((cc + 1) * bb, n * (q + 1) * 2)])
        if cmd["bias"]:
            d = core.d
            for u in range(-(-n // d)):
                a = cmd["baddr"] + 2 * d * u
                nb = 2 * min(d, n - d * u)
                bias.append(bias_img[a:a + nb] + bytes(2 * d - nb))
    return signs, scales, bias


class _Lut:
    """A core stand-in whose sign beat is a whole row (as at dfx-u280: L·S/8 = R) and whose
    scale beats take two pieces: C=4, W=16 (R=64), S=32, L=16, Sc=8."""

    def __init__(self):
        tiny = load_core("tiny")
        self.d = tiny.d
        self.lutgemm = type("L", (), {"slice": 32, "lanes": 16, "scalers": 8, "max_q": 4,
                                      "max_rows": 64, "max_group": 256})()


def _system(kind: str):
    core = load_core("tiny")
    if kind == "tiny":
        return core, MemorySystem.from_core(core)
    fake = _Lut()
    c = fake.lutgemm
    lut = {"slice": c.slice, "lanes": c.lanes, "scalers": c.scalers, "max_q": c.max_q,
           "max_rows": c.max_rows, "max_group": c.max_group, "scale_depth": 4}
    return fake, MemorySystem(tiny_geometry(), wbuf_latency=1, max_interleave=2, bias_depth=8,
                              program_words=16, lut=lut)


def _bytes(view, nbytes: int) -> bytes:
    """A sampled array payload as its little-endian bytes."""
    width = 8 * nbytes // len(view)
    return sum(int(x) << (width * i) for i, x in enumerate(view)).to_bytes(nbytes, "little")


@pytest.mark.parametrize("kind, stall, seed", [
    ("tiny", 0.0, 1), ("row", 0.3, 2), pytest.param("tiny", 0.3, 2, marks=pytest.mark.slow),
    pytest.param("row", 0.0, 1, marks=pytest.mark.slow)])
def test_lut_streams(kind: str, stall: float, seed: int) -> None:
    core, dut = _system(kind)
    c = core.lutgemm
    g = dut.geometry
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    window = 8192
    mems = Mems(g, hbm_bytes=4 * window, ddr_bytes=window, stall=stall, seed=seed)
    images = {k: bytearray(rng.randbytes(window)) for k in SPACES}
    images["wbuf"] = images["wbuf"][:g.wbuf_rows * g.row_bytes]
    cmds, streams = [], []
    for _ in range(5):
        n, ng = rng.randrange(1, min(c.max_rows, 40)), rng.randrange(1, 4)
        gs, q = rng.randrange(1, 4), rng.randrange(1, c.max_q + 1)
        st = _stream(nrng, n, ng, gs, q, c.slice)
        sp = rng.choice(list(SPACES))
        room = len(images[sp]) - len(st)
        addr = 32 * rng.randrange(room // 32)
        images[sp][addr:addr + len(st)] = st
        bsp = rng.choice(list(SPACES))
        cmd = {"space": sp, "addr": addr, "n": n, "ng": ng, "gs": gs, "q": q,
               "batch": rng.choice([0, 1, 2]), "bias": int(rng.random() < 0.6),
               "bspace": bsp, "baddr": 2 * rng.randrange((len(images[bsp]) - 2 * n) // 2)}
        cmds.append(cmd)
        streams.append(st)
    mems.write_hbm(0, bytes(images["hbm"]))
    mems.ddr[:window] = images["ddr"]
    exp = [_expect(core, cmd, bytes(images[cmd["space"]][cmd["addr"]:]),
                   bytes(images[cmd["bspace"]])) for cmd in cmds]
    want = [sum(len(e[i]) for e in exp) for i in range(3)]
    got = [[], [], []]

    async def feed(ctx):
        mems.set_bases(ctx, dut.hbm_base, dut.ddr_base)
        await wbuf_load(ctx, dut.wbuf_mem, g, bytes(images["wbuf"]))
        for cmd in cmds:
            ctx.set(dut.lut_cmd.payload, {k: (SPACES[v] if k in ("space", "bspace") else v)
                                          for k, v in cmd.items()})
            ctx.set(dut.lut_cmd.valid, 1)
            await ctx.tick().until(dut.lut_cmd.ready)
            ctx.set(dut.lut_cmd.valid, 0)

    async def sink(ctx):
        r2 = random.Random(seed + 3)
        ports = [dut.lut_signs, dut.lut_scales, dut.lut_bias]
        cyc = 0
        while any(len(got[i]) < want[i] for i in range(3)):
            oks = [int(not stall or r2.random() > stall) for _ in ports]
            for p, ok in zip(ports, oks, strict=True):
                ctx.set(p.ready, ok)
            sig = [x for p in ports for x in (p.valid, p.payload)]
            _, _, *v = await ctx.tick().sample(*sig)
            cyc += 1
            assert cyc < 40000, [len(x) for x in got]
            for i in range(3):
                if v[2 * i] and oks[i]:
                    got[i].append(v[2 * i + 1])

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    mems.attach(sim, dut.hbm, dut.ddr)
    sim.add_testbench(feed, background=True)
    sim.add_testbench(sink)
    sim.run()

    widths = [c.lanes * c.slice // 8, c.scalers * (c.max_q + 1) * 2, 2 * core.d]
    for i in range(3):
        ref = [x for e in exp for x in e[i]]
        assert len(got[i]) == len(ref)
        for val, r in zip(got[i], ref, strict=True):
            raw = _bytes(val, widths[i])
            assert raw[:len(r)] == r


def test_sign_beats_one_per_cycle() -> None:
    """With row-sized sign beats (as at dfx-u280) a group's sign beats leave one per cycle
    when memory keeps up; a scale beat of two pieces takes two cycles."""
    core, dut = _system("row")
    c = core.lutgemm
    g = dut.geometry
    n, ng, gs, q = 64, 2, 2, 2
    st = _stream(np.random.default_rng(5), n, ng, gs, q, c.slice)
    mems = Mems(g, hbm_bytes=1 << 16)
    mems.write_hbm(64, st)
    signs, scales = [], []
    per_group = gs * q * -(-n // c.lanes)

    async def bench(ctx):
        mems.set_bases(ctx, dut.hbm_base, dut.ddr_base)
        ctx.set(dut.lut_signs.ready, 1)
        ctx.set(dut.lut_scales.ready, 1)
        ctx.set(dut.lut_cmd.payload, {"space": Space.HBM, "addr": 64, "n": n, "ng": ng,
                                      "gs": gs, "q": q, "batch": 1})
        ctx.set(dut.lut_cmd.valid, 1)
        await ctx.tick()
        ctx.set(dut.lut_cmd.valid, 0)
        cyc = 0
        while len(signs) < ng * per_group or len(scales) < ng * -(-n // c.scalers):
            _, _, sv, kv = await ctx.tick().sample(dut.lut_signs.valid, dut.lut_scales.valid)
            cyc += 1
            assert cyc < 2000
            if sv:
                signs.append(cyc)
            if kv:
                scales.append(cyc)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    mems.attach(sim, dut.hbm, dut.ddr)
    sim.add_testbench(bench)
    sim.run()
    for grp in range(ng):
        cyc = signs[grp * per_group:(grp + 1) * per_group]
        assert cyc[-1] - cyc[0] == per_group - 1
    beats = -(-n // c.scalers)
    pieces = -(-c.scalers * (q + 1) * 2 // g.row_bytes)
    assert scales[beats - 1] - scales[0] == (beats - 1) * pieces
