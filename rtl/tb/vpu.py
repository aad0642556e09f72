"""cocotb testbench of the Verilog ``Vpu`` (run by ``test_vpu_cocotb.py`` under Verilator).

The configuration arrives in the environment variable ``VPU_CONFIG`` (JSON: ``d``, the table
specs, the element-wise latencies and the vacc/vaccsq result latency). Each scenario coroutine
builds a program with the shared harness (``vpu_harness``: the golden expectation of every
output), and runs it through :class:`TB` under one back-pressure mode; ``cocotb.parametrize``
crosses scenarios and modes.
Every transferred output word is compared bit for bit.
"""

from __future__ import annotations

import json
import os

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

from dfx.isa.golden import tables as gtab
from dfx.rtl.tb.vpu_harness import (
    ALL_OPS,
    VEC_OPS,
    Cmd,
    elementwise_program,
    make_cmd,
    random_program,
    reduction_program,
    scalar_program,
    streams,
    unpack16,
)
from dfx.rtl.vpu import VpuOp

CONFIG = json.loads(os.environ.get("VPU_CONFIG", "{}"))
PRESSURE = {
    "none": (1.0, 1.0),
    "input_gaps": (0.5, 1.0),
    "output_stalls": (1.0, 0.3),
    "both": (0.6, 0.5),
}
TIMEOUT_MS = 2000  # simulated time per test (10 ns clock): 200k cycles


class TB:
    """Clock, reset, and a cycle engine that drives the three input streams and takes from the
    two output streams with random valid gaps / ready stalls."""

    def __init__(self, dut, seed: int):
        self.dut = dut
        self.d = int(CONFIG["d"])
        self.tables = {fn: gtab.table(fn, *spec) for fn, spec in CONFIG["tables"].items()}
        self.latencies = {VpuOp[k]: v for k, v in CONFIG["latencies"].items()}
        self.acc_latency = CONFIG.get("acc_latency")
        self.rng = np.random.default_rng(seed)
        self.cycle = 0

    async def start(self) -> None:
        dut = self.dut
        for port in (dut.cmd__valid, dut.a__valid, dut.b__valid, dut.y__ready, dut.result__ready):
            port.value = 0
        for port in (dut.cmd__payload, dut.a__payload, dut.b__payload):
            port.value = 0
        dut.rst.value = 1
        cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
        for _ in range(2):
            await RisingEdge(dut.clk)
        await FallingEdge(dut.clk)
        dut.rst.value = 0

    async def run(self, prog: list[Cmd], pressure: str, max_cycles: int = 150_000) -> dict:
        """Run ``prog``; return transfers (``y``, ``results``) and their cycles. Between cycles
        the engine waits for the falling edge, drives, then samples in ReadOnly (a transfer
        happens at the next rising edge when valid and ready are both high)."""
        dut, rng = self.dut, self.rng
        p_valid, p_ready = PRESSURE[pressure]
        cmds, a, b, y_exp, r_exp = streams(prog)
        ic = ia = ib = 0
        out = {"y": [], "results": [], "a_cycles": [], "y_cycles": [], "r_cycles": []}
        start = self.cycle
        while len(out["y"]) < len(y_exp) or len(out["results"]) < len(r_exp) or ic < len(cmds):
            self.cycle += 1
            assert self.cycle - start < max_cycles, (
                f"stuck: {ic}/{len(cmds)} commands, {ia}/{len(a)} a, {ib}/{len(b)} b, "
                f"{len(out['y'])}/{len(y_exp)} y, {len(out['results'])}/{len(r_exp)} results"
            )
            cv = ic < len(cmds) and rng.random() < p_valid
            av = ia < len(a) and rng.random() < p_valid
            bv = ib < len(b) and rng.random() < p_valid
            dut.cmd__valid.value = int(cv)
            dut.a__valid.value = int(av)
            dut.b__valid.value = int(bv)
            if cv:
                dut.cmd__payload.value = cmds[ic]
            if av:
                dut.a__payload.value = a[ia]
            if bv:
                dut.b__payload.value = b[ib]
            yr = rng.random() < p_ready
            rr = rng.random() < p_ready
            dut.y__ready.value = int(yr)
            dut.result__ready.value = int(rr)
            await ReadOnly()
            if cv and dut.cmd__ready.value:
                ic += 1
            if av and dut.a__ready.value:
                ia += 1
                out["a_cycles"].append(self.cycle)
            if bv and dut.b__ready.value:
                ib += 1
            if yr and dut.y__valid.value:
                out["y"].append(dut.y__payload.value.to_unsigned())
                out["y_cycles"].append(self.cycle)
            if rr and dut.result__valid.value:
                out["results"].append(dut.result__payload.value.to_unsigned())
                out["r_cycles"].append(self.cycle)
            await FallingEdge(dut.clk)
        # drained: no more output may appear, every input must have been consumed
        dut.cmd__valid.value = dut.a__valid.value = dut.b__valid.value = 0
        dut.y__ready.value = dut.result__ready.value = 1
        for _ in range(16):
            await ReadOnly()
            assert not dut.y__valid.value and not dut.result__valid.value, "extra output"
            await FallingEdge(dut.clk)
        self.cycle += 16
        assert (ia, ib) == (len(a), len(b)), f"consumed {ia}/{len(a)} a, {ib}/{len(b)} b"
        return out

    def check(self, prog: list[Cmd], out: dict, pressure: str) -> None:
        """Every output bit against the golden expectation; without back-pressure also the
        element-wise latencies, the one-vector-per-cycle throughput (vacc/vaccsq included) and
        the vacc/vaccsq result latency."""
        _, _, _, y_exp, r_exp = streams(prog)
        assert len(out["y"]) == len(y_exp) and len(out["results"]) == len(r_exp)
        bad = []
        vec_cmds = [(c, v) for c in prog for v in range(len(c.y))]
        for (c, v), g, e in zip(vec_cmds, out["y"], y_exp, strict=True):
            if g != e:
                gv, ev = unpack16(g, self.d), unpack16(e, self.d)
                lanes = [i for i in range(self.d) if gv[i] != ev[i]]
                i = lanes[0]
                other = f"b={c.b[v][i]:#06x}" if c.b is not None else f"s={c.s:#010x}"
                bad.append(
                    f"{c.op.name} vector {v}: {len(lanes)} lanes wrong, lane {i}: "
                    f"a={c.a[v][i]:#06x} {other} got {gv[i]:#06x} want {ev[i]:#06x}"
                )
        res_cmds = [c for c in prog if c.result is not None]
        for c, g, e in zip(res_cmds, out["results"], r_exp, strict=True):
            if g != e:
                bad.append(f"{c.op.name} n={c.n} s={c.s:#010x} t={c.t:#010x}: {g:#x} != {e:#x}")
        assert not bad, f"{len(bad)} mismatches:\n" + "\n".join(bad[:25])
        if pressure == "none":
            ia = iy = ir = 0
            for c in prog:
                ac = out["a_cycles"][ia : ia + len(c.a)]
                ia += len(c.a)
                if c.result is not None:
                    rc = out["r_cycles"][ir]
                    ir += 1
                    if c.op in (VpuOp.VACC, VpuOp.VACCSQ) and len(ac):
                        assert all(q - p == 1 for p, q in zip(ac, ac[1:], strict=False)), c.op
                        if self.acc_latency is not None:
                            assert rc - ac[-1] == self.acc_latency, (c.op, rc - ac[-1])
                if c.op in VEC_OPS:
                    yc = out["y_cycles"][iy : iy + len(c.y)]
                    iy += len(c.y)
                    lat = self.latencies[c.op]
                    assert [y - x for x, y in zip(ac, yc, strict=True)] == [lat] * len(ac), c.op
                    assert all(q - p == 1 for p, q in zip(ac, ac[1:], strict=False)), c.op
        self.dut._log.info(
            "checked %d commands: %d vectors, %d results", len(prog), len(y_exp), len(r_exp)
        )


# ------------------------------------------------------------------------------ scenarios


def sc_elementwise(tb: TB) -> list[Cmd]:
    """Every element-wise op: all FP16 corner pairs, corners x all FP32 corner scalars, table
    edges, random vectors."""
    return elementwise_program(tb.rng, tb.tables, tb.d, full=True)


def sc_reductions(tb: TB) -> list[Cmd]:
    """The reduction corners, longer random reductions, and accumulates back to back (each
    streams one vector per cycle)."""
    return reduction_program(tb.rng, tb.tables, tb.d) + [
        make_cmd(tb.rng, op, n, tb.d, tb.tables)
        for op in (VpuOp.VACC, VpuOp.VACCSQ, VpuOp.VMAX)
        for n in (4, 7, 16)
    ] + [
        make_cmd(tb.rng, (VpuOp.VACC, VpuOp.VACCSQ)[i % 2], int(tb.rng.integers(1, 9)), tb.d,
                 tb.tables)
        for i in range(12)
    ]


def sc_scalar(tb: TB) -> list[Cmd]:
    return scalar_program(tb.rng, tb.tables, tb.d)


def sc_random(tb: TB) -> list[Cmd]:
    """Random commands of every kind back to back (mixed latencies, n = 0 included)."""
    return random_program(tb.rng, tb.d, tb.tables, 200, ALL_OPS, max_n=6)


def sc_switching(tb: TB) -> list[Cmd]:
    """Short element-wise commands alternating long and short latencies (the output-slot rule)
    with reductions interleaved."""
    ops = list(VEC_OPS)
    prog = []
    for _ in range(120):
        op = ops[tb.rng.integers(len(ops))]
        prog.append(make_cmd(tb.rng, op, int(tb.rng.integers(1, 3)), tb.d, tb.tables))
        if tb.rng.random() < 0.2:
            red = (VpuOp.VACC, VpuOp.VMAX, VpuOp.VARGMAX, VpuOp.SRECIP)[tb.rng.integers(4)]
            prog.append(make_cmd(tb.rng, red, int(tb.rng.integers(1, 3)), tb.d, tb.tables))
    return prog


SCENARIOS = {
    "elementwise": sc_elementwise,
    "reductions": sc_reductions,
    "scalar": sc_scalar,
    "random": sc_random,
    "switching": sc_switching,
}


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
@cocotb.parametrize(scenario=list(SCENARIOS), pressure=list(PRESSURE))
async def vpu_program(dut, scenario: str, pressure: str):
    """One scenario under one back-pressure mode, every output compared with the golden model."""
    seed = (list(SCENARIOS).index(scenario) * 7919 + list(PRESSURE).index(pressure)) & 0xFFFF
    tb = TB(dut, seed)
    await tb.start()
    prog = SCENARIOS[scenario](tb)
    out = await tb.run(prog, pressure)
    tb.check(prog, out, pressure)
