"""LUT-GEMM test machinery: the golden model of a command stream (shared with the
Amaranth-simulator tests) and the cocotb testbench of the Verilog unit (``dfx regress --bench
lutgemm``, ``tests/rtl/lutgemm/test_lutgemm_cocotb.py``).

The model is numpy + ``dfx.isa.golden`` only. Beats are cut from the golden packed stream
(``dfx.isa.golden.lutgemm.pack``) exactly as the DMA does (``dfx.rtl.lutgemm.top`` module doc);
the don't-care parts of the last beats (rows >= n, unused scale slots) are filled with random
bits, so the unit is also checked to ignore them. Outputs are compared with ``lut_acc`` bit for
bit.

Configuration of a cocotb run (environment): ``DFX_CORE`` (core name, default ``tiny``),
``LUTGEMM_SEED``, ``LUTGEMM_OVERRIDES`` (JSON: parameters that differ from ``core.lutgemm``,
as passed to ``LutGemm.from_core``).
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass, field

import numpy as np

from dfx.isa.golden import lutgemm as glut

# ------------------------------------------------------------------------------- the model


@dataclass(frozen=True)
class Geometry:
    """What the model needs to know about the unit under test (``core.lutgemm``)."""

    mu: int
    keys: int
    lanes: int
    scalers: int
    max_q: int
    max_rows: int
    max_group: int

    @classmethod
    def from_core(cls, core, **overrides) -> Geometry:
        c = core.lutgemm
        kw = {"mu": c.mu, "keys": c.keys, "lanes": c.lanes, "scalers": c.scalers,
              "max_q": c.max_q, "max_rows": c.max_rows, "max_group": c.max_group}
        kw.update({k: v for k, v in overrides.items() if k in kw})
        return cls(**kw)

    @property
    def slice(self) -> int:
        return self.mu * self.keys

    @property
    def cmd_fields(self) -> dict[str, tuple[int, int]]:
        """``command_layout`` field offsets (bit, width)."""
        widths = {"n": self.max_rows.bit_length(), "ng": 16,
                  "gs": (self.max_group // self.slice).bit_length(),
                  "q": self.max_q.bit_length()}
        out, off = {}, 0
        for k, w in widths.items():
            out[k] = (off, w)
            off += w
        return out


@dataclass
class Problem:
    """One command: a BCQ matrix (FP16 scales) and one input row."""

    w: glut.Bcq
    x: np.ndarray  # float16 [K]
    name: str = ""
    seed: int = 0
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def n(self) -> int:
        return self.w.n

    @property
    def q(self) -> int:
        return self.w.q

    @property
    def ng(self) -> int:
        return self.w.ng

    def gs(self, geo: Geometry) -> int:
        return self.w.g // geo.slice

    def command(self, geo: Geometry) -> int:
        f = {"n": self.n, "ng": self.ng, "gs": self.gs(geo), "q": self.q}
        word = 0
        for k, (off, width) in geo.cmd_fields.items():
            assert 0 <= f[k] < 1 << width, (k, f[k])
            word |= f[k] << off
        return word

    def x_beats(self, geo: Geometry) -> list[int]:
        xb = self.x.view(np.uint16)
        s = geo.slice
        return [pack16(xb[i : i + s]) for i in range(0, len(xb), s)]

    def _streams(self, geo: Geometry) -> tuple[list[int], list[int]]:
        if "streams" in self._cache:
            return self._cache["streams"]
        rng = np.random.default_rng(self.seed)
        s, lanes, sc, n, q = geo.slice, geo.lanes, geo.scalers, self.n, self.q
        gs = self.gs(geo)
        packed = glut.pack(self.w, s)
        sec = glut.section_bytes(n, gs, q, s)
        word = s // 8
        signs, scales = [], []
        for g in range(self.ng):
            section = packed[g * sec : (g + 1) * sec]
            for blk in range(gs * q):  # (slice, plane) blocks of n rows
                block = section[blk * n * word : (blk + 1) * n * word]
                for rb in range(0, n, lanes):
                    signs.append(_beat(block[rb * word : (rb + lanes) * word],
                                       lanes * word, rng))
            part = section[gs * q * n * word : gs * q * n * word + n * (q + 1) * 2]
            step = sc * (q + 1) * 2
            for c in range(0, len(part), step):
                scales.append(_beat(part[c : c + step], sc * (geo.max_q + 1) * 2, rng))
        self._cache["streams"] = (signs, scales)
        return signs, scales

    def sign_beats(self, geo: Geometry) -> list[int]:
        return self._streams(geo)[0]

    def scale_beats(self, geo: Geometry) -> list[int]:
        return self._streams(geo)[1]

    def acc(self) -> np.ndarray:
        """The golden FP32 accumulators as ``uint32[n]``."""
        if "acc" not in self._cache:
            a = np.asarray(glut.lut_acc(self.w, self.x[None, :]), dtype=np.float32)[0]
            self._cache["acc"] = a.view(np.uint32).copy()
        return self._cache["acc"]

    def expected(self, geo: Geometry) -> list[int]:
        """Output beats: ``scalers`` FP32 (rows >= n: +0) and ``last``."""
        a = self.acc()
        sc = geo.scalers
        full = np.zeros(-(-self.n // sc) * sc, dtype=np.uint32)
        full[: self.n] = a
        beats = []
        nb = len(full) // sc
        for c in range(nb):
            word = int.from_bytes(full[c * sc : (c + 1) * sc].astype("<u4").tobytes(), "little")
            beats.append(word | int(c == nb - 1) << 32 * sc)
        return beats


def _beat(chunk: np.ndarray, nbytes: int, rng: np.random.Generator) -> int:
    """Little-endian beat of ``nbytes``; bytes past ``chunk`` are random (don't care)."""
    buf = rng.integers(0, 256, nbytes, dtype=np.uint8)
    buf[: len(chunk)] = chunk
    return int.from_bytes(buf.tobytes(), "little")


def pack16(values) -> int:
    """Little-endian concatenation of 16-bit patterns (element 0 in the low bits)."""
    b = np.ascontiguousarray(np.asarray(values, dtype=np.uint16))
    return int.from_bytes(b.astype("<u2").tobytes(), "little")


def unpack32(word: int, n: int) -> np.ndarray:
    return np.frombuffer(int(word).to_bytes(4 * n + 1, "little")[: 4 * n], dtype="<u4")


# ------------------------------------------------------------------------- random problems

F16_SPECIALS = np.array(
    [0x0000, 0x8000, 0x0001, 0x8001, 0x03FF, 0x83FF, 0x0400, 0x7BFF, 0xFBFF, 0x3C00, 0xBC00],
    dtype=np.uint16,
)  # fmt: skip
"""±0, ± smallest and largest subnormal, smallest normal, ± max normal, ±1 (finite only)."""

KINDS = ("normal", "wide", "specials", "tiny", "ties", "maxnorm")


def _f16(bits) -> np.ndarray:
    return np.asarray(bits, dtype=np.uint16).view(np.float16)


def inputs(rng: np.random.Generator, k: int, kind: str) -> np.ndarray:
    """``k`` FP16 inputs of a family: normal, wide (every exponent; exact sums that cancel and
    need many bits), specials (±0, subnormals, max normals), tiny (subnormal and small), ties
    (few significant bits: FP32 roundings of exact sums land on ties), maxnorm (±65504 and
    neighbours, the largest sums), nonfinite (an inf or NaN in some groups)."""
    if kind == "normal":
        return rng.standard_normal(k).astype(np.float16)
    if kind == "wide":
        e = rng.integers(0, 31, k)
        return _f16((rng.integers(0, 2, k) << 15) | (e << 10) | rng.integers(0, 1024, k))
    if kind == "specials":
        v = rng.standard_normal(k).astype(np.float16).view(np.uint16).copy()
        hit = rng.random(k) < 0.4
        v[hit] = rng.choice(F16_SPECIALS, hit.sum())
        return _f16(v)
    if kind == "tiny":
        e = rng.integers(0, 4, k)
        return _f16((rng.integers(0, 2, k) << 15) | (e << 10) | rng.integers(0, 1024, k))
    if kind == "ties":
        v = rng.integers(-12, 13, k).astype(np.float64) * 2.0 ** rng.integers(-8, 12, k)
        return v.astype(np.float16)
    if kind == "maxnorm":
        return _f16((rng.integers(0, 2, k) << 15) | 0x7BFF - rng.integers(0, 3, k))
    if kind == "nonfinite":
        v = rng.standard_normal(k).astype(np.float16).view(np.uint16).copy()
        bad = rng.choice(np.array([0x7C00, 0xFC00, 0x7E00, 0xFE01, 0x7C01], np.uint16),
                         max(1, k // 16))
        v[rng.choice(k, len(bad), replace=False)] = bad
        return _f16(v)
    raise ValueError(kind)


def scales(rng: np.random.Generator, shape, kind: str) -> np.ndarray:
    """FP16 alpha / z: positive and negative, every exponent for ``wide``, RTN powers of two
    for ``ties``."""
    if kind == "wide":
        e = rng.integers(0, 31, shape)
        bits = (rng.integers(0, 2, shape) << 15) | (e << 10) | rng.integers(0, 1024, shape)
        return _f16(bits)
    if kind == "ties":
        return (2.0 ** rng.integers(-6, 4, shape) * rng.choice([-1, 1], shape)).astype(
            np.float16)
    return (rng.standard_normal(shape) * 0.05).astype(np.float16)


def random_problem(rng: np.random.Generator, geo: Geometry, *, n: int, ng: int, gs: int, q: int,
                   kind: str = "normal") -> Problem:
    g = gs * geo.slice
    k = ng * g
    signs = rng.random((q, k, n)) < 0.5
    skind = kind if kind in ("wide", "ties") else "normal"
    w = glut.Bcq(signs, scales(rng, (ng, q, n), skind), scales(rng, (ng, n), skind), g)
    x = inputs(rng, k, kind)
    return Problem(w=w, x=x, name=kind, seed=int(rng.integers(1 << 30)))


def problem_mix(rng: np.random.Generator, geo: Geometry, count: int, *, max_n: int | None = None,
                max_ng: int = 3, max_gs: int = 3) -> list[Problem]:
    """A varied list: every input family (nonfinite too), q = 1..max_q in turn, n around
    multiples of lanes and scalers."""
    max_n = max_n or 3 * geo.lanes + 1
    kinds = (*KINDS, "nonfinite")
    out = []
    for i in range(count):
        out.append(random_problem(
            rng, geo, n=int(rng.integers(1, max_n + 1)), ng=int(rng.integers(1, max_ng + 1)),
            gs=int(rng.integers(1, max_gs + 1)), q=1 + i % geo.max_q, kind=kinds[i % len(kinds)]))
    return out


def streams(problems: list[Problem], geo: Geometry) -> dict[str, list[int]]:
    """Every input stream and the expected output stream of a command sequence."""
    return {
        "cmd": [p.command(geo) for p in problems],
        "x": [b for p in problems for b in p.x_beats(geo)],
        "signs": [b for p in problems for b in p.sign_beats(geo)],
        "scales": [b for p in problems for b in p.scale_beats(geo)],
        "out": [b for p in problems for b in p.expected(geo)],
    }


def check(got: list[int], want: list[int], problems: list[Problem], geo: Geometry) -> None:
    """Every output bit; a mismatch names the command, the rows and the values."""
    assert len(got) == len(want), f"{len(got)} output beats, want {len(want)}"
    owner = [(i, c) for i, p in enumerate(problems) for c in range(len(p.expected(geo)))]
    for k, (g, w) in enumerate(zip(got, want, strict=True)):
        if g != w:
            i, c = owner[k]
            gv, wv = unpack32(g, geo.scalers), unpack32(w, geo.scalers)
            rows = [f"row {c * geo.scalers + j}: {gv[j]:#010x} != {wv[j]:#010x}"
                    for j in range(geo.scalers) if gv[j] != wv[j]]
            p = problems[i]
            raise AssertionError(
                f"command {i} ({p.name}, n={p.n} ng={p.ng} gs={p.gs(geo)} q={p.q}) beat {c}: "
                + (", ".join(rows) or f"last {g >> 32 * geo.scalers} != {w >> 32 * geo.scalers}"))


# -------------------------------------------------------------------------------- cocotb
# Everything below runs inside the simulator process only.

try:  # the model above is also imported by plain pytest tests
    import cocotb
    from cocotb.clock import Clock
    from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge
except ImportError:  # pragma: no cover
    cocotb = None

CLOCK_NS = 10
INPUTS = ("cmd", "x", "signs", "scales")
PRESSURE = {
    "none": (1.0, 1.0),
    "input_gaps": (0.6, 1.0),
    "output_stalls": (1.0, 0.3),
    "both": (0.7, 0.5),
}
"""(probability an input stream offers its next beat, probability ``out.ready``)."""


class TB:
    """Clock, reset and a cycle engine driving the four input streams and taking the output
    with random valid gaps / ready stalls; every output beat checked against the golden model."""

    def __init__(self, dut, seed: int):
        from dfx.isa.config import load_core

        self.dut = dut
        self.core = load_core(os.environ.get("DFX_CORE", "tiny"))
        self.overrides = json.loads(os.environ.get("LUTGEMM_OVERRIDES", "{}"))
        self.geo = Geometry.from_core(self.core, **self.overrides)
        self.rng = np.random.default_rng(seed + int(os.environ.get("LUTGEMM_SEED", "0")))
        self.cycle = 0

    async def start(self) -> None:
        dut = self.dut
        for s in INPUTS:
            getattr(dut, f"{s}__valid").value = 0
            getattr(dut, f"{s}__payload").value = 0
        dut.out__ready.value = 0
        dut.rst.value = 1
        cocotb.start_soon(Clock(dut.clk, CLOCK_NS, unit="ns").start())
        for _ in range(2):
            await RisingEdge(dut.clk)
        await FallingEdge(dut.clk)
        dut.rst.value = 0

    async def run(self, problems: list[Problem], pressure: str,
                  max_cycles: int = 200_000) -> dict:
        """Drive every stream, collect the output; returns beats and transfer cycles. Inputs
        change after the falling edge, handshakes are sampled settled (ReadOnly)."""
        dut, geo = self.dut, self.geo
        rnd = random.Random(int(self.rng.integers(1 << 30)))
        p_valid, p_ready = PRESSURE[pressure]
        st = streams(problems, geo)
        pos = dict.fromkeys(INPUTS, 0)
        out: dict = {"out": [], "signs_cycles": [], "out_cycles": []}
        start = self.cycle
        while len(out["out"]) < len(st["out"]) or any(pos[s] < len(st[s]) for s in INPUTS):
            self.cycle += 1
            assert self.cycle - start < max_cycles, (
                "stuck: " + ", ".join(f"{s} {pos[s]}/{len(st[s])}" for s in INPUTS)
                + f", out {len(out['out'])}/{len(st['out'])}")
            offer = {}
            for s in INPUTS:
                offer[s] = pos[s] < len(st[s]) and rnd.random() < p_valid
                getattr(dut, f"{s}__valid").value = int(offer[s])
                if offer[s]:
                    getattr(dut, f"{s}__payload").value = st[s][pos[s]]
            ready = rnd.random() < p_ready
            dut.out__ready.value = int(ready)
            await ReadOnly()
            for s in INPUTS:
                if offer[s] and getattr(dut, f"{s}__ready").value:
                    pos[s] += 1
                    if s == "signs":
                        out["signs_cycles"].append(self.cycle)
            if ready and dut.out__valid.value:
                out["out"].append(int(dut.out__payload.value))
                out["out_cycles"].append(self.cycle)
            await FallingEdge(dut.clk)
        for s in INPUTS:
            getattr(dut, f"{s}__valid").value = 0
        dut.out__ready.value = 1
        for _ in range(40):  # nothing more may come out
            await ReadOnly()
            assert not dut.out__valid.value, "extra output beat"
            await FallingEdge(dut.clk)
        self.cycle += 40
        check(out["out"], st["out"], problems, geo)
        return out


# ------------------------------------------------------------------------------ scenarios


def sc_families(tb: TB) -> list[Problem]:
    """Every input family (±0, subnormals, max normals, inf/NaN) at q = 1..max_q."""
    return problem_mix(tb.rng, tb.geo, 3 * len(KINDS) + 3, max_ng=2, max_gs=2)


def sc_shapes(tb: TB) -> list[Problem]:
    """n around the lane and scaler counts (row chunks), several g, every q."""
    geo, out = tb.geo, []
    ns = sorted({1, geo.scalers - 1 or 1, geo.scalers + 1, geo.lanes - 1, geo.lanes,
                 geo.lanes + 1, 3 * geo.scalers + 1, 2 * geo.lanes + 3})
    for i, n in enumerate(ns):
        for q in range(1, geo.max_q + 1):
            out.append(random_problem(tb.rng, geo, n=n, ng=1 + (i + q) % 3, gs=1 + (i * q) % 3,
                                      q=q, kind=KINDS[(i + q) % len(KINDS)]))
    return out


def sc_random(tb: TB) -> list[Problem]:
    """Random commands back to back (a batch of rows over mixed layers)."""
    return problem_mix(tb.rng, tb.geo, 30, max_ng=4, max_gs=4)


SCENARIOS = {"families": sc_families, "shapes": sc_shapes, "random": sc_random}

if cocotb is not None:

    @cocotb.test(timeout_time=5, timeout_unit="ms")
    @cocotb.parametrize(scenario=list(SCENARIOS), pressure=list(PRESSURE))
    async def lutgemm_program(dut, scenario: str, pressure: str):
        """One scenario under one back-pressure mode, every output bit vs ``lut_acc``."""
        seed = list(SCENARIOS).index(scenario) * 7919 + list(PRESSURE).index(pressure)
        tb = TB(dut, seed)
        await tb.start()
        problems = SCENARIOS[scenario](tb)
        out = await tb.run(problems, pressure)
        dut._log.info("%s/%s: %d commands, %d beats ok", scenario, pressure, len(problems),
                      len(out["out"]))

    @cocotb.test(timeout_time=5, timeout_unit="ms")
    async def lutgemm_throughput(dut):
        """Long groups without stalls: one sign beat (a lane word per lane) every cycle. The
        groups are long enough (gs = 16) that even a q = 1 group after a q = max_q one does not
        wait for the scale stage (``LutGemm.keeps_pace``; module doc of
        ``dfx.rtl.lutgemm.top``)."""
        tb = TB(dut, 99)
        await tb.start()
        geo = tb.geo
        n = 4 * geo.lanes
        problems = [random_problem(tb.rng, geo, n=n, ng=3, gs=16, q=1 + i % geo.max_q)
                    for i in range(6)]
        out = await tb.run(problems, "none")
        acc = out["signs_cycles"]
        span = acc[-1] - acc[0] + 1
        dut._log.info("throughput: %d sign beats in %d cycles = %.4f", len(acc), span,
                      len(acc) / span)
        assert len(acc) / span >= 0.99, f"{len(acc)} beats in {span} cycles"

    @cocotb.test(timeout_time=5, timeout_unit="ms")
    async def lutgemm_throughput_short(dut):
        """The shortest groups that keep pace (``LutGemm.keeps_pace``: the scale stage's
        ``(q + 1) * ceil(n/Sc)`` cycles plus the lookup latency within the next group's lane
        cycles), q rising from command to command: one sign beat every cycle."""
        from dfx.rtl.lutgemm import LutGemm

        tb = TB(dut, 98)
        await tb.start()
        geo = tb.geo
        unit = LutGemm.from_core(tb.core, **tb.overrides)
        unit._MustUse__used = True  # only its schedule arithmetic is used
        n = 4 * geo.lanes
        problems = []
        for q in range(1, geo.max_q + 1):
            gs = next(gs for gs in range(1, geo.max_group // geo.slice + 1)
                      if unit.keeps_pace(n, gs, q))
            problems.append(random_problem(tb.rng, geo, n=n, ng=3, gs=gs, q=q))
        out = await tb.run(problems, "none")
        acc = out["signs_cycles"]
        span = acc[-1] - acc[0] + 1
        dut._log.info("short groups (gs = %s): %d sign beats in %d cycles = %.4f",
                      [p.gs(geo) for p in problems], len(acc), span, len(acc) / span)
        assert len(acc) == span, f"{len(acc)} beats in {span} cycles"

