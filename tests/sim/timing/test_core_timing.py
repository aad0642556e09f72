"""The timing model against the whole core RTL, cycle for cycle (docs/timing.md,
"Validation"): every directed program of rtl_programs.py runs on ``DfxCore`` with the
testbench's memory models in Amaranth's simulator (core_harness.py, one build for all
programs) and through the timing model; every instruction fires in the same cycle and the
core's ``cycles`` register equals the model's end. The programs cover the firing and redirect
rules, lw/sw on HBM and DDR, the VPU's port and unit, the MPU's weight stream (HBM, DDR, the
weight buffer, biases in another space, batches), the DMA engine (loads, stores, store_t,
copies; reads after writes on one AXI port), lutmv and a layer-like mix."""

from __future__ import annotations

import pytest
from core_harness import run_programs
from rtl_programs import directed, images

from dfx.isa.config import load_core
from dfx.isa.container import Binary, CardImage
from dfx.isa.encoding import encode_program
from dfx.sim.timing.appliance import Appliance

pytestmark = [pytest.mark.slow,
              pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")]


def model_run(core, prog) -> tuple[int, list[tuple[int, int]]]:
    """(the model's end, (fire cycle, pc) of every instruction) for one program."""
    b = Binary(core=core, model={"name": "rtl-check"},
               cards=[CardImage(program=encode_program(prog), segments=[],
                                debug=[(0, "check")], symbols={})])
    app = Appliance(b, memo_loops=False)
    app.cards[0].fire_log = []
    res = app.run()
    return res.end[0], app.cards[0].fire_log


@pytest.mark.parametrize("core_name", ["tiny"])
def test_directed_programs_match_the_rtl_cycle_for_cycle(core_name):
    core = load_core(core_name)
    progs = directed(core)
    runs = run_programs(core, [(p, images()) for p in progs.values()], max_cycles=50_000)
    bad = []
    for (name, prog), run in zip(progs.items(), runs, strict=True):
        assert run.status == 0, f"{name}: the core faulted (status {run.status})"
        end, fires = model_run(core, prog)
        rtl_fires = [(c - run.first_fetch, pc) for c, pc in run.fires]
        if end != run.cycles or fires != rtl_fires:
            first = next(((a, b) for a, b in zip(rtl_fires, fires, strict=False) if a != b),
                         None)
            bad.append(f"{name}: rtl {run.cycles} cycles, model {end}; first firing that "
                       f"differs (rtl, model): {first}")
    assert not bad, "\n".join(bad)
