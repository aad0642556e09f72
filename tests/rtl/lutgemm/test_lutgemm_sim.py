"""The whole LUT-GEMM unit on Amaranth's simulator (tiny core: mu 4, keys 2, 4 lanes, 2
scalers) against the golden ``lut_acc`` bit for bit: every input family (±0, subnormals, max
normals, inf/NaN), q = 1..max_q, several g and n (n not a multiple of lanes or scalers),
batches of commands back to back, idle gaps and back-pressure on every stream, other
parameters (full table form, one scaler per lane, one scaler, other latencies), and the
sustained rate of one lane word per lane per cycle."""

from __future__ import annotations

import numpy as np
import pytest
from lutgemm_harness import simulate

from dfx.isa.config import load_core
from dfx.isa.golden import lutgemm as glut
from dfx.rtl.lutgemm import LutGemm
from dfx.rtl.tb.lutgemm import KINDS, Geometry, Problem, problem_mix, random_problem

TINY = load_core("tiny")
pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


@pytest.fixture(scope="module")
def geo() -> Geometry:
    return Geometry.from_core(TINY)


def f16(bits) -> np.ndarray:
    return np.asarray(bits, dtype=np.uint16).view(np.float16)


def test_layouts_match_the_model(geo):
    dut = LutGemm.from_core(TINY)
    layout = dut.command_layout
    for name, (off, width) in geo.cmd_fields.items():
        assert layout[name].offset == off and layout[name].width == width, name
    assert dut.signs.payload.shape().size == geo.lanes * geo.slice
    assert dut.scales.payload.shape().size == geo.scalers * (geo.max_q + 1) * 16
    assert dut.out.payload.shape().size == 32 * geo.scalers + 1
    assert dut.acc_bits == 113  # 54-bit group sums x FP16 scales, 65535 x 5 terms
    assert dut.paired_convert  # two scalers share a converter: one cycle more
    assert dut.scaler_latency == 2 + sum(getattr(TINY.lutgemm, f"{k}_latency")
                                         for k in ("mul", "add", "convert"))


def test_parameters_are_checked():
    with pytest.raises(ValueError, match="scalers"):
        LutGemm.from_core(TINY, scalers=8)
    with pytest.raises(ValueError, match="lanes"):
        LutGemm.from_core(TINY, lanes=3)
    with pytest.raises(ValueError, match="max_rows"):
        LutGemm.from_core(TINY, max_rows=6)
    with pytest.raises(ValueError, match="max_group"):
        LutGemm.from_core(TINY, max_group=12)
    with pytest.raises(ValueError, match="multiple of 8"):
        LutGemm.from_core(TINY, mu=2, keys=2)
    with pytest.raises(ValueError, match="max_q"):
        LutGemm.from_core(TINY, max_q=8)
    with pytest.raises(ValueError, match="convert_latency"):
        LutGemm.from_core(TINY, convert_latency=0)
    with pytest.raises(ValueError, match="add_latency"):
        LutGemm.from_core(TINY, add_latency=100)
    with pytest.raises(ValueError, match="queue_depth"):
        LutGemm.from_core(TINY, queue_depth=3)


def test_single_command(geo):
    p = random_problem(np.random.default_rng(1), geo, n=5, ng=2, gs=2, q=2)
    simulate(LutGemm.from_core(TINY), [p], geo)


def test_input_families_every_q(geo):
    """Each input family (and inf/NaN groups) at q = 1..max_q, commands back to back."""
    rng = np.random.default_rng(2)
    problems = [random_problem(rng, geo, n=6, ng=2, gs=2, q=q, kind=kind)
                for kind in (*KINDS, "nonfinite") for q in range(1, geo.max_q + 1)]
    simulate(LutGemm.from_core(TINY), problems, geo)


def test_corner_values(geo):
    """Directed: all ±0 inputs (exact zero sums -> +0), subnormal-only inputs, max normals in
    long groups (the widest sums), a group with +inf, -inf or NaN among finite groups (whole
    row NaN), zero and negative scales, -0 offsets, exact cancellation."""
    s = geo.slice
    rng = np.random.default_rng(3)
    problems = []

    def make(x, q=2, n=5, gs=2, alpha=None, z=None, signs=None, name=""):
        k = len(x)
        ng = k // (gs * s)
        signs = rng.random((q, k, n)) < 0.5 if signs is None else signs
        alpha = (rng.standard_normal((ng, q, n))).astype(np.float16) if alpha is None else alpha
        z = (rng.standard_normal((ng, n))).astype(np.float16) if z is None else z
        return Problem(glut.Bcq(signs, alpha, z, gs * s), f16(x).copy()
                       if x.dtype != np.float16 else x, name=name, seed=len(problems))

    k = 4 * s
    problems.append(make(f16([0x8000] * k), name="-0"))
    problems.append(make(f16([0x0000, 0x8000] * (k // 2)), name="±0"))
    problems.append(make(f16(rng.integers(0, 0x400, k) | (rng.integers(0, 2, k) << 15)),
                         name="subnormal"))
    maxn = f16([0x7BFF] * k)
    problems.append(make(maxn, signs=np.ones((2, k, 5), bool), name="max-normal same sign"))
    problems.append(make(f16([0x7BFF, 0xFBFF] * (k // 2)), name="max-normal cancelling"))
    for bad in (0x7C00, 0xFC00, 0x7E00, 0xFD01):
        x = rng.standard_normal(k).astype(np.float16)
        x[rng.integers(2 * s, k)] = f16(bad)  # only the second group is not finite
        problems.append(make(x, name=f"nonfinite {bad:#06x}"))
    x = rng.standard_normal(k).astype(np.float16)
    problems.append(make(x, alpha=np.zeros((2, 2, 5), np.float16),
                         z=f16(np.full((2, 5), 0x8000)), name="zero scales, -0 offset"))
    problems.append(make(x, alpha=-np.abs(rng.standard_normal((2, 2, 5))).astype(np.float16),
                         name="negative scales"))
    big = f16([0x7BFF] * (16 * s))
    problems.append(make(big, q=4, n=3, gs=16, signs=np.ones((4, 16 * s, 3), bool),
                         alpha=f16(np.full((1, 4, 3), 0x7BFF)), z=f16(np.full((1, 3), 0x7BFF)),
                         name="largest sums and scales"))
    simulate(LutGemm.from_core(TINY), problems, geo)


@pytest.mark.parametrize("q", [1, 2, 3, 4])
def test_shapes(geo, q):
    """n = 1 .. 3 lanes + 1 (not multiples of lanes or scalers), g = 1..4 slices, ng = 1..3."""
    rng = np.random.default_rng(10 + q)
    problems = [random_problem(rng, geo, n=n, ng=1 + n % 3, gs=1 + (n * q) % 4, q=q,
                               kind=KINDS[n % len(KINDS)])
                for n in (1, 2, 3, 5, 7, 9, 13)]
    simulate(LutGemm.from_core(TINY), problems, geo)


def test_batch_back_to_back(geo):
    """A batch: one matrix, several input rows (one command each), then mixed layers."""
    rng = np.random.default_rng(20)
    base = random_problem(rng, geo, n=7, ng=3, gs=2, q=3)
    rows = [Problem(base.w, random_problem(rng, geo, n=7, ng=3, gs=2, q=3, kind=kind).x,
                    name=kind, seed=i) for i, kind in enumerate((*KINDS, "nonfinite"))]
    simulate(LutGemm.from_core(TINY), rows + problem_mix(rng, geo, 6), geo)


@pytest.mark.parametrize(
    ("in_gap", "ready_p"), [(0.5, 1.0), (0.0, 0.3), (0.4, 0.5)], ids=["gaps", "bp", "both"]
)
def test_idle_and_backpressure(geo, in_gap, ready_p):
    problems = problem_mix(np.random.default_rng(30), geo, 10)
    simulate(LutGemm.from_core(TINY), problems, geo, in_gap=in_gap, ready_p=ready_p, seed=31)


@pytest.mark.parametrize(
    "overrides",
    [
        {"symmetric": False},
        {"scalers": 4},
        {"scalers": 1},
        {"build_latency": 3, "lookup_latency": 2, "convert_latency": 2, "mul_latency": 1,
         "add_latency": 3, "queue_depth": 2},
        {"mu": 2, "keys": 4, "lanes": 8, "max_q": 3, "mul_latency": 0},
        {"add_latency": 1, "mul_latency": 0, "convert_latency": 3},
        {"add_latency": 4, "mul_latency": 4, "max_q": 7},
    ],
    ids=["full_tables", "scaler_per_lane", "one_scaler", "latencies", "mu2_8lanes", "one_limb",
         "four_limbs_q7"],
)
def test_other_parameters(overrides):
    geo = Geometry.from_core(TINY, **overrides)
    dut = LutGemm.from_core(TINY, **overrides)
    problems = problem_mix(np.random.default_rng(40), geo, 8, max_n=2 * geo.lanes + 3)
    simulate(dut, problems, geo, in_gap=0.2, ready_p=0.7, seed=41)


def sign_span(dut: LutGemm, problems: list[Problem], geo: Geometry) -> tuple[int, int]:
    """(sign beats, cycles from the first to the last) of a run without stalls."""
    acc = simulate(dut, problems, geo)["signs"]
    return len(acc), acc[-1] - acc[0] + 1


def test_one_lane_word_per_cycle(geo):
    """Long groups (gs = 8) at every q, n = 16, 3 groups, commands back to back, no stalls:
    a sign beat (one lane word per lane) moves on every cycle from the first to the last."""
    rng = np.random.default_rng(60)
    problems = [random_problem(rng, geo, n=16, ng=3, gs=8, q=1 + i % geo.max_q)
                for i in range(4)]
    dut = LutGemm.from_core(TINY)
    assert all(dut.keeps_pace(p.n, p.gs(geo), p.q) for p in problems)
    beats, span = sign_span(dut, problems, geo)
    ideal = sum(dut.lane_cycles(p.n, p.ng, p.gs(geo), p.q) for p in problems)
    print(f"throughput: {beats} sign beats in {span} cycles (ideal {ideal})")
    assert beats == ideal == span


def test_short_groups_at_full_rate():
    """One scaler per lane: groups of two slices (g = 16 inputs) at q = 2..4 keep the lanes at
    one lane word per cycle (the scalers' q + 1 terms per row fit in the lanes' 2q cycles; q
    never drops from one command to the next, see :meth:`LutGemm.keeps_pace`)."""
    ov = {"scalers": 4}
    geo = Geometry.from_core(TINY, **ov)
    dut = LutGemm.from_core(TINY, **ov)
    rng = np.random.default_rng(62)
    problems = [random_problem(rng, geo, n=16, ng=4, gs=2, q=q) for q in (2, 2, 3, 4)]
    assert all(dut.keeps_pace(p.n, p.gs(geo), p.q) for p in problems)
    beats, span = sign_span(dut, problems, geo)
    print(f"short groups: {beats} sign beats in {span} cycles")
    assert beats == span == sum(dut.lane_cycles(p.n, p.ng, p.gs(geo), p.q) for p in problems)


@pytest.mark.parametrize(
    ("n", "gs", "q"),
    [(16, 1, 1), (16, 2, 1), (16, 2, 2), (16, 3, 2), (16, 2, 4), (16, 3, 4), (8, 3, 1),
     (8, 4, 1), (4, 2, 3), (4, 3, 3), (2, 3, 1), (2, 4, 1)])
def test_throughput_condition_is_exact(geo, n, gs, q):
    """Runs of 4 equal groups: the lanes take one beat per cycle exactly when
    :meth:`LutGemm.keeps_pace` says so (scaler_cycles + lookup_latency <= lane cycles)."""
    dut = LutGemm.from_core(TINY)
    p = random_problem(np.random.default_rng(63 + n * gs * q), geo, n=n, ng=4, gs=gs, q=q)
    beats, span = sign_span(dut, [p], geo)
    ok = dut.keeps_pace(n, gs, q)
    print(f"n={n} gs={gs} q={q}: {beats} beats in {span} cycles, keeps pace: {ok}")
    assert (beats == span) == ok


def test_scaler_bound_groups(geo):
    """Single-slice groups (gs = 1) are scaler-bound on the tiny core (2 lanes per scaler):
    the lanes wait, the numbers stay exact, and the stage runs its groups back to back
    (scaler_cycles per group)."""
    rng = np.random.default_rng(61)
    problems = [random_problem(rng, geo, n=8, ng=4, gs=1, q=2) for _ in range(2)]
    dut = LutGemm.from_core(TINY)
    assert not dut.keeps_pace(8, 1, 2)
    beats, span = sign_span(dut, problems, geo)
    per_group = dut.scaler_cycles(8, 2)
    print(f"scaler-bound: {beats} sign beats in {span} cycles ({per_group} per group)")
    assert span <= 6 * per_group + 2 * dut.lane_cycles(8, 1, 1, 2) + TINY.lutgemm.lookup_latency


@pytest.mark.parametrize("q", [1, 4])
def test_latency_bound(geo, q):
    """One-chunk commands (n = scalers) alone: the last output beat is valid at most
    ``latency`` cycles after the last sign beat (the manifest's figure)."""
    dut = LutGemm.from_core(TINY)
    n = geo.scalers
    p = random_problem(np.random.default_rng(70 + q), geo, n=n, ng=2, gs=2, q=q)
    res = simulate(dut, [p], geo)
    took = res["out_t"][-1] - res["signs"][-1]
    print(f"q = {q}: last sign beat to last output {took} cycles (latency {dut.latency})")
    assert took <= dut.latency
    if q == geo.max_q:
        assert took >= dut.latency - 1


@pytest.mark.slow
def test_u280_parameters_scaled_down():
    """dfx-u280's mu, keys (32-input lane words), latencies (add 2, mul 4, convert 3, build 3,
    lookup 2) and lanes : scalers ratio (2 : 1) at 8 lanes: exact, and one lane word per lane
    per cycle for gs = 8 and for the shortest groups that keep pace (gs = 5, 4, 3, 3 at
    q = 1..4)."""
    core = load_core("dfx-u280")
    ov = {"lanes": 8, "scalers": 4, "max_rows": 256}
    geo = Geometry.from_core(core, **ov)
    rng = np.random.default_rng(5)
    simulate(LutGemm.from_core(core, **ov), problem_mix(rng, geo, 6, max_n=20, max_ng=2,
                                                        max_gs=2), geo, in_gap=0.2, ready_p=0.6)
    problems = [random_problem(rng, geo, n=64, ng=2, gs=8, q=q) for q in (1, 2, 3, 4)]
    dut = LutGemm.from_core(core, **ov)
    assert sign_span(dut, problems, geo) == (1280, 1280)
    dut = LutGemm.from_core(core, **ov)
    shortest = [next(gs for gs in range(1, 9) if dut.keeps_pace(64, gs, q)) for q in (1, 2, 3, 4)]
    assert shortest == [5, 4, 3, 3]  # n = 8 row beats, 16 chunks, lookup_latency 2
    problems = [random_problem(rng, geo, n=64, ng=3, gs=gs, q=q)
                for gs, q in zip(shortest, (1, 2, 3, 4), strict=True)]
    beats = sum(dut.lane_cycles(64, 3, gs, q) for gs, q in zip(shortest, (1, 2, 3, 4),
                                                                   strict=True))
    assert sign_span(dut, problems, geo) == (beats, beats)
