"""``BoardTop`` (rtl/board/top.py): its port description keeps every Vitis port of the core
but the ring streams, adds the link clock and one tx/rx stream pair per QSFP link on it, with
the router or with the ``RouterHook`` stand-in; the tiny kernel's Verilog (cached) passes
Verilator lint."""

from __future__ import annotations

import warnings

import pytest
from amaranth.hdl import UnusedElaboratable

from dfx.isa.config import load_core
from dfx.rtl.board.hook import RouterHook
from dfx.rtl.board.top import BoardTop, kernel_buses
from dfx.rtl.bus.vitis import vitis_ports
from dfx.rtl.core.core import DfxCore

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


@pytest.mark.parametrize("core_name", ["tiny", "dfx-u280"])
@pytest.mark.parametrize("router", [None, RouterHook])
def test_board_ports(core_name, router):
    core = load_core(core_name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnusedElaboratable)
        top = BoardTop(core, router=router)
        bare = DfxCore(core, debug=False)
    ours = {p.name: p for p in vitis_ports(top)}
    for p in vitis_ports(bare):
        if p.name.startswith(("tx_", "rx_")):
            assert p.name not in ours
        else:
            assert ours[p.name] == p
    buses = {b.name: b for b in kernel_buses(top)}
    assert buses["ap_clk_2"].kind == "clock" and buses["ap_rst_n_2"].clock == "ap_clk_2"
    assert top.links == ("qsfp0", "qsfp1")
    for q in top.links:
        assert buses[f"{q}_tx"].kind == "m_axis" and buses[f"{q}_rx"].kind == "s_axis"
        assert buses[f"{q}_tx"].clock == buses[f"{q}_rx"].clock == "ap_clk_2"
        assert buses[f"{q}_tx"].width == top.link_bits
    assert all(b.clock == "ap_clk" for b in buses.values()
               if b.kind in ("m_axi", "s_axilite"))
    assert top.has_router == (router is None)


@pytest.mark.verilator
@pytest.mark.slow
def test_tiny_board_top_lint(tmp_path):
    """The tiny kernel (board top + core + router), cached Verilog, Verilator lint."""
    from dfx.host.kernel.describe import describe
    from dfx.host.kernel.project import board_verilog
    from dfx.rtl.bus.vitis import VERILATOR_ARGS
    from dfx.rtl.generate import CORE_LINT_ARGS, lint

    path = tmp_path / "dfx_core.v"
    path.write_text(board_verilog(describe(load_core("tiny"))))
    lint([path], "dfx_core", (*VERILATOR_ARGS, *CORE_LINT_ARGS))
