"""Smoke tests of bench/lutgemm_latency.py's unit-size section (docs/BENCHMARKS.md): the size
filter, the hypothetical cores and the LUT arithmetic, on the tiny core and made-up budget
data. No timing-model run (those take minutes on gpt2-xl-24h)."""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "lutgemm_latency.py"


@pytest.fixture(scope="module")
def lat():
    spec = importlib.util.spec_from_file_location("dfx_bench_lutgemm_latency", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def tiny():
    from dfx.isa.config import load_core

    return load_core("tiny")


def test_size_filter_on_the_tiny_core(lat, tiny) -> None:
    assert (tiny.lutgemm.lanes, tiny.lutgemm.scalers) == (4, 2)
    assert lat.size_refused(tiny, 4, 2) is None
    assert lat.size_refused(tiny, 2, 1) is None
    assert lat.size_refused(tiny, 4, 4) is None
    assert "scalers (8) must be at most lanes (4)" in lat.size_refused(tiny, 4, 8)
    assert lat.size_refused(tiny, 3, 1).startswith("configuration loader")  # not a power of 2
    assert lat.size_refused(tiny, 4, 3).startswith("RTL")  # the loader takes any scalers
    assert lat.size_refused(tiny, 512, 2) is not None  # max_rows 256 is no multiple of it


def test_the_default_grid_is_accepted_by_dfx_u280(lat) -> None:
    from dfx.isa.config import load_core

    core = load_core("dfx-u280")
    assert (core.lutgemm.lanes, core.lutgemm.scalers) in lat.SIZES
    assert [lat.size_refused(core, *s) for s in lat.SIZES] == [None] * len(lat.SIZES)


def test_size_variant_changes_lanes_and_scalers_only(lat, tiny) -> None:
    import dataclasses

    from dfx.rtl.lutgemm import LutGemm
    from dfx.sim.timing.lutgemm import LutParams

    c = lat.variant_core(tiny, lat.size_variant(2, 1))
    assert (c.lutgemm.lanes, c.lutgemm.scalers) == (2, 1)
    assert dataclasses.replace(c.lutgemm, lanes=4, scalers=2) == tiny.lutgemm
    assert dataclasses.replace(c, lutgemm=tiny.lutgemm) == tiny
    lp = LutParams.from_rtl(LutGemm.from_core(c))  # what the timing model reads
    assert (lp.lanes, lp.scalers) == (2, 1)
    with pytest.raises(ValueError):
        lat.variant_core(tiny, "lanes=2")


def test_lut_arithmetic_from_the_documented_figures(lat) -> None:
    src = lat.unit_lut_source(None)
    d = lat.DOC_LUT
    assert lat.unit_lut(src, d["lanes"], d["scalers"]) == d["total"]
    assert (lat.unit_lut(src, d["lanes"], d["scalers"]) - lat.unit_lut(src, d["lanes"] // 2,
                                                                        d["scalers"] // 2)
            == d["lanes"] // 2 * d["lane"] + d["scalers"] // 2 * d["scaler"])


def _budget(tmp_path: Path, parts: list[dict], status: str = "ok") -> Path:
    row = {"name": "lutgemm", "lut": 1000.0, "status": status, "method": "m", "parts": parts}
    f = tmp_path / "budget.json"
    f.write_text(json.dumps({"core": "tiny", "rows": [{"name": "router", "lut": 5.0}, row]}))
    return f


def test_lut_arithmetic_from_a_budget_json(lat, tmp_path) -> None:
    parts = [
        {"label": "LutGemm", "count": 1, "lut": 100},
        {"label": "leaf_lutlane_l1", "count": 4, "lut": 150, "leaf": True},
        {"label": "leaf_lutscaler_l7", "count": 2, "lut": 80, "leaf": True},
        {"label": "leaf_lutconvertpair_l4", "count": 1, "lut": 40, "leaf": True},
        {"label": "leaf_fp32add_l1", "count": 2, "lut": 10, "leaf": True},  # stays in the rest
    ]
    src = lat.unit_lut_source(_budget(tmp_path, parts))
    assert (src["lanes"], src["scalers"], src["lane"], src["scaler"]) == (4, 2, 150, 100)
    assert src["top"] == 1000 - 4 * 150 - 2 * 80 - 40
    assert lat.unit_lut(src, 4, 2) == 1000
    assert lat.unit_lut(src, 2, 1) == 1000 - 2 * 150 - 100
    with pytest.raises(SystemExit):
        lat.unit_lut_source(_budget(tmp_path, parts, status="partial, a lower bound: x"))
    with pytest.raises(SystemExit):
        lat.unit_lut_source(_budget(tmp_path, parts[:3]))  # no converter for the pair


def test_parse_sizes(lat) -> None:
    assert lat.parse_sizes("512:256,128:32") == [(512, 256), (128, 32)]
    for bad in ("512", "512:256:1", "a:b", ""):
        with pytest.raises(argparse.ArgumentTypeError):
            lat.parse_sizes(bad)
