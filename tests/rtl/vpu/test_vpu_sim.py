"""Vpu on Amaranth's simulator at the tiny core (d = 8), every op bit-exact against the golden
model: corner operands (signed zeros, subnormals, extreme normals, ties, overflow, inf, NaN
payloads, table edges, recip/rsqrt specials), random operands, latency and throughput, and a
random program under random back-pressure. A second, odd-latency configuration (d = 2, FP32
converter and adder tree combinational) stresses the output-slot rule.

Building Amaranth's simulator for the VPU takes most of the time, so each configuration runs
all its phases in one simulation (module-scoped fixtures) and the tests inspect the parts.
"""

import numpy as np
import pytest
from vpu_harness import (
    BINARY,
    F16_CORNERS,
    F32_CORNERS,
    SCALAR,
    VEC_OPS,
    Phase,
    make_cmd,
    mismatches,
    per_command,
    random_program,
    run_amaranth,
    table_edges16,
    vectors_with,
)

from dfx.isa.config import load_core
from dfx.isa.golden import fp as gfp
from dfx.rtl.vpu import Vpu, VpuOp

D = 8
# corner operands for pairwise tests, a subset of F16_CORNERS: every class once
PAIR_CORNERS = [0x0000, 0x8000, 0x0001, 0x83FF, 0x0400, 0x7BFF, 0xFBFF, 0x3C00, 0xBC01,
                0x1400, 0x6000, 0x7C00, 0xFC00, 0x7E01, 0xFD00, 0x3555]  # fmt: skip
TARGETED = {
    # (a, b) pairs with a known rounding story
    VpuOp.VADD: [
        (0x3C00, 0x1000),  # 1 + 2^-11: tie, to even (down) in FP16
        (0x3C01, 0x1000),  # tie, to even (up)
        (0x7BFF, 0x4C00),  # 65504 + 16 = 65520: rounds to inf
        (0x7BFF, 0x4BFF),  # 65504 + 15.99: stays finite
        (0x0001, 0x8002),  # subnormal result
        (0x3C00, 0xBC00),  # x + (-x) = +0
        (0x8000, 0x8000),  # -0 + -0 = -0
        (0x7C00, 0xFC00),  # inf - inf = NaN
    ],
    VpuOp.VSUB: [(0x3C00, 0x3C00), (0x8000, 0x0000), (0x0000, 0x0000), (0x7C00, 0x7C00),
                 (0x0400, 0x03FF), (0xFBFF, 0x4C00), (0x3C00, 0x9000), (0x0001, 0x0001)],
    VpuOp.VMUL: [(0x3C01, 0x3C01), (0x0001, 0x3800), (0x0001, 0x3C00), (0x7BFF, 0x4000),
                 (0x5BFF, 0x5BFF), (0x1400, 0x1400), (0x0000, 0x7C00), (0x8000, 0x3C00)],
}  # fmt: skip
SCALARS = [0x00000000, 0x80000000, 0x00000001, 0x3F800000, 0xBF800000, 0x33000000,
           0x33000001, 0x387FC000, 0x477FF000, 0x477FF001, 0x7F7FFFFF, 0x7F800000,
           0xFF800000, 0xFFC00001]  # fmt: skip
"""FP32 scalars for vadds/vsubs/vmuls: zeros, FP16 rounding ties and boundaries, specials."""


def _pairs(values):
    a = [x for x in values for _ in values]
    b = [y for _ in values for y in values]
    return a, b


def elementwise_program(rng, tables) -> list:
    prog = []
    for op in BINARY:
        a, b = _pairs(PAIR_CORNERS)
        ta, tb = zip(*TARGETED[op], strict=True)
        a, b = list(ta) + a, list(tb) + b
        n = -(-len(a) // D)
        pad = n * D - len(a)
        a += [0x3C00] * pad
        b += [0x3C00] * pad
        prog.append(make_cmd(rng, op, n, D, tables, a=a, b=b))
        prog.append(make_cmd(rng, op, 3, D, tables))  # random operands
    for op in (VpuOp.VADDS, VpuOp.VSUBS, VpuOp.VMULS):
        for s in SCALARS:
            a = vectors_with(rng, 1, D, list(rng.permutation(F16_CORNERS)[:D]))
            prog.append(make_cmd(rng, op, 1, D, tables, a=a, s=s))
        prog.append(make_cmd(rng, op, 3, D, tables))
    for op, fn in ((VpuOp.VEXP, "exp"), (VpuOp.VGELU, "gelu")):
        edges = table_edges16(tables[fn]) + F16_CORNERS
        n = -(-len(edges) // D) + 2
        prog.append(make_cmd(rng, op, n, D, tables, a=vectors_with(rng, n, D, edges)))
    corners = F16_CORNERS
    n = -(-len(corners) // D)
    prog.append(make_cmd(rng, VpuOp.VMOV, n, D, tables, a=vectors_with(rng, n, D, corners)))
    return prog


def reduction_program(rng, tables) -> list:
    prog = []
    normal = lambda n: vectors_with(rng, n, D, [], "normal")  # noqa: E731
    for op in (VpuOp.VACC, VpuOp.VACCSQ):
        for n in (0, 1, 2, 5):
            prog.append(make_cmd(rng, op, n, D, tables, a=normal(n)))
        big = np.full((2, D), 0x7BFF, np.uint16)  # FP32 sums of 65504s: finite, no overflow
        prog.append(make_cmd(rng, op, 2, D, tables, a=big))
        odd = normal(3)
        odd[1, 3] = 0x7C00  # +inf
        odd[2, 5] = 0xFC00  # -inf: inf - inf = NaN
        prog.append(make_cmd(rng, op, 3, D, tables, a=odd))
        sub = np.array([[0x0001, 0x8001, 0x03FF, 0x8000, 0x0000, 0x8000, 0x0002, 0x8003]] * 2)
        prog.append(make_cmd(rng, op, 2, D, tables, a=sub.astype(np.uint16)))
        prog.append(make_cmd(rng, op, 1, D, tables, a=np.full((1, D), 0x8000, np.uint16)))
    for op in (VpuOp.VMAX, VpuOp.VARGMAX):
        unit = D if op == VpuOp.VARGMAX else 1
        cases = [
            np.full((1, D), 0x8000),  # all -0
            np.array([[0x8000, 0x0000] * (D // 2)]),  # max(-0, +0) = +0, first +0
            np.full((2, D), 0xFC00),  # all -inf
            np.array([[0xFBFF] * D, [0xFBFF] * (D - 1) + [0x7E01]]),  # NaN last
            np.array([[0x3C00, 0x7D00] + [0x4000] * (D - 2), [0x7E00] * D]),  # first NaN
            np.array([[0x4000] * D, [0x4000] * D]),  # ties: the first index
            np.array([[0x0001] + [0x8001] * (D - 1)]),  # subnormals
        ]
        for a in cases:
            prog.append(make_cmd(rng, op, len(a) * unit, D, tables, a=a.astype(np.uint16)))
        for n in (1, 3, 9, D * 2 - 1):
            nv = -(-n // D) if op == VpuOp.VARGMAX else n
            a = normal(nv)
            if op == VpuOp.VARGMAX:
                a.reshape(-1)[n:] = 0x7C00  # beyond n: ignored, even when larger
            prog.append(make_cmd(rng, op, n, D, tables, a=a))
        prog.append(make_cmd(rng, op, 0, D, tables, a=normal(0)))
    return prog


def scalar_program(rng, tables) -> list:
    prog = []
    pairs = [
        (0x3F800000, 0x33800000), (0x3F800001, 0x33800000), (0x7F7FFFFF, 0x73000000),
        (0x7F800000, 0xFF800000), (0x00000001, 0x80000002), (0x3F800000, 0xBF800000),
        (0x80000000, 0x80000000), (0x40490FDB, 0xFFC12345), (0x007FFFFF, 0x00000001),
        (0x0DA24260, 0x7149F2CA), (0x00800000, 0x3F000000), (0x7F800000, 0x00000000),
    ]  # fmt: skip
    for op in (VpuOp.SADD, VpuOp.SSUB, VpuOp.SMUL):
        for s, t in pairs:
            prog.append(make_cmd(rng, op, 0, D, tables, s=s, t=t))
    for op in (VpuOp.SRECIP, VpuOp.SRSQRT):
        for s in F32_CORNERS:
            prog.append(make_cmd(rng, op, 0, D, tables, s=s))
        for s in gfp.f32_bits(rng.standard_normal(6).astype(np.float32) * 100):
            prog.append(make_cmd(rng, op, 0, D, tables, s=int(s)))
    return prog


@pytest.fixture(scope="module")
def tiny():
    dut = Vpu.from_core(load_core("tiny"))
    rng = np.random.default_rng(2024)
    phases = {
        "elementwise": Phase(elementwise_program(rng, dut.tables)),
        "reduction": Phase(reduction_program(rng, dut.tables)),
        "scalar": Phase(scalar_program(rng, dut.tables)),
        "random": Phase(random_program(rng, D, dut.tables, 40), p_valid=0.6, p_ready=0.5, seed=7),
    }
    run_amaranth(dut, list(phases.values()))
    return dut, phases


def _check(rows):
    bad = mismatches(rows, D)
    assert not bad, f"{len(bad)} mismatches:\n" + "\n".join(bad[:20])


@pytest.mark.parametrize("op", list(VEC_OPS), ids=lambda o: o.name.lower())
def test_elementwise_corners_and_random(tiny, op):
    _, phases = tiny
    rows = [r for r in per_command(phases["elementwise"]) if r[0].op == op]
    assert rows and sum(len(r[0].y) for r in rows) >= 3
    _check(rows)


@pytest.mark.parametrize(
    "op", [VpuOp.VACC, VpuOp.VACCSQ, VpuOp.VMAX, VpuOp.VARGMAX], ids=lambda o: o.name.lower()
)
def test_reductions(tiny, op):
    _, phases = tiny
    rows = [r for r in per_command(phases["reduction"]) if r[0].op == op]
    assert len(rows) >= 5
    _check(rows)


@pytest.mark.parametrize("op", list(SCALAR), ids=lambda o: o.name.lower())
def test_scalar_ops(tiny, op):
    _, phases = tiny
    rows = [r for r in per_command(phases["scalar"]) if r[0].op == op]
    assert len(rows) >= 10
    _check(rows)


def test_random_program_under_backpressure(tiny):
    _, phases = tiny
    ph = phases["random"]
    assert len({c.op for c in ph.prog}) >= 12
    _check(per_command(ph))


def test_latency_and_throughput(tiny):
    """Without back-pressure: element-wise results exactly ``latencies[op]`` cycles after their
    vector was taken, one vector per cycle; accumulate vectors ``acc_interval`` apart;
    reductions and scalar ops report after :meth:`Vpu.result_latency`."""
    dut, phases = tiny
    seen = set()
    for name in ("elementwise", "reduction", "scalar"):
        for c, _, _, ac, oc in per_command(phases[name]):
            if c.op in VEC_OPS:
                assert [o - a for a, o in zip(ac, oc, strict=True)] == [dut.latencies[c.op]] * len(
                    ac
                ), c.op
                assert all(b - a == 1 for a, b in zip(ac, ac[1:], strict=False)), c.op
            elif c.op in (VpuOp.VACC, VpuOp.VACCSQ) and len(ac) > 1:
                assert all(b - a == dut.acc_interval for a, b in zip(ac, ac[1:], strict=False)), (
                    c.op
                )
            if c.result is not None and len(ac) and c.n:
                assert oc[0] - ac[-1] == dut.result_latency(c.op, len(ac)), c.op
            seen.add(c.op)
    assert seen >= set(VEC_OPS) | {VpuOp.VACC, VpuOp.VMAX, VpuOp.VARGMAX}


# ------------------------------------------------------------------ odd-latency variant


@pytest.fixture(scope="module")
def odd():
    """d = 2 with latencies that all differ: add 3, mul 2 (cvt 0), table 1, bypass 2,
    scalar 1 (full-rate accumulation), combinational tree adders."""
    dut = Vpu(
        2,
        add_latency=3,
        mul_latency=2,
        table_latency=1,
        bypass_latency=2,
        scalar_latency=1,
        cvt_latency=0,
        tree_add_latency=0,
        tables={"exp": {"lo": -8.0, "hi": 8.0, "points": 64}},
    )
    rng = np.random.default_rng(99)
    phases = [
        Phase(random_program(rng, 2, dut.tables, 60, max_n=3)),
        Phase(random_program(rng, 2, dut.tables, 60, max_n=3), p_valid=0.7, p_ready=0.7, seed=1),
    ]
    run_amaranth(dut, phases)
    return dut, phases


def test_odd_latencies_program(odd):
    dut, phases = odd
    assert dut.latencies[VpuOp.VADD] == 3 and dut.latencies[VpuOp.VEXP] == 1
    assert dut.acc_interval == 1
    for ph in phases:
        bad = mismatches(per_command(ph), 2)
        assert not bad, f"{len(bad)} mismatches:\n" + "\n".join(bad[:20])


def test_odd_latencies_full_rate_accumulate(odd):
    _, phases = odd
    acc = [r for r in per_command(phases[0]) if r[0].op in (VpuOp.VACC, VpuOp.VACCSQ)]
    spaced = [r[3] for r in acc if len(r[3]) > 1]
    assert spaced, "no multi-vector accumulation in the program"
    for ac in spaced:
        assert all(b - a == 1 for a, b in zip(ac, ac[1:], strict=False))
