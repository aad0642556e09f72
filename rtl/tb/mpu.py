"""MPU test machinery: the golden model of a command stream (shared by the Amaranth-simulator
tests) and the cocotb testbench run on the Verilator build by ``test_mpu_cocotb.py``.

The model side is numpy + ``dfx.isa.golden`` only (no Amaranth), so the cocotb process starts
fast. Packing follows ``dfx.rtl.mpu.command_layout`` / ``tile_layout`` / ``output_layout``
(``test_mpu.py`` checks the offsets against the layouts).

Configuration of a cocotb run (environment): ``MPU_CORE`` (core name, e.g. ``tiny``),
``MPU_INTERLEAVE``, ``MPU_SEED``.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from dfx.isa.golden import fp as gfp
from dfx.isa.golden import ops as gops
from dfx.isa.golden import tables as gtab

# ------------------------------------------------------------------------------- the model

# command_layout field offsets (bit, width)
CMD_FIELDS = {
    "kt": (0, 16),
    "nt": (16, 16),
    "use_bias": (32, 1),
    "use_scale": (33, 1),
    "mask": (34, 1),
    "gelu": (35, 1),
    "rowmax": (36, 1),
    "limit": (37, 32),
    "scale": (69, 32),
}


@dataclass(frozen=True)
class Geometry:
    """What the model needs to know about the unit under test."""

    d: int
    l: int  # noqa: E741
    interleave: int
    gelu: gtab.PwlTable

    @classmethod
    def from_core(cls, core, interleave: int | None = None) -> Geometry:
        """The unit of ``Mpu.from_core(core)`` (its default ``interleave`` unless given)."""
        from dfx.rtl.mpu.mpu import zigzag_interleave

        m = core.mpu
        return cls(
            d=m.d,
            l=m.l,
            interleave=zigzag_interleave(m.d, m.l, m.add_latency) if interleave is None
            else interleave,
            gelu=gtab.table_from_spec("gelu", core.tables.gelu),
        )


@dataclass
class Problem:
    """One MPU command and its operands (one input row)."""

    w: np.ndarray  # float16 [NT, KT, l, d] (golden tile layout)
    x: np.ndarray  # float16 [KT*d]
    bias: np.ndarray | None = None  # float16 [NT*l]
    scale: np.float32 | None = None
    limit: int | None = None
    gelu: bool = False
    rowmax: bool = False
    name: str = ""
    _expected: tuple | None = field(default=None, repr=False)

    @property
    def nt(self) -> int:
        return self.w.shape[0]

    @property
    def kt(self) -> int:
        return self.w.shape[1]

    def command(self) -> int:
        f = {
            "kt": self.kt & 0xFFFF,
            "nt": self.nt & 0xFFFF,
            "use_bias": int(self.bias is not None),
            "use_scale": int(self.scale is not None),
            "mask": int(self.limit is not None),
            "gelu": int(self.gelu),
            "rowmax": int(self.rowmax),
            "limit": 0 if self.limit is None else self.limit,
            "scale": 0 if self.scale is None else int(np.float32(self.scale).view(np.uint32)),
        }
        word = 0
        for k, (off, width) in CMD_FIELDS.items():
            assert 0 <= f[k] < 1 << width, (k, f[k])
            word |= f[k] << off
        return word

    def tiles(self, interleave: int) -> list[int]:
        """Tile payloads (x portion, then lane-major weights) in the MPU's tile order."""
        nt, kt, l, d = self.w.shape  # noqa: E741
        xb = self.x.view(np.uint16)
        wb = self.w.view(np.uint16)
        out = []
        for n, k in tile_order(kt, nt, interleave):
            out.append(pack16(xb[k * d : (k + 1) * d]) | pack16(wb[n, k].reshape(-1)) << 16 * d)
        return out

    def biases(self) -> list[int]:
        if self.bias is None:
            return []
        b = self.bias.view(np.uint16).reshape(self.nt, -1)
        return [pack16(row) for row in b]

    def expected(self, geo: Geometry) -> tuple[list[int], int | None]:
        """(output payloads: d FP16 + last bit, rowmax FP32 bits or None)."""
        h, rmax = gops.matvec(
            self.w,
            self.x,
            bias=self.bias,
            scale=self.scale,
            mask_limit=self.limit,
            gelu_table=geo.gelu if self.gelu else None,
        )
        hb = np.asarray(h).view(np.uint16)
        n_vec = -(-len(hb) // geo.d)
        pad = gfp.NEG_MAX16_BITS if self.limit is not None else 0
        full = np.full(n_vec * geo.d, pad, dtype=np.uint16)
        full[: len(hb)] = hb
        vecs = []
        for v in range(n_vec):
            last = int(v == n_vec - 1)
            vecs.append(pack16(full[v * geo.d : (v + 1) * geo.d]) | last << 16 * geo.d)
        rm = int(np.float32(rmax).view(np.uint32)) if self.rowmax else None
        return vecs, rm


def tile_order(kt: int, nt: int, interleave: int) -> Iterator[tuple[int, int]]:
    """Same as ``dfx.rtl.mpu.tile_order`` (``test_mpu.py`` checks they agree)."""
    for base in range(0, nt, interleave):
        for k in range(kt):
            for n in range(base, min(nt, base + interleave)):
                yield n, k


def pack16(values) -> int:
    """Little-endian concatenation of 16-bit patterns (element 0 in the low bits)."""
    b = np.ascontiguousarray(np.asarray(values, dtype=np.uint16))
    return int.from_bytes(b.astype("<u2").tobytes(), "little")


def unpack16(word: int, n: int) -> np.ndarray:
    return np.frombuffer(int(word).to_bytes(2 * n, "little"), dtype="<u2").astype(np.uint16)


# ------------------------------------------------------------------------- random problems

F16_SPECIALS = np.array(
    [0x0000, 0x8000, 0x0001, 0x8001, 0x03FF, 0x0200, 0x0400, 0x7BFF, 0xFBFF, 0x3C00, 0xBC00,
     0x7C00, 0xFC00, 0x7E00, 0xFE01, 0x7C01],
    dtype=np.uint16,
)  # fmt: skip


def _f16(bits) -> np.ndarray:
    return np.asarray(bits, dtype=np.uint16).view(np.float16)


def operands(rng: np.random.Generator, n: int, kind: str) -> np.ndarray:
    """``n`` FP16 operands of a family: normal, wide (exponents across the whole range, sums
    cancel, overflow FP16 and go subnormal), ties (few significant bits: exact sums that land on
    FP16 rounding ties), specials (zeros, subnormals, max normals, inf, NaN sprinkled in)."""
    if kind == "normal":
        return rng.standard_normal(n).astype(np.float16)
    if kind == "wide":
        e = rng.integers(1, 31, n)
        f = rng.integers(0, 1024, n)
        s = rng.integers(0, 2, n)
        return _f16((s << 15) | (e << 10) | f)
    if kind == "ties":
        # multiples of 1/4 up to 3, then scaled up so sums of products often need exactly one
        # bit more than FP16 keeps
        v = rng.integers(-12, 13, n).astype(np.float32) / 4
        return (v * np.float32(2.0) ** rng.integers(0, 6, n)).astype(np.float16)
    if kind == "specials":
        v = rng.standard_normal(n).astype(np.float16).view(np.uint16).copy()
        hit = rng.random(n) < 0.2
        v[hit] = rng.choice(F16_SPECIALS, hit.sum())
        return _f16(v)
    if kind == "tiny":  # subnormal products and sums
        e = rng.integers(0, 6, n)
        return _f16((rng.integers(0, 2, n) << 15) | (e << 10) | rng.integers(0, 1024, n))
    raise ValueError(kind)


KINDS = ("normal", "wide", "ties", "specials", "tiny")


def random_problem(
    rng: np.random.Generator,
    geo: Geometry,
    *,
    kt: int,
    nt: int,
    kind: str = "normal",
    bias: bool = False,
    scale: bool = False,
    mask: bool = False,
    gelu: bool = False,
    rowmax: bool = False,
) -> Problem:
    d, l = geo.d, geo.l  # noqa: E741
    wk = "ties" if kind == "ties" else ("normal" if kind == "tiny" else kind)
    w = operands(rng, nt * kt * l * d, wk).reshape(nt, kt, l, d)
    x = operands(rng, kt * d, kind)
    p = Problem(w=w, x=x, name=kind)
    if bias:
        p.bias = operands(rng, nt * l, "specials" if kind == "specials" else "normal")
        if kind == "wide":
            p.bias = operands(rng, nt * l, "wide")
    if scale:
        choices = [0.125, 0.1, 1e-3, 3.0e4, 2.0**-140, -0.5, 1.0]
        p.scale = np.float32(choices[rng.integers(0, len(choices))])
    if mask:
        p.limit = int(rng.integers(0, nt * l + 2))
    p.gelu = gelu
    p.rowmax = rowmax
    return p


def problem_mix(rng: np.random.Generator, geo: Geometry, count: int, max_kt=3, max_nt=5):
    """A varied list of problems: every family, every option combination in turn."""
    out = []
    for i in range(count):
        flags = i % 32
        out.append(
            random_problem(
                rng,
                geo,
                kt=int(rng.integers(1, max_kt + 1)),
                nt=int(rng.integers(1, max_nt + 1)),
                kind=KINDS[i % len(KINDS)],
                bias=bool(flags & 1),
                scale=bool(flags & 2),
                mask=bool(flags & 4),
                gelu=bool(flags & 8),
                rowmax=bool(flags & 16) or i % 3 == 0,
            )
        )
    return out


def expected_streams(problems, geo: Geometry) -> tuple[list[int], list[int]]:
    outs, maxes = [], []
    for p in problems:
        v, r = p.expected(geo)
        outs += v
        if r is not None:
            maxes.append(r)
    return outs, maxes


def describe_mismatch(got: int, want: int, d: int) -> str:
    g, w = unpack16(got, d + 1), unpack16(want, d + 1)
    lanes = [f"{i}: {g[i]:#06x} != {w[i]:#06x}" for i in range(d) if g[i] != w[i]]
    last = "" if (got >> 16 * d) == (want >> 16 * d) else f" last {got >> 16 * d}"
    return ", ".join(lanes) + last


# -------------------------------------------------------------------------------- cocotb
# Everything below runs inside the simulator process only.

try:  # the model above is also imported by plain pytest tests
    import cocotb
    from cocotb.clock import Clock
    from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly, RisingEdge
except ImportError:  # pragma: no cover
    cocotb = None

CLOCK_NS = 10


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


class TB:
    """Clock, reset, stream drivers and monitors around the ``mpu`` toplevel."""

    def __init__(self, dut):
        from dfx.isa.config import load_core

        self.dut = dut
        core = load_core(os.environ.get("MPU_CORE", os.environ.get("DFX_CORE", "tiny")))
        self.geo = Geometry.from_core(core, _env_int("MPU_INTERLEAVE", core.mpu.add_latency))
        self.rng = np.random.default_rng(_env_int("MPU_SEED", 1))
        self.out: list[int] = []
        self.maxes: list[int] = []
        self.accepted: list[int] = []
        self.cycles = 0

    async def start(self) -> None:
        dut = self.dut
        for s in (dut.cmd__valid, dut.tiles__valid, dut.bias__valid):
            s.value = 0
        dut.out__ready.value = 0
        dut.rowmax__ready.value = 0
        dut.rst.value = 1
        cocotb.start_soon(Clock(dut.clk, CLOCK_NS, unit="ns").start())
        await ClockCycles(dut.clk, 3)
        await FallingEdge(dut.clk)
        dut.rst.value = 0

    async def drive(self, name: str, items: list[int], gap: Callable[[], int]) -> None:
        """Offer ``items`` on stream ``name`` in order, ``gap()`` idle cycles before each.

        Inputs change at falling edges; ``ready`` is sampled once settled (ReadOnly), so a
        transfer is exactly a rising edge with valid and ready high."""
        clk = self.dut.clk
        valid = getattr(self.dut, f"{name}__valid")
        ready = getattr(self.dut, f"{name}__ready")
        payload = getattr(self.dut, f"{name}__payload")
        await FallingEdge(clk)
        for item in items:
            for _ in range(gap()):
                valid.value = 0
                await FallingEdge(clk)
            payload.value = item
            valid.value = 1
            while True:
                await ReadOnly()
                took = int(ready.value)
                await FallingEdge(clk)
                if took:
                    break
        valid.value = 0

    async def monitor(self, name: str, sink: list[int], ready_p: float) -> None:
        """Collect every payload taken from output stream ``name``; ``ready`` is random."""
        clk = self.dut.clk
        valid = getattr(self.dut, f"{name}__valid")
        ready = getattr(self.dut, f"{name}__ready")
        payload = getattr(self.dut, f"{name}__payload")
        rnd = random.Random(int(self.rng.integers(1 << 30)))
        await FallingEdge(clk)
        while True:
            ready.value = int(rnd.random() < ready_p)
            await ReadOnly()
            if int(valid.value) and int(ready.value):
                sink.append(int(payload.value))
            await FallingEdge(clk)

    async def count_tiles(self) -> None:
        """Record the cycle numbers on which the tile stream moved (valid & ready)."""
        dut = self.dut
        while True:
            await FallingEdge(dut.clk)
            await ReadOnly()
            self.cycles += 1
            if int(dut.tiles__valid.value) and int(dut.tiles__ready.value):
                self.accepted.append(self.cycles)

    async def run(
        self, problems: list[Problem], *, in_gap: float = 0.0, ready_p: float = 1.0
    ) -> None:
        """Send ``problems`` (commands, tiles, biases concurrently), collect and compare."""
        geo = self.geo
        rnd = random.Random(int(self.rng.integers(1 << 30)))

        def gap() -> int:
            return rnd.randint(1, 4) if in_gap and rnd.random() < in_gap else 0

        want_out, want_max = expected_streams(problems, geo)
        tiles = [t for p in problems for t in p.tiles(geo.interleave)]
        biases = [b for p in problems for b in p.biases()]
        self.out, self.maxes = [], []
        mons = [
            cocotb.start_soon(self.monitor("out", self.out, ready_p)),
            cocotb.start_soon(self.monitor("rowmax", self.maxes, ready_p)),
        ]
        drivers = [
            cocotb.start_soon(self.drive("cmd", [p.command() for p in problems], gap)),
            cocotb.start_soon(self.drive("tiles", tiles, gap)),
            cocotb.start_soon(self.drive("bias", biases, gap)),
        ]
        for drv in drivers:
            await drv
        idle = 0
        while idle < 200 and (len(self.out) < len(want_out) or len(self.maxes) < len(want_max)):
            n = len(self.out) + len(self.maxes)
            await RisingEdge(self.dut.clk)
            idle = idle + 1 if len(self.out) + len(self.maxes) == n else 0
        await ClockCycles(self.dut.clk, 30)  # nothing extra may follow
        for mon in mons:
            mon.cancel()
        check(self.out, want_out, self.maxes, want_max, geo.d, problems)


def check(out, want_out, maxes, want_max, d, problems) -> None:
    assert len(out) == len(want_out), f"{len(out)} output vectors, want {len(want_out)}"
    bad = [i for i in range(len(out)) if out[i] != want_out[i]]
    assert not bad, f"{len(bad)} vectors differ; first #{bad[0]}: " + describe_mismatch(
        out[bad[0]], want_out[bad[0]], d
    )
    assert maxes == want_max, f"row maxima {[hex(v) for v in maxes]} != {want_max}"


if cocotb is not None:
    TIMEOUT = {"timeout_time": 20, "timeout_unit": "ms"}

    def _gap_modes():
        return {"steady": (0.0, 1.0), "input_gaps": (0.3, 1.0), "backpressure": (0.0, 0.4),
                "both": (0.3, 0.5)}  # fmt: skip

    @cocotb.test(**TIMEOUT)
    async def corners_and_options(dut):
        """Every operand family x every option combination, crossed with idle/back-pressure."""
        tb = TB(dut)
        await tb.start()
        for mode, (in_gap, ready_p) in _gap_modes().items():
            problems = problem_mix(tb.rng, tb.geo, 96)
            await tb.run(problems, in_gap=in_gap, ready_p=ready_p)
            dut._log.info("%s: %d commands, %d vectors ok", mode, len(problems), len(tb.out))

    @cocotb.test(**TIMEOUT)
    async def shapes(dut):
        """KT, NT around the interleave width (short blocks with bubbles, long reductions)."""
        tb = TB(dut)
        await tb.start()
        g = tb.geo.interleave
        problems = []
        for kt in (1, 2, 5):
            for nt in (1, g - 1, g, g + 1, 2 * g + 1):
                if nt >= 1:
                    kind = KINDS[(kt + nt) % len(KINDS)]
                    problems.append(
                        random_problem(tb.rng, tb.geo, kt=kt, nt=nt, kind=kind, rowmax=True)
                    )
        for in_gap, ready_p in ((0.0, 1.0), (0.2, 0.7)):
            await tb.run(problems, in_gap=in_gap, ready_p=ready_p)

    @cocotb.test(**TIMEOUT)
    async def long_random(dut):
        """300 random commands (larger shapes) with random gaps and back-pressure."""
        tb = TB(dut)
        await tb.start()
        problems = problem_mix(tb.rng, tb.geo, 300, max_kt=6, max_nt=3 * tb.geo.interleave + 1)
        await tb.run(problems, in_gap=0.1, ready_p=0.8)
        dut._log.info("%d commands, %d vectors ok", len(problems), len(tb.out))

    @cocotb.test(**TIMEOUT)
    async def throughput(dut):
        """A long random stream: one tile per cycle sustained without back-pressure."""
        tb = TB(dut)
        await tb.start()
        g = tb.geo.interleave
        problems = [
            random_problem(tb.rng, tb.geo, kt=4, nt=8 * g, kind="normal", bias=True, gelu=True)
            for _ in range(20)
        ]
        counter = cocotb.start_soon(tb.count_tiles())
        n_tiles = sum(p.kt * p.nt for p in problems)
        await tb.run(problems)
        counter.cancel()
        acc = tb.accepted
        span = acc[-1] - acc[0] + 1
        dut._log.info("throughput: %d tiles in %d cycles = %.4f", len(acc), span, len(acc) / span)
        assert len(acc) == n_tiles >= 1000
        assert len(acc) == span, "a full-block stream must move every cycle"
