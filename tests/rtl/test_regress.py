"""The cocotb regression (``dfx regress``) as part of the test suite, on Verilator."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from dfx.host.cli import main
from dfx.isa.config import load_core
from dfx.rtl.regress import BENCH_NAMES, bench, run_bench, summary_table

pytestmark = pytest.mark.verilator


# The MPU's, VPU's and LUT-GEMM unit's testbenches run (with more variants) in
# tests/rtl/{mpu,vpu,lutgemm}; here the FP blocks' benches go through the regression runner.
OWN_TESTS = ("mpu", "vpu", "lutgemm")


@pytest.mark.parametrize("name", [n for n in BENCH_NAMES if n not in OWN_TESTS])
def test_bench_passes(name: str, tmp_path: Path) -> None:
    result = run_bench(bench(name), load_core("tiny"), tmp_path)
    assert result.passed, summary_table([result])
    assert result.cycles > 1000  # the testbench really streamed vectors


def test_a_wrong_golden_model_fails(tmp_path: Path) -> None:
    # The FP32 adder checked against the FP32 multiplier's golden model must fail.
    wrong = dataclasses.replace(bench("fp32_add"), env={"DFX_UNIT": "fp32_mul"})
    result = run_bench(wrong, load_core("tiny"), tmp_path)
    assert not result.passed
    assert "golden" in summary_table([result])


def test_cli_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["regress", "--bench", "fp32_to_fp16", "--build-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert status == 0
    assert "fp32_to_fp16" in out and "PASS" in out and "sim cycles/s" in out
