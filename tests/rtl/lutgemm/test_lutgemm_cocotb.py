"""The LUT-GEMM unit's Verilog under Verilator + cocotb (``dfx.rtl.tb.lutgemm``): every scenario
crossed with every back-pressure mode and the throughput test, bit-exact against ``lut_acc``,
through the regression runner (``dfx regress --bench lutgemm``) at the tiny core and as a
variant with other parameters; the dfx-u280 unit generated and linted (``slow``)."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from dfx.isa.config import load_core
from dfx.rtl.lutgemm import LutGemm
from dfx.rtl.regress import bench, run_bench, summary_table
from dfx.rtl.toolchain import verilator as vt

pytestmark = [
    pytest.mark.verilator,
    pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable"),
]

TINY = load_core("tiny")
N_TESTS = 3 * 4 + 2  # scenarios x pressure modes, throughput (long and shortest groups)


def lint(source, top: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["verilator", "--lint-only", "--top-module", top, *vt.waiver_args(), str(source)],
        env=vt.verilator_env(), capture_output=True, text=True, timeout=timeout, check=False)


def test_regress_bench(tmp_path):
    """The tiny core through ``dfx regress``'s runner."""
    result = run_bench(bench("lutgemm"), TINY, tmp_path, timeout_s=1800)
    assert result.passed, summary_table([result])
    assert len(result.tests) == N_TESTS
    print(summary_table([result]))


@pytest.mark.slow
def test_variant(tmp_path):
    """Full tables, one scaler per lane, every latency different (flat conversion: the lanes and
    scalers are not black boxes here)."""
    overrides = {"symmetric": False, "scalers": 4, "build_latency": 2, "lookup_latency": 2,
                 "convert_latency": 2, "mul_latency": 3, "add_latency": 3, "queue_depth": 2}
    text = LutGemm.from_core(TINY, **overrides).verilog("lutgemm", flat=True)
    src = vt.cached_source(text, "lutgemm_variant.v")
    assert lint(src, "lutgemm", 600).returncode == 0
    results = vt.run_cocotb(
        [src], toplevel="lutgemm", test_module="dfx.rtl.tb.lutgemm", build_dir=tmp_path,
        extra_env={"DFX_CORE": "tiny", "LUTGEMM_OVERRIDES": json.dumps(overrides)},
        timeout_s=1800)
    assert results.read_text().count("<testcase") == N_TESTS


@pytest.mark.fullsize
@pytest.mark.slow
def test_u280_generation_and_lint():
    """Full size (512 lanes, 256 scalers, keys 8): generation and lint times are printed."""
    t0, c0 = time.perf_counter(), time.process_time()
    dut = LutGemm.from_core(load_core("dfx-u280"))
    text = dut.verilog("lutgemm")
    gen_wall, gen_cpu = time.perf_counter() - t0, time.process_time() - c0
    source = vt.cached_source(text, "lutgemm_u280.v")
    t1 = time.perf_counter()
    r = lint(source, "lutgemm", 3600)
    lint_wall = time.perf_counter() - t1
    print(f"dfx-u280 LUT-GEMM: {len(text.splitlines())} Verilog lines; generation "
          f"{gen_wall:.1f} s (CPU {gen_cpu:.1f} s), verilator --lint-only {lint_wall:.1f} s")
    assert r.returncode == 0, r.stderr[-4000:]
    assert text.count("lutgemm_lutlane ") == 512
    assert text.count("lutgemm_lutscaler ") == 256
