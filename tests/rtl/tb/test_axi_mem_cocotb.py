"""The memory model on Verilator (``mem_tb.py`` on ``mem_top.MemTop``): back door, cocotbext-axi
AxiMaster traffic, timing against the timing model, stalls, free-running speed (printed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dfx.rtl.bus.vitis import VERILATOR_ARGS
from dfx.rtl.toolchain.model import build_model_from_text, run_model

pytestmark = [pytest.mark.verilator, pytest.mark.slow,
              pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")]

HERE = Path(__file__).parent


def test_axi_mem_cocotb(tmp_path):
    from mem_top import TOP, verilog

    model = build_model_from_text(verilog(), f"{TOP}.v", TOP, extra_args=VERILATOR_ARGS)
    results = run_model(model, "mem_tb", tmp_path, python_path=[HERE], timeout_s=900)
    xml = results.read_text()
    for name in ("free_running_speed", "backdoor_load_dump", "axi_master_data",
                 "timing_matches_model", "stalls_keep_results"):
        assert f'name="{name}"' in xml
    m = json.loads((tmp_path / "measure.json").read_text())
    print(f"\nmemory model (tiny card, 4 HBM + DDR): build {model.build_s:.1f} s; free-running "
          f"{m['free_running_cycles_per_s']:.0f} cycles/s, {m['beats_per_cycle_per_channel']:.3f}"
          f" beats/cycle/channel (bound {m['rate_bound_beats_per_cycle']:.3f}); back door "
          f"{m['backdoor_bytes'] / 2**20:.0f} MiB load {m['backdoor_load_s']:.2f} s, dump "
          f"{m['backdoor_dump_s']:.2f} s; timing exact {m['timing_exact']}/"
          f"{m['timing_transfers']}")
    assert m["backdoor_load_s"] < 1.0 and m["backdoor_dump_s"] < 1.0
