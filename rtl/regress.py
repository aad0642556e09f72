"""The cocotb regression on Verilator (``dfx regress``; also run by the test suite).

A :class:`Bench` names a unit of :mod:`dfx.rtl.generate`, the cocotb testbench module that
drives it and the environment it needs. :func:`run_bench` generates the unit's Verilog from a
core configuration, builds it with Verilator (ccache when present) in its own build directory
and runs the testbench; the result records every test's verdict and simulated time, so the
summary can show simulated cycles per second.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

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
)
BENCH_NAMES = tuple(b.name for b in BENCHES)


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
    raise DfxError(f"unknown bench {name!r} (benches: {', '.join(BENCH_NAMES)})")


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


def run_all(names: Iterable[str] | None, core: CoreConfig, build_root: Path, *, jobs: int = 1,
            waves: bool = False, done: Callable[[BenchResult], None] | None = None
            ) -> list[BenchResult]:
    """Run benches (all by default), ``jobs`` builds at a time, in a stable order."""
    chosen = [bench(n) for n in names] if names else list(BENCHES)

    def one(b: Bench) -> BenchResult:
        r = run_bench(b, core, build_root, waves=waves)
        if done:
            done(r)
        return r

    if jobs <= 1:
        return [one(b) for b in chosen]
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(one, chosen))


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
            if not t.passed:
                lines.append(f"FAILED {r.bench}::{t.name}: {' '.join(t.message.split())[:300]}")
        if r.error:
            lines.append(f"ERROR {r.bench}: {r.error}")
    return "\n".join(lines)
