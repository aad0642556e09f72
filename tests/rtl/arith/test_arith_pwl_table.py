"""PwlTable: FP16 GELU / exp by piecewise-linear table, bit-exact against the golden
``gelu16`` / ``exp16`` (``PwlTable.lut16``) on Amaranth's simulator: every breakpoint and its
FP16 neighbours, the range ends, every FP16 corner class, random inputs; tiny and dfx-u280
tables; several latencies; stalls; exhaustive over all 2^16 inputs (slow)."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator
from arith_harness import FP16_CORNERS, pipeline_model

from dfx.isa.config import load_core
from dfx.isa.golden import fp as gfp
from dfx.isa.golden import tables as gt
from dfx.rtl.arith.pwl_table import DEFAULT_TABLE_LATENCY, PwlTable, fp16_to_fp32

# construction-only tests build components they never elaborate
pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")

TINY = load_core("tiny")
U280 = load_core("dfx-u280")
FAST_LATENCY = 9  # registers inside every sub-block: the event-driven simulator runs fastest


def table_of(core, fn: str) -> gt.PwlTable:
    return gt.table_from_spec(fn, getattr(core.tables, fn))


def run(dut: PwlTable, xs, *, en=None, valid=None, tail=None):
    """Stream FP16 patterns ``xs`` (``lanes`` per cycle) through ``dut``; return per cycle the
    lane results and ``valid_out`` sampled just before the clock edge."""
    lanes = dut.lanes
    xs = [int(v) for v in xs]
    xs += [0] * (-len(xs) % lanes)
    n = len(xs) // lanes
    tail = dut.latency if tail is None else tail
    en = (list(en) if en is not None else [1] * n) + [1] * tail
    valid = (list(valid) if valid is not None else [1] * n) + [0] * tail
    results, valids = [], []

    async def tb(ctx):
        for t in range(n + tail):
            if t < n:
                for j in range(lanes):
                    ctx.set(dut.a[j], xs[t * lanes + j])
            ctx.set(dut.valid_in, valid[t])
            ctx.set(dut.en, en[t])
            vals = await ctx.tick().sample(dut.valid_out, *dut.result)
            valids.append(vals[-lanes - 1])
            results.append(list(vals[-lanes:]))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    return results, valids


def check(dut: PwlTable, xs) -> None:
    xs = np.asarray(xs, dtype=np.uint16)
    results, valids = run(dut, xs)
    lat, lanes = dut.latency, dut.lanes
    n = -(-len(xs) // lanes)
    assert valids == [0] * lat + [1] * n
    got = np.array(results[lat:], dtype=np.uint16).reshape(-1)[: len(xs)]
    want = dut.table.lut16[xs]
    bad = np.flatnonzero(got != want)
    if bad.size:
        lines = [f"  x={xs[i]:#06x}: got {got[i]:#06x}, want {want[i]:#06x}" for i in bad[:10]]
        raise AssertionError(f"{bad.size} of {len(xs)} wrong:\n" + "\n".join(lines))


def vectors(tab: gt.PwlTable, n_random: int, seed: int, every: int = 1) -> np.ndarray:
    """Breakpoints (every ``every``-th) with their FP16 neighbours, range ends, corners, random."""
    rng = np.random.default_rng(seed)
    bp = np.asarray(tab.x[::every], dtype=np.float32)
    bp16 = bp.astype(np.float16)
    exact = bp16.astype(np.float32) == bp  # breakpoints representable in FP16
    b = bp16[exact].view(np.uint16).astype(np.int64)
    # FP16 neighbours: +-1 ulp in the bit pattern (sign-magnitude; across 0 both directions)
    near = np.concatenate([b, b + 1, b - 1, b ^ 0x8000])
    ends = np.array([tab.lo, tab.hi], dtype=np.float16).view(np.uint16).astype(np.int64)
    ends = np.concatenate([ends, ends + 1, ends - 1, ends + 2, ends - 2])
    rand = rng.integers(0, 1 << 16, n_random)
    # random values inside the range (where the interpolation is exercised)
    inside = rng.uniform(tab.lo, tab.hi, n_random).astype(np.float16).view(np.uint16)
    allv = np.concatenate([near, ends, FP16_CORNERS, rand, inside.astype(np.int64)])
    return (allv & 0xFFFF).astype(np.uint16)


# ----------------------------------------------------------------------------- construction


def test_defaults_and_properties():
    tab = table_of(TINY, "gelu")
    dut = PwlTable(tab, lanes=3)
    assert DEFAULT_TABLE_LATENCY == U280.vpu.table_latency == 4
    assert (dut.latency, dut.lanes, dut.fn, dut.table) == (4, 3, "gelu", tab)
    assert dut.stage_latencies == {"rom": 1, "sub": 0, "mul": 1, "add": 1, "cvt": 1}
    assert sum(PwlTable(tab, latency=11).stage_latencies.values()) == 11
    assert PwlTable(tab, latency=1).stage_latencies == {
        "rom": 1,
        "sub": 0,
        "mul": 0,
        "add": 0,
        "cvt": 0,
    }
    for attr in ("latency", "lanes", "table", "fn", "stage_latencies"):
        with pytest.raises(AttributeError):
            setattr(dut, attr, 1)


def test_from_core():
    dut = PwlTable.from_core(U280, "exp", lanes=2)
    assert dut.table is table_of(U280, "exp") and dut.latency == U280.vpu.table_latency
    assert PwlTable.from_core(TINY).table is table_of(TINY, "gelu")
    with pytest.raises(ValueError, match=r"fn must be one of \('gelu', 'exp'\), not 'recip'"):
        PwlTable.from_core(TINY, "recip")


def test_signature():
    members = dict(PwlTable(table_of(TINY, "gelu"), lanes=2).signature.members)
    assert set(members) == {"a", "valid_in", "en", "result", "valid_out"}
    assert members["a"].dimensions == (2,) and members["result"].dimensions == (2,)
    assert members["en"].init == 1


@pytest.mark.parametrize(
    ("kwargs", "exc", "msg"),
    [
        ({"latency": 0}, ValueError, "latency must be an integer >= 1, not 0"),
        ({"latency": 2.5}, TypeError, "latency must be an integer >= 1, not 2.5"),
        ({"lanes": 0}, ValueError, "lanes must be an integer >= 1, not 0"),
    ],
)
def test_bad_parameters(kwargs, exc, msg):
    with pytest.raises(exc) as info:
        PwlTable(table_of(TINY, "gelu"), **kwargs)
    assert str(info.value) == msg


def test_bad_tables():
    with pytest.raises(TypeError, match="table must be a dfx.isa.golden.tables.PwlTable"):
        PwlTable(TINY.tables.gelu)
    with pytest.raises(ValueError, match="not 'rsqrt'"):
        PwlTable(table_of(TINY, "rsqrt"))
    h = 2.0**-25  # a legal golden table would need 2^26 points: build the object directly
    z = np.zeros(5, dtype=np.float32)
    fine = gt.PwlTable(fn="gelu", lo=0.0, hi=4 * h, points=4, h=h, x=z, y=z, m=z[:4])
    with pytest.raises(ValueError, match="below 2\\^-24"):
        PwlTable(fine)


# ------------------------------------------------------------------------------- widening


class _Widen(wiring.Component):
    def __init__(self):
        super().__init__({"a": In(16).array(16), "r": Out(32).array(16)})

    def elaborate(self, platform):
        m = Module()
        for i in range(16):
            m.d.comb += self.r[i].eq(fp16_to_fp32(m, self.a[i], f"w{i}"))
        return m


def test_fp16_to_fp32():
    """Every zero, subnormal, inf and NaN pattern (both signs), 1024 random normals."""
    dut = _Widen()
    special = np.arange(1 << 16, dtype=np.uint32)
    special = special[np.isin((special >> 10) & 0x1F, [0, 31])]
    normal = np.random.default_rng(86).integers(0x0400, 0x7C00, 1024) | 0x8000 * (
        np.arange(1024) & 1
    )
    allx = np.concatenate([special, normal]).astype(np.uint16)
    want = np.asarray(gfp.f32_bits(gfp.widen16(allx.view(np.float16))))
    got = np.zeros(len(allx), dtype=np.uint32)

    async def tb(ctx):
        for base in range(0, len(allx), 16):
            for i in range(16):
                ctx.set(dut.a[i], int(allx[base + i]))
            await ctx.delay(1e-9)
            for i in range(16):
                got[base + i] = ctx.get(dut.r[i])

    sim = Simulator(dut)
    sim.add_testbench(tb)
    sim.run()
    bad = np.flatnonzero(got != want)
    assert not bad.size, [(hex(allx[i]), hex(got[i]), hex(want[i])) for i in bad[:8]]


# ------------------------------------------------------------------------------ bit-exact


@pytest.mark.parametrize("fn", ["gelu", "exp"])
def test_tiny_tables(fn):
    tab = table_of(TINY, fn)
    check(PwlTable(tab, lanes=4, latency=FAST_LATENCY), vectors(tab, 300, seed=80))


@pytest.mark.parametrize("fn", ["gelu", "exp"])
def test_u280_tables(fn):
    tab = table_of(U280, fn)
    check(PwlTable(tab, lanes=4, latency=FAST_LATENCY), vectors(tab, 300, seed=81, every=9))


@pytest.mark.parametrize(("core", "latency"), [(TINY, 2), (TINY, 5), (U280, 4)])
def test_shared_tables(core, latency):
    """exp and gelu in one unit (the VFU's): ``sel`` picks the table of every input set, cycle
    by cycle, with stalls; tables of different sizes share the ROMs."""
    tabs = (table_of(core, "exp"), table_of(core, "gelu"))
    dut = PwlTable(tabs, lanes=2, latency=latency)
    assert dut.tables == tabs and dut.table is tabs[0]
    rng = np.random.default_rng(86 + latency)
    xs = np.concatenate([vectors(t, 60, seed=87, every=7) for t in tabs])
    xs = rng.permutation(xs)[: 2 * (len(xs) // 2)].reshape(-1, 2)
    n, tail = len(xs), 2 * latency + 3
    sels = [int(v) for v in rng.integers(0, 2, n)]
    en = [int(v) for v in rng.random(n) < 0.8] + [1] * tail
    valid = [int(v) for v in rng.random(n) < 0.8] + [0] * tail
    want = [[int(tabs[sels[t]].lut16[x]) for x in xs[t]] for t in range(n)]
    outs, valids = [], []

    async def tb(ctx):
        for t in range(n + tail):
            if t < n:
                ctx.set(dut.a[0], int(xs[t][0]))
                ctx.set(dut.a[1], int(xs[t][1]))
                ctx.set(dut.sel, sels[t])
            ctx.set(dut.valid_in, valid[t])
            ctx.set(dut.en, en[t])
            vals = await ctx.tick().sample(dut.valid_out, *dut.result)
            valids.append(vals[-3])
            outs.append(list(vals[-2:]))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    model = pipeline_model(want + [None] * tail, valid, en, latency)
    assert valids == [v for _, v in model]
    assert sum(valids) > n // 2
    for t, (w, v) in enumerate(model):
        if v:
            assert outs[t] == w, f"cycle {t}: got {outs[t]}, want {w}"


def test_shared_tables_need_distinct_functions():
    tab = table_of(TINY, "exp")
    with pytest.raises(ValueError, match="one table per function"):
        PwlTable((tab, tab))
    with pytest.raises(ValueError, match="at least one table"):
        PwlTable(())


@pytest.mark.parametrize("latency", [1, 2, 4, 6])
def test_other_latencies(latency):
    tab = table_of(TINY, "gelu")
    xs = vectors(tab, 60, seed=82 + latency, every=16)
    check(PwlTable(tab, lanes=2, latency=latency), xs)


def test_other_ranges():
    """Tables on other ranges: steps 1/2 and 2 (h > 1), lo not symmetric, lo > 0."""
    for spec, fn in [((-3.0, 5.0, 16), "gelu"), ((-8.0, 24.0, 16), "exp"), ((0.5, 4.5, 8), "exp")]:
        tab = gt.table(fn, *spec)
        check(PwlTable(tab, lanes=4, latency=FAST_LATENCY), vectors(tab, 80, seed=83))


def test_vectors_cover_the_rules():
    tab = table_of(TINY, "gelu")
    xs = vectors(tab, 600, seed=80).view(np.float16)
    x = xs.astype(np.float32)
    assert np.isnan(x).sum() >= 5 and np.isinf(x).sum() >= 2
    assert (x < tab.lo).sum() > 50 and (x >= tab.hi).sum() > 50
    assert np.isin(np.float32(tab.x[:-1]), x).all(), "every breakpoint"
    assert (x == tab.lo).any() and (x == tab.hi).any()


@pytest.mark.parametrize("latency", [1, 5])
def test_stalls_and_bubbles(latency):
    tab = table_of(TINY, "exp")
    rng = np.random.default_rng(84 + latency)
    n, tail = 150, 2 * latency + 3
    xs = vectors(tab, 40, seed=85)[:n]
    ref = [int(v) for v in tab.lut16[xs]]
    en = [int(v) for v in rng.random(n) < 0.7]
    valid = [int(v) for v in rng.random(n) < 0.7]
    dut = PwlTable(tab, latency=latency)
    results, valids = run(dut, xs, en=en, valid=valid, tail=tail)
    en_all, valid_all = en + [1] * tail, valid + [0] * tail
    model = pipeline_model(ref + [None] * tail, valid_all, en_all, latency)
    assert valids == [v for _, v in model]
    for t, (want, v) in enumerate(model):
        if v:
            assert results[t][0] == want, f"cycle {t}: got {results[t][0]:#x}, want {want:#x}"


@pytest.mark.fullsize
@pytest.mark.slow
@pytest.mark.parametrize("fn", ["gelu", "exp"])
def test_u280_exhaustive(fn):
    """All 2^16 FP16 inputs through the dfx-u280 table."""
    tab = table_of(U280, fn)
    check(PwlTable(tab, lanes=16, latency=FAST_LATENCY), np.arange(1 << 16, dtype=np.uint32))


def test_verilog_keeps_the_roms_as_memories():
    tab = table_of(U280, "gelu")
    text = verilog.convert(PwlTable(tab, lanes=2), name="top")
    assert "module top(" in text
    # one array per ROM, initialised word by word (no per-lane copies, no case-statement ROM)
    assert text.count("reg [31:0] rom_y [2047:0];") == 1
    assert text.count("rom_y[2047] = 32'd") == 1
    assert "case" not in text
