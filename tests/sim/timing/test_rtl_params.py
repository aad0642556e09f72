"""The timing model against the RTL units (docs/timing.md, "Parameters" and "Units").

1. Every unit figure of the model (``derive``) is the RTL component's own property (``Mpu``,
   ``Vpu``, ``LutGemm`` ``.from_core``): a test fails when they differ.
2. The model's schedule rules against the units on Amaranth's simulator, cycle for cycle:
   the MPU's tile order, fill and row maximum (commands back to back, several block widths),
   its bias latency, and the VPU's latencies and sequencing rules (results in order, one scalar
   result register) on a mixed program run through the timing model itself. (The LUT-GEMM
   unit: tests/sim/timing/test_lut.py.)
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from amaranth.hdl import Value
from amaranth.sim import Simulator
from timing_helpers import micro, rtl_units

from dfx.isa.config import load_core
from dfx.rtl.mpu import Mpu
from dfx.rtl.tb.mpu import Geometry, check, expected_streams, random_problem
from dfx.rtl.vpu import VpuOp
from dfx.sim.timing import derive, simulate
from dfx.sim.timing.mpu import schedule

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")

TINY = load_core("tiny")


def variant(core, *, mpu=None, vpu=None):
    """``core`` with some MPU / VPU configuration fields replaced."""
    return dataclasses.replace(
        core, mpu=dataclasses.replace(core.mpu, **(mpu or {})),
        vpu=dataclasses.replace(core.vpu, **(vpu or {})))


# -- 1. the figures ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["dfx-u280", "tiny"])
def test_model_parameters_are_the_rtl_units_properties(name):
    core = load_core(name)
    p, u = derive(core), rtl_units(core)
    mpu, vpu, lut = u.mpu, u.vpu, u.lut
    # MPU: the zig-zag block is the RTL's interleave (whole output vectors covering the
    # accumulator: the model's old grouping, now the RTL's default too), fill the whole unit
    # (MFU, all of SFU_M, the output buffer; core.mpu.sfu_latency is only its GELU stage)
    assert p.zigzag == mpu.interleave
    per_vector = core.d // core.l
    assert mpu.interleave % per_vector == 0 and mpu.interleave - per_vector < mpu.add_latency
    assert p.accumulate == mpu.add_latency
    assert p.fill == mpu.latency == mpu.mfu_latency + mpu.sfu_latency + 1
    assert mpu.sfu_latency > core.mpu.sfu_latency
    assert p.max_tail == mpu.rowmax_latency - mpu.latency
    assert (p.mpu_bias, p.mpu_epilogue) == (mpu.bias_latency, mpu.epilogue_latency)
    # VPU: every element-wise latency, every reduction's and scalar op's result latency
    assert p.vpu_latency == {op.name.lower(): lat for op, lat in vpu.latencies.items()}
    results = [VpuOp.VACC, VpuOp.VACCSQ, VpuOp.VMAX, VpuOp.VARGMAX, VpuOp.SADD, VpuOp.SSUB,
               VpuOp.SMUL, VpuOp.SRECIP, VpuOp.SRSQRT]
    assert p.vpu_result == {op.name.lower(): vpu.result_latency(op) for op in results}
    assert p.vpu_empty == vpu.empty_result_latency
    # vacc/vaccsq include the multiplier-bank stage (a*1, a*a), the same for both
    assert p.vpu_result["vacc"] == p.vpu_result["vaccsq"] > (
        core.vpu.acc_tree_latency + core.vpu.acc_add_latency + core.vpu.acc_convert_latency)
    # LUT-GEMM: sizes, stage latencies and per-group cycle counts
    lp = p.lut
    assert (lp.lanes, lp.slice, lp.scalers, lp.max_q, lp.max_rows, lp.max_group) == (
        lut.lanes, lut.slice, lut.scalers, lut.max_q, lut.max_rows, lut.max_group)
    assert (lp.first_lookup, lp.handover, lp.result_latency) == (
        lut.first_lookup_latency, lut.handover_latency, lut.result_latency)
    for n in (1, lut.scalers, lut.lanes + 1, 3 * lut.lanes):
        for gs in (1, 3):
            for q in range(1, lut.max_q + 1):
                assert 5 * lp.lane_cycles(n, gs, q) == lut.lane_cycles(n, 5, gs, q)
                assert lp.scaler_cycles(n, q) == lut.scaler_cycles(n, q)


# -- 2. the MPU on the simulator ----------------------------------------------------------------

def run_mpu(dut: Mpu, problems, geo: Geometry, *, bias_from: int = 0) -> dict[str, list[int]]:
    """Commands, tiles (in the unit's tile order) and biases always valid (biases from cycle
    ``bias_from``), outputs always ready; the cycles in which tiles, biases, output vectors and
    row maxima moved. The numbers are checked against the golden model too."""
    cmds = [p.command() for p in problems]
    tiles = [t for p in problems for t in p.tiles(dut.interleave)]
    biases = [b for p in problems for b in p.biases()]
    want_out, want_max = expected_streams(problems, geo)
    seen: dict[str, list] = {"tiles": [], "bias": [], "out": [], "rowmax": []}
    got: dict[str, list] = {"out": [], "rowmax": []}

    def driver(stream, items, start=0):
        async def run(ctx):
            for _ in range(start):
                await ctx.tick()
            for item in items:
                ctx.set(Value.cast(stream.payload), item)
                ctx.set(stream.valid, 1)
                await ctx.tick().until(stream.ready)
            ctx.set(stream.valid, 0)
        return run

    async def watch(ctx):
        ctx.set(dut.out.ready, 1)
        ctx.set(dut.rowmax.ready, 1)
        t = 0
        async for _, _, tv, tr, bv, br, ov, op, mv, mp in ctx.tick().sample(
                dut.tiles.valid, dut.tiles.ready, dut.bias.valid, dut.bias.ready,
                dut.out.valid, Value.cast(dut.out.payload), dut.rowmax.valid,
                dut.rowmax.payload):
            for k, moved in (("tiles", tv and tr), ("bias", bv and br), ("out", ov),
                             ("rowmax", mv)):
                if moved:
                    seen[k].append(t)
            if ov:
                got["out"].append(op)
            if mv:
                got["rowmax"].append(mp)
            t += 1
            if len(seen["out"]) == len(want_out) and len(seen["rowmax"]) == len(want_max):
                break
            assert t < 50_000

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(driver(dut.cmd, cmds), background=True)
    sim.add_testbench(driver(dut.tiles, tiles), background=True)
    sim.add_testbench(driver(dut.bias, biases, bias_from), background=True)
    sim.add_testbench(watch)
    sim.run()
    check(got["out"], want_out, got["rowmax"], want_max, geo.d, problems)
    return seen


@pytest.mark.parametrize("mpu_cfg", [
    pytest.param({}, id="tiny"),
    pytest.param({"add_latency": 3}, id="add3", marks=pytest.mark.slow),
    pytest.param({"l": 2, "add_latency": 5}, id="l2-add5"),
])
def test_mpu_schedule_matches_the_rtl_cycle_for_cycle(mpu_cfg):
    """Commands back to back with every input always there: the first tile of each command
    comes right after the previous command's stream (the model's stream length, bubbles of
    short blocks included), output vector j is valid ``fill`` after the slot of its last tile
    in the last reduction step, the row maximum ``max_tail`` after the last vector."""
    core = variant(TINY, mpu=mpu_cfg)
    p = derive(core)
    dut = Mpu.from_core(core)
    assert p.zigzag == dut.interleave
    geo = Geometry.from_core(core)
    rng = np.random.default_rng(7)
    g = dut.interleave
    shapes = [(1, 1), (3, g), (2, g + 1), (4, 2 * g + 3), (1, g - 1), (5, 3), (2, 2 * g)]
    problems = [random_problem(rng, geo, kt=kt, nt=nt, bias=i % 2 == 0, gelu=i % 3 == 0,
                               rowmax=True) for i, (kt, nt) in enumerate(shapes)]
    seen = run_mpu(dut, problems, geo)
    t0 = seen["tiles"][0]
    outs, maxes = [], []
    for kt, nt in shapes:
        tiles = kt * nt
        stream, out_off, _ = schedule(p, kt, nt, 1, tiles, tiles)
        out = [t0 + p.fill + o for o in out_off]
        outs += out
        maxes.append(max(out) + p.max_tail)
        t0 += stream
    assert seen["tiles"][-1] == t0 - 1
    assert seen["out"] == outs
    assert seen["rowmax"] == maxes


def test_mpu_bias_latency_matches_the_rtl():
    """A bias that comes late holds the output: the vector is valid ``mpu_bias`` cycles after
    the bias of its last group has moved (the pipeline waits, then SFU_M and the buffer)."""
    core = TINY
    p = derive(core)
    dut = Mpu.from_core(core)
    geo = Geometry.from_core(core)
    nt = core.d // core.l  # one output vector
    prob = random_problem(np.random.default_rng(3), geo, kt=2, nt=nt, bias=True)
    late = 3 * dut.latency
    seen = run_mpu(dut, [prob], geo, bias_from=late)
    assert seen["bias"][0] >= late > seen["tiles"][-1] + dut.mfu_latency
    assert seen["out"] == [seen["bias"][-1] + p.mpu_bias]


# -- 3. the VPU: the timing model on a program against the unit on the simulator --------------

def vpu_program(d: int) -> list[tuple[str, int]]:
    """(op, n) of a mixed program: vector ops of different latencies back to back, reductions
    (one of nothing) and scalar ops in a row, vargmax over a partial vector."""
    return [("vadd", 3), ("vmov", 2), ("vmul", 2), ("vacc", 3), ("vaccsq", 2), ("smul", 0),
            ("vexp", 3), ("vmax", 2), ("vargmax", 2 * d + 3), ("srecip", 0), ("vacc", 0),
            ("vsubs", 2), ("sadd", 0), ("vgelu", 1), ("vmov", 1), ("vmuls", 2),
            ("vaccsq", 1), ("srsqrt", 0), ("vsub", 2), ("vadds", 1), ("ssub", 0),
            ("vmax", 1), ("vmul", 1)]


def vpu_asm(prog: list[tuple[str, int]]) -> str:
    """The program as ISA instructions with independent operands (sources never written,
    every destination its own), so only the VPU's own rules order them."""
    lines = []
    for k, (op, n) in enumerate(prog):
        y, sd = 100 + 10 * k, 10 + k
        if op in ("vadd", "vsub", "vmul"):
            lines.append(f"{op} y=v[r0+{y}], a=v[r0+0], b=v[r0+4], n={n}")
        elif op in ("vadds", "vsubs", "vmuls"):
            lines.append(f"{op} y=v[r0+{y}], a=v[r0+0], s=s1, n={n}")
        elif op in ("vexp", "vgelu", "vmov"):
            lines.append(f"{op} y=v[r0+{y}], a=v[r0+0], n={n}")
        elif op == "vargmax":
            lines.append(f"vargmax rd=r{5 + k % 20}, a=v[r0+0], n={n}")
        elif op in ("vacc", "vaccsq", "vmax"):
            lines.append(f"{op} sd=s{sd}, a=v[r0+0], n={n}")
        elif op in ("sadd", "ssub", "smul"):
            lines.append(f"{op} sd=s{sd}, sa=s1, sb=s2")
        else:
            lines.append(f"{op} sd=s{sd}, sa=s1")
    return "\n".join(lines + ["halt", ""])


@pytest.mark.parametrize("vpu_cfg", [
    pytest.param({}, id="tiny", marks=pytest.mark.slow),
    pytest.param({"add_latency": 4, "mul_latency": 3, "table_latency": 2, "scalar_latency": 2,
                  "acc_add_latency": 2}, id="latencies"),
])
def test_vpu_schedule_matches_the_rtl_cycle_for_cycle(vpu_cfg):
    """The timing model runs the program (operands independent: only the VPU orders it); the
    RTL VPU runs the same commands with every input always there. Aligned on the first input
    vector, each instruction's first input and its last result (vector, scalar or index) are
    in the same cycles."""
    from dfx.rtl.tb.vpu_harness import Phase, make_cmd, per_command, run_amaranth
    from dfx.rtl.vpu import Vpu

    core = variant(TINY, vpu=vpu_cfg)
    prog = vpu_program(core.d)
    res = simulate(micro(vpu_asm(prog), core), trace_tokens=1000)
    events = [e for e in res.trace[0] if e[0] == 1]  # the VPU thread, in program order
    assert [e[1] for e in events] == [op for op, _ in prog]

    dut = Vpu.from_core(core)
    rng = np.random.default_rng(5)
    cmds = [make_cmd(rng, VpuOp[op.upper()], n, core.d, dut.tables) for op, n in prog]
    (ph,) = run_amaranth(dut, [Phase(cmds)])
    rows = per_command(ph)
    t0 = rows[0][3][0]  # the first vector in: the model's cycle 0
    for (op, n), ev, (_, _, _, ac, oc) in zip(prog, events, rows, strict=True):
        _, _, start, end, _ = ev
        if ac:
            assert ac[0] - t0 == start, (op, n, "first input")
        assert oc[-1] - t0 == end, (op, n, "last result")
