"""The router's Verilog (rtl/router) lints clean under Verilator with the project's waivers,
at tiny and dfx-u280; and so does the router unit bench's ring (rtl/tb/link_model.py)."""

from __future__ import annotations

import subprocess

import pytest

from dfx.isa.config import load_core
from dfx.rtl.generate import convert
from dfx.rtl.router import Router
from dfx.rtl.tb.link_model import RouterRing
from dfx.rtl.toolchain import verilator as vt

pytestmark = [pytest.mark.verilator,
              pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")]


def _lint(text: str, top: str) -> subprocess.CompletedProcess:
    source = vt.cached_source(text, f"{top}.v")
    return subprocess.run(
        ["verilator", "--lint-only", "--top-module", top, *vt.waiver_args(), str(source)],
        env=vt.verilator_env(), capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.parametrize("name", ["tiny", "dfx-u280"])
def test_router_lints(name):
    r = _lint(convert(Router(load_core(name)), "dfx_router"), "dfx_router")
    assert r.returncode == 0, r.stderr[-3000:]


def test_router_ring_lints():
    ring = RouterRing(load_core("tiny"), 2, [3, 1, 64, 2], 0.25, 5)
    r = _lint(convert(ring, "dfx_router_ring"), "dfx_router_ring")
    assert r.returncode == 0, r.stderr[-3000:]
