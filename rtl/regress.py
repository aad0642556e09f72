"""The cocotb regression on Verilator (``dfx regress``; also run by the test suite).

A :class:`Bench` names a unit of :mod:`dfx.rtl.generate`, the cocotb testbench module that
drives it and the environment it needs. :func:`run_bench` generates the unit's Verilog from a
core configuration, builds it with Verilator (ccache when present) in its own build directory
and runs the testbench; the result records every test's verdict and simulated time, so the
summary can show simulated cycles per second.

The ``core`` bench (:func:`run_core_bench`) is the whole core: directed, fault and random
programs (:func:`core_suite`), each run on the core testbench's Verilator model
(:func:`dfx.rtl.tb.core_build.core_model`, built once per RTL change) and on the functional
simulator, the final state compared bit for bit (:mod:`dfx.rtl.tb.core_check`); one "test" per
program, some of them again under random memory stalls. The ``ring`` bench
(:func:`run_ring_bench`) runs the compiler's all-gathers on four cores in a ring
(:mod:`dfx.rtl.tb.ring_bench`) on the board's and on stressed links.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dfx.isa.config import CoreConfig
from dfx.isa.errors import DfxError
from dfx.rtl.generate import UNITS, convert

CLOCK_NS = 10.0  # every testbench's clock period (rtl/tb/*)


@dataclass(frozen=True)
class Bench:
    """One regression entry: unit ``unit`` driven by testbench module ``tb``."""

    name: str
    unit: str
    tb: str
    env: dict[str, str] = field(default_factory=dict)


BENCHES: tuple[Bench, ...] = (
    Bench("fp16_mul", "fp16_mul", "dfx.rtl.tb.arith", {"DFX_UNIT": "fp16_mul"}),
    Bench("fp32_add", "fp32_add", "dfx.rtl.tb.arith", {"DFX_UNIT": "fp32_add"}),
    Bench("fp32_mul", "fp32_mul", "dfx.rtl.tb.arith", {"DFX_UNIT": "fp32_mul"}),
    Bench("fp32_to_fp16", "fp32_to_fp16", "dfx.rtl.tb.arith", {"DFX_UNIT": "fp32_to_fp16"}),
    Bench("mpu", "mpu", "dfx.rtl.tb.mpu", {"MPU_SEED": "7"}),
    Bench("vpu", "vpu", "dfx.rtl.tb.vpu"),
    Bench("lutgemm", "lutgemm", "dfx.rtl.tb.lutgemm", {"LUTGEMM_SEED": "0"}),
    Bench("router", "router_ring", "dfx.rtl.tb.router", {"ROUTER_SEED": "3"}),
)
BENCH_NAMES = tuple(b.name for b in BENCHES)
#: The whole-core bench (:func:`run_core_bench`), after the unit benches.
CORE_BENCH = "core"
#: The ring bench (:func:`run_ring_bench`: all-gathers on 4 RTL cards), last.
RING_BENCH = "ring"
ALL_BENCHES = (*BENCH_NAMES, CORE_BENCH, RING_BENCH)
#: Stall setting (of 16) of the memory models for the programs run twice.
CORE_STALL = 6
#: Message of a core program that fails as a known issue says (a passing test).
KNOWN_PREFIX = "known issue "


@dataclass
class TestResult:
    name: str
    passed: bool
    sim_ns: float
    real_s: float
    message: str = ""


@dataclass
class BenchResult:
    bench: str
    tests: list[TestResult]
    wall_s: float
    build_dir: Path
    error: str = ""

    @property
    def passed(self) -> bool:
        return not self.error and bool(self.tests) and all(t.passed for t in self.tests)

    @property
    def cycles(self) -> int:
        return int(sum(t.sim_ns for t in self.tests) / CLOCK_NS)

    @property
    def cycles_per_s(self) -> float:
        """Simulated cycles per second of simulation (build time excluded)."""
        real = sum(t.real_s for t in self.tests)
        return self.cycles / real if real > 0 else 0.0


def bench(name: str) -> Bench:
    for b in BENCHES:
        if b.name == name:
            return b
    raise DfxError(f"unknown bench {name!r} (benches: {', '.join(ALL_BENCHES)})")


def _results(xml: Path) -> list[TestResult]:
    out = []
    for case in ET.parse(xml).getroot().iter("testcase"):
        fail = case.find("failure")
        if fail is None:
            fail = case.find("error")
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        out.append(TestResult(case.get("name", "?"), fail is None,
                              float(props.get("sim_time_duration") or 0.0),
                              float(case.get("time", 0.0)),
                              "" if fail is None else (fail.get("message") or "failed")))
    return out


def run_bench(b: Bench, core: CoreConfig, build_root: Path, *, waves: bool = False,
              timeout_s: float = 600.0) -> BenchResult:
    """Generate, build and simulate one bench; never raises for a failing test."""
    from dfx.rtl.toolchain.verilator import cached_source, run_cocotb

    t0 = time.perf_counter()
    build = Path(build_root) / f"{b.name}-{core.name}"
    unit = next(u for u in UNITS if u.name == b.unit)
    comp = unit.build(core)
    top = f"dfx_{b.unit}"
    src = cached_source(convert(comp, top), f"{top}.v")
    env = {**b.env, "DFX_CORE": core.name, "DFX_LATENCY": str(getattr(comp, "latency", 0))}
    if b.unit == "vpu":  # the VPU testbench takes the unit's geometry and tables as JSON
        from dfx.rtl.tb.vpu_harness import config_json

        env["VPU_CONFIG"] = config_json(comp)
    error = ""
    try:
        xml = run_cocotb([src], top, b.tb, build, waves=waves, timeout_s=timeout_s,
                         extra_env=env)
    except AssertionError as e:  # a test failed: the results file has the details
        xml, error = build / "results.xml", ("" if (build / "results.xml").exists() else str(e))
    except (RuntimeError, TimeoutError) as e:
        return BenchResult(b.name, [], time.perf_counter() - t0, build, f"{type(e).__name__}: "
                           f"{' '.join(str(e).split())[:200]}")
    tests = _results(xml) if xml.exists() else []
    return BenchResult(b.name, tests, time.perf_counter() - t0, build, error)


def core_suite(core: CoreConfig, randoms: int, seed: int = 0) -> list[tuple[Any, tuple[int, ...]]]:
    """The core bench's programs and the stall settings each runs with: every directed program
    (also under stalls), every fault program (every other one also under stalls) and
    ``randoms`` random programs from ``seed`` on (every third also under stalls)."""
    from dfx.rtl.tb.core_directed import directed_programs
    from dfx.rtl.tb.core_faults import fault_programs
    from dfx.rtl.tb.core_random import random_program

    both = (0, CORE_STALL)
    out: list[tuple[Any, tuple[int, ...]]] = [(p, both) for p in directed_programs(core, seed)]
    out += [(p, both if i % 2 else (0,)) for i, p in enumerate(fault_programs(core, seed))]
    out += [(random_program(core, seed + i), both if i % 3 == 0 else (0,))
            for i in range(randoms)]
    return out


@dataclass
class CoreTotals:
    """The core bench's sums: programs, instructions executed (functional simulator count),
    core cycles and simulated cycles (every run), wall time of the RTL runs (``run_s``: of
    which simulating from ap_start to done, without the simulator's start-up)."""

    programs: int = 0
    runs: int = 0
    instructions: int = 0
    cycles: int = 0
    sim_cycles: int = 0
    wall_s: float = 0.0
    run_s: float = 0.0

    def line(self) -> str:
        rate = self.sim_cycles / self.wall_s if self.wall_s > 0 else 0.0
        sim = self.sim_cycles / self.run_s if self.run_s > 0 else 0.0
        return (f"core: {self.programs} programs ({self.runs} runs), {self.instructions:,} "
                f"instructions, {self.cycles:,} core cycles, {self.wall_s:.1f} s, "
                f"{rate:,.0f} cycles/s ({self.run_s:.1f} s simulating: {sim:,.0f} cycles/s)")


def run_core_bench(core: CoreConfig, build_root: Path, *, randoms: int = 40, seed: int = 0,
                   jobs: int = 1, keep: bool = False, progress: Callable[[str], None] | None = None,
                   only: Callable[[Any], bool] | None = None) -> tuple[BenchResult, CoreTotals]:
    """The ``core`` bench (module doc): never raises for a failing program; the failing ones'
    job directories stay under ``build_root/core-<core>`` (``keep``: all of them)."""
    from dfx.rtl.tb.core_build import core_model
    from dfx.rtl.tb.core_check import BATCH, Verdict, check_batch

    t0 = time.perf_counter()
    build = Path(build_root) / f"{CORE_BENCH}-{core.name}"
    totals = CoreTotals()
    try:
        model = core_model(core, progress=progress)
    except (RuntimeError, TimeoutError, OSError) as e:
        return (BenchResult(CORE_BENCH, [], time.perf_counter() - t0, build,
                            f"{type(e).__name__}: {' '.join(str(e).split())[:300]}"), totals)
    suite = [(p, s) for p, s in core_suite(core, randoms, seed) if only is None or only(p)]
    # programs in batches, one simulator process each (its start-up paid once)
    per = max(1, min(BATCH, -(-len(suite) // max(1, jobs))))
    chunks = [suite[k:k + per] for k in range(0, len(suite), per)]

    def one(k: int) -> list[Verdict]:
        vs = check_batch(model, core, chunks[k], build / f"batch{k}", keep=keep)
        for v in vs:
            if progress is not None:
                progress(f"{v.name}: {'PASS' if v.passed else 'FAIL'} "
                         f"({', '.join(f'{c:,}' for c in v.cycles)} cycles)")
        return vs

    if jobs <= 1:
        verdicts = [v for k in range(len(chunks)) for v in one(k)]
    else:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            verdicts = [v for vs in pool.map(one, range(len(chunks))) for v in vs]
    from dfx.rtl.tb.core_programs import KNOWN_ISSUES

    known = {p.name: p.notes["known"] for p, _ in suite if "known" in p.notes}
    tests = []
    for v in verdicts:
        totals.programs += 1
        totals.runs += len(v.cycles)
        totals.instructions += v.instructions * max(1, len(v.cycles))
        totals.cycles += sum(v.cycles)
        totals.sim_cycles += v.sim_cycles
        totals.wall_s += v.wall_s
        totals.run_s += v.run_s
        msg = "; ".join(v.mismatches[:6])
        if v.workdir is not None and not v.passed:
            msg += f" (job directory {v.workdir})"
        passed = v.passed
        issue = known.get(v.name)
        if issue is not None:  # a known deviation: expected to fail until it is fixed
            passed = not v.passed
            msg = (f"{KNOWN_PREFIX}{issue}: {KNOWN_ISSUES[issue]}" if passed else
                   f"passes now: remove {issue!r} from core_programs.KNOWN_ISSUES")
        tests.append(TestResult(v.name, passed, v.sim_cycles * CLOCK_NS, v.wall_s, msg))
    return BenchResult(CORE_BENCH, tests, time.perf_counter() - t0, build), totals


def run_ring_bench(core: CoreConfig, build_root: Path, *, seed: int = 0,
                   progress: Callable[[str], None] | None = None) -> BenchResult:
    """The ``ring`` bench (module doc): every case of :func:`dfx.rtl.tb.ring_bench.ring_cases`
    on the board's links and on stressed ones; never raises for a failing case (an RTL error
    names its kept job directory)."""
    from dfx.rtl.tb.core_build import ring_model
    from dfx.rtl.tb.ring_bench import RING_CARDS, ring_cases, run_ring_case

    t0 = time.perf_counter()
    build = Path(build_root) / f"{RING_BENCH}-{core.name}"
    try:
        ring_model(core, RING_CARDS, progress=progress)
    except (RuntimeError, TimeoutError, OSError) as e:
        return BenchResult(RING_BENCH, [], time.perf_counter() - t0, build,
                           f"{type(e).__name__}: {' '.join(str(e).split())[:300]}")
    tests = []
    for case in ring_cases(core, RING_CARDS):
        for stressed in (False, True):
            v = run_ring_case(case, core, stressed=stressed, seed=seed)
            if progress is not None:
                progress(f"{v.name}: {'PASS' if v.passed else 'FAIL'} "
                         f"({', '.join(f'{c:,}' for c in v.cycles)} cycles)")
            tests.append(TestResult(v.name, v.passed, v.sim_cycles * CLOCK_NS, v.wall_s,
                                    v.message))
    return BenchResult(RING_BENCH, tests, time.perf_counter() - t0, build)


def run_all(names: Iterable[str] | None, core: CoreConfig, build_root: Path, *, jobs: int = 1,
            waves: bool = False, done: Callable[[BenchResult], None] | None = None,
            core_options: dict[str, Any] | None = None,
            totals: list[CoreTotals] | None = None) -> list[BenchResult]:
    """Run benches (all by default, the core bench last), ``jobs`` builds (or core programs)
    at a time, in a stable order. ``core_options`` go to :func:`run_core_bench`; its totals
    are appended to ``totals``."""
    wanted = list(names) if names else list(ALL_BENCHES)
    chosen = [bench(n) for n in wanted if n not in (CORE_BENCH, RING_BENCH)]

    def one(b: Bench) -> BenchResult:
        r = run_bench(b, core, build_root, waves=waves)
        if done:
            done(r)
        return r

    if jobs <= 1:
        results = [one(b) for b in chosen]
    else:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            results = list(pool.map(one, chosen))
    if CORE_BENCH in wanted:
        r, t = run_core_bench(core, build_root, jobs=jobs, **(core_options or {}))
        if done:
            done(r)
        if totals is not None:
            totals.append(t)
        results.append(r)
    if RING_BENCH in wanted:
        r = run_ring_bench(core, build_root)
        if done:
            done(r)
        results.append(r)
    return results


def summary_table(results: list[BenchResult]) -> str:
    """pass/fail, tests, simulated cycles, wall time and simulated cycles per second."""
    rows = [("bench", "result", "tests", "sim cycles", "wall s", "sim cycles/s")]
    for r in results:
        ok = sum(t.passed for t in r.tests)
        verdict = "PASS" if r.passed else "FAIL"
        rate = r.cycles_per_s
        rows.append((r.bench, verdict, f"{ok}/{len(r.tests)}", f"{r.cycles:,}",
                     f"{r.wall_s:.1f}", f"{rate:,.0f}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                       for i, (c, w) in enumerate(zip(row, widths, strict=True)))
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for r in results:
        for t in r.tests:
            if t.passed and t.message.startswith(KNOWN_PREFIX):
                lines.append(f"KNOWN {r.bench}::{t.name}: {' '.join(t.message.split())[:300]}")
            if not t.passed:
                lines.append(f"FAILED {r.bench}::{t.name}: {' '.join(t.message.split())[:300]}")
        if r.error:
            lines.append(f"ERROR {r.bench}: {r.error}")
    return "\n".join(lines)
