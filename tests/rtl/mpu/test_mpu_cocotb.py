"""The MPU's Verilog under Verilator + cocotb (``dfx.rtl.tb.mpu``), and lint of the full-size unit.

* tiny core (d = 8, l = 4) and a variant (interleave 3, other latencies, a 2-deep command
  queue), each built in its own directory: every scenario of ``dfx.rtl.tb.mpu`` (operand families x
  options x idle/back-pressure, shapes around the interleave width, a 1000+ tile stream at one
  tile per cycle) with every output bit compared to the golden ``matvec``;
* the flat Amaranth conversion of the tiny unit lints clean (slow);
* dfx-u280 (d = 64, l = 16): Verilog generation and ``verilator --lint-only`` with the
  project's waivers, timed (slow).
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest

from dfx.isa.config import load_core
from dfx.rtl.mpu import Mpu
from dfx.rtl.toolchain import verilator as vt

pytestmark = [
    pytest.mark.verilator,
    pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable"),
]

HERE = Path(__file__).parent
TINY = load_core("tiny")

VARIANTS = {
    "tiny": ({}, {"MPU_CORE": "tiny"}),
    "tiny_g3": (
        {"interleave": 3, "add_latency": 3, "mul_latency": 1, "gelu_latency": 3, "queue_depth": 2},
        {"MPU_CORE": "tiny", "MPU_INTERLEAVE": "3"},
    ),
}


def lint(source: Path, top: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["verilator", "--lint-only", "--top-module", top, *vt.waiver_args(), str(source)],
        env=vt.verilator_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_mpu_cocotb(variant, tmp_path_factory):
    params, env = VARIANTS[variant]
    text = Mpu.from_core(TINY, **params).verilog("mpu")
    source = vt.cached_source(text, f"mpu_{variant}.v")
    assert lint(source, "mpu", 300).returncode == 0
    results = vt.run_cocotb(
        [source],
        toplevel="mpu",
        test_module="dfx.rtl.tb.mpu",
        build_dir=tmp_path_factory.mktemp(f"mpu_{variant}"),
        extra_env={**env, "MPU_SEED": "7"},
        timeout_s=900,
    )
    xml = results.read_text()
    for name in ("corners_and_options", "shapes", "long_random", "throughput"):
        assert f'name="{name}"' in xml


@pytest.mark.slow
def test_tiny_flat_verilog_lints():
    """The whole Amaranth design converted as one (no black-box leaves) is clean too."""
    text = Mpu.from_core(TINY).verilog("mpu", flat=True)
    assert "module mpu(" in text
    source = vt.cached_source(text, "mpu_tiny_flat.v")
    r = lint(source, "mpu", 600)
    assert r.returncode == 0, r.stderr[-4000:]


@pytest.mark.fullsize
@pytest.mark.slow
def test_u280_generation_and_lint():
    """Full size: generate the d = 64, l = 16 MPU and lint it; the times are printed."""
    t0, c0 = time.perf_counter(), time.process_time()
    text = Mpu.from_core(load_core("dfx-u280")).verilog("mpu")
    gen_wall, gen_cpu = time.perf_counter() - t0, time.process_time() - c0
    source = vt.cached_source(text, "mpu_u280.v")
    t1 = time.perf_counter()
    r = lint(source, "mpu", 3600)
    lint_wall = time.perf_counter() - t1
    print(
        f"dfx-u280 MPU: {len(text.splitlines())} Verilog lines; generation {gen_wall:.1f} s "
        f"(CPU {gen_cpu:.1f} s), verilator --lint-only {lint_wall:.1f} s"
    )
    assert r.returncode == 0, r.stderr[-4000:]
    # one BlockDot leaf per MFU lane (its d multipliers are inside it, docs/numerics.md §3)
    assert len(re.findall(r"^\s*mpu_blockdot_l\d+ \S+ \(", text, re.M)) == 16
