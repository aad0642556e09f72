"""The control slave on Verilator with cocotbext-axi's AxiLiteMaster (``ctrl_tb.py``), built
with :func:`dfx.rtl.toolchain.model.build_model` (no --public-flat-rw, cached)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dfx.isa.config import load_core
from dfx.rtl.bus.vitis import VERILATOR_ARGS, vitis_verilog
from dfx.rtl.toolchain.model import build_model_from_text, run_model

pytestmark = [pytest.mark.verilator,
              pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")]

HERE = Path(__file__).parent


def test_control_slave_cocotb(tmp_path):
    from ctrl_harness import TOP, CtrlHarness

    text = vitis_verilog(CtrlHarness(load_core("tiny")), TOP, emit_src=False)
    model = build_model_from_text(text, f"{TOP}.v", TOP, extra_args=VERILATOR_ARGS)
    results = run_model(model, "ctrl_tb", tmp_path, python_path=[HERE], timeout_s=300)
    xml = results.read_text()
    for name in ("xrt_sequence_twice", "interrupt_enable_and_clear", "concurrent_traffic"):
        assert f'name="{name}"' in xml
