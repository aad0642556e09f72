"""Vpu on Amaranth's simulator at the tiny core (d = 8), every op bit-exact against the golden
model: corner operands (signed zeros, subnormals, extreme normals, ties, overflow, inf, NaN
payloads, table edges, recip/rsqrt specials), random operands, latency and throughput, and a
random program under random back-pressure. A second, odd-latency configuration (d = 2, FP32
converter and the accumulate tree combinational, a 3-limb accumulator) stresses the
output-slot rule. The accumulate path alone: ``test_vpu_accumulate.py``.

Building Amaranth's simulator for the VPU takes most of the time, so each configuration runs
all its phases in one simulation (module-scoped fixtures) and the tests inspect the parts.
"""

import numpy as np
import pytest

from dfx.isa.config import load_core
from dfx.rtl.tb.vpu_harness import (
    SCALAR,
    VEC_OPS,
    Phase,
    elementwise_program,
    mismatches,
    per_command,
    random_program,
    reduction_program,
    run_amaranth,
    scalar_program,
)
from dfx.rtl.vpu import Vpu, VpuOp

D = 8


@pytest.fixture(scope="module")
def tiny():
    dut = Vpu.from_core(load_core("tiny"))
    rng = np.random.default_rng(2024)
    phases = {
        "elementwise": Phase(elementwise_program(rng, dut.tables, D)),
        "reduction": Phase(reduction_program(rng, dut.tables, D)),
        "scalar": Phase(scalar_program(rng, dut.tables, D)),
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
    vector was taken, one vector per cycle; accumulate vectors one per cycle too
    (``acc_interval`` = 1); reductions and scalar ops report after :meth:`Vpu.result_latency`
    (vacc/vaccsq: the same whatever the vector count)."""
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
                assert dut.acc_interval == 1
                assert all(b - a == 1 for a, b in zip(ac, ac[1:], strict=False)), c.op
            if c.result is not None and len(ac) and c.n:
                assert oc[0] - ac[-1] == dut.result_latency(c.op, len(ac)), c.op
            seen.add(c.op)
    assert seen >= set(VEC_OPS) | {VpuOp.VACC, VpuOp.VMAX, VpuOp.VARGMAX}


# ------------------------------------------------------------------ odd-latency variant


@pytest.fixture(scope="module")
def odd():
    """d = 2 with latencies that all differ: add 3, mul 2 (cvt 0), table 1, bypass 2,
    scalar 1, accumulate tree 0 (combinational), 3 accumulator limbs, convert 1."""
    dut = Vpu(
        2,
        add_latency=3,
        mul_latency=2,
        table_latency=1,
        bypass_latency=2,
        scalar_latency=1,
        cvt_latency=0,
        acc_tree_latency=0,
        acc_add_latency=3,
        acc_convert_latency=1,
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
