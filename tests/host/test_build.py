"""``dfx build`` (host/kernel, host/commands/build.py): the kernel project's files agree with
each other and with the Verilog's port list (ports, widths, HBM banks), the Tcl parses with
tclsh, the output is written atomically and bad outputs are refused. The tiny project's
Verilog is generated once (cached, about a minute the first time); dfx-u280's files are checked
from the Python port description (its Verilog only with --fullsize)."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from dfx.host.cli import main
from dfx.host.kernel.describe import describe
from dfx.host.kernel.kernel_xml import kernel_xml
from dfx.host.kernel.link_cfg import REFERENCE, link_cfg, link_emu_cfg
from dfx.host.kernel.package_tcl import package_tcl
from dfx.host.kernel.project import write_project
from dfx.isa.config import load_core

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


# ----------------------------------------------------------------------------- parsers
def verilog_ports(text: str, top: str = "dfx_core") -> dict[str, tuple[str, int]]:
    """name -> (direction, width) of module ``top``'s ports."""
    m = re.search(rf"^module {top}\((.*?)\);(.*?)^endmodule", text, re.S | re.M)
    assert m, f"no module {top}"
    names = [n.strip() for n in m.group(1).split(",")]
    out = {}
    for d, rng, name in re.findall(r"^\s*(input|output)\s+(?:\[(\d+):0\]\s+)?(\w+);",
                                   m.group(2), re.M):
        out[name] = ("in" if d == "input" else "out", int(rng) + 1 if rng else 1)
    assert sorted(out) == sorted(names)
    return out


def xml_kernel(text: str) -> tuple[dict[str, dict], list[dict]]:
    kern = ET.fromstring(text).find("kernel")
    assert kern is not None and kern.get("hwControlProtocol") == "ap_ctrl_hs"
    ports = {p.get("name"): dict(p.attrib) for p in kern.iter("port")}
    args = [dict(a.attrib) for a in kern.iter("arg")]
    return ports, args


def cfg_lines(text: str, key: str) -> list[str]:
    return [ln.split("=", 1)[1] for ln in text.splitlines() if ln.startswith(key + "=")]


def check_consistent(k, xml_text: str, cfg_text: str, emu_text: str,
                     vports: dict[str, tuple[str, int]] | None) -> None:
    """kernel.xml, the link configurations and (if given) the Verilog name the same ports,
    widths and banks as the description; one distinct HBM pseudo-channel per HBM master."""
    ports, args = xml_kernel(xml_text)
    masters = {b.name: b for b in k.m_axi}
    streams = {b.name: b for b in k.streams}
    assert set(ports) == {"s_axi_control", *masters, *streams}
    for name, b in masters.items():
        assert ports[name]["mode"] == "master" and int(ports[name]["dataWidth"]) == b.width
    for name, b in streams.items():
        assert int(ports[name]["dataWidth"]) == b.width
        assert ports[name]["mode"] == ("read_only" if b.kind == "s_axis" else "write_only")
    # arguments: the register map's, at its offsets, pointers on the master they address
    regs = {r.name: r for r in k.regs.args}
    for a in args:
        if a["addressQualifier"] == "4":
            assert a["port"] in streams
            continue
        r = regs[a["name"]]
        assert int(a["offset"], 16) == r.offset
        assert a["port"] == (r.port if r.kind == "pointer" else "s_axi_control")
    assert [a["name"] for a in args][:len(regs)] == list(regs)
    # banks: one sp= per master, each HBM pseudo-channel once, DDR[0] for the DDR port
    for text in (cfg_text, emu_text):
        sp = [s.split(":") for s in cfg_lines(text, "sp")]
        assert sorted(p.split(".", 1)[1] for p, _ in sp) == sorted(masters)
        hbm = [b for _, b in sp if b.startswith("HBM[")]
        n = k.core.b.hbm.pseudo_channels
        assert sorted(hbm) == sorted(f"HBM[{i}]" for i in range(n)) and len(set(hbm)) == n
        assert [b for _, b in sp if not b.startswith("HBM[")] == ["DDR[0]"]
        for p, b in sp:
            if b.startswith("HBM["):
                assert p.endswith(f"m_axi_hbm{int(b[4:-1]):02d}")
        assert cfg_lines(text, "nk") [0] == f"{k.name}:1:{k.instance}"
        assert f"{k.instance}:SLR0" in cfg_lines(text, "slr")
    sc = [s.split(":") for s in cfg_lines(cfg_text, "stream_connect")]
    ours = {p.split(".", 1)[1] for pair in sc for p in pair if p.startswith(k.instance)}
    assert ours == set(streams)
    theirs = {p.split(".", 1)[0] for pair in sc for p in pair if not p.startswith(k.instance)}
    assert theirs == set(REFERENCE.kernels[:len(k.links)])
    for src, dst in sc:  # data flows out of m_axis into s_axis
        if src.startswith(k.instance):
            assert streams[src.split(".", 1)[1]].kind == "m_axis"
        else:
            assert streams[dst.split(".", 1)[1]].kind == "s_axis"
    emu = [s.split(":") for s in cfg_lines(emu_text, "stream_connect")]
    assert sorted(p.split(".", 1)[1] for pair in emu for p in pair) == sorted(streams)
    if vports is None:
        return
    described = {p.name: (p.direction, p.width) for b in k.buses for p in b.ports}
    assert vports == described
    for name, b in masters.items():
        assert vports[f"{name}_wdata"] == ("out", b.width)
        assert vports[f"{name}_araddr"] == ("out", 64)
    for name, b in streams.items():
        d = "out" if b.kind == "m_axis" else "in"
        assert vports[f"{name}_tdata"] == (d, b.width)


# ------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def tiny_project(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("build") / "tiny"
    assert main(["build", "--board", "tiny", "--core", "tiny", "--out", str(out), "-q"]) == 0
    return out


@pytest.mark.slow
def test_tiny_project_consistent(tiny_project):
    k = describe(load_core("tiny"))
    files = {p.name: p.read_text() for p in tiny_project.iterdir()}
    assert set(files) == {"dfx_core.v", "kernel.xml", "package_kernel.tcl", "link.cfg",
                          "link_hw_emu.cfg", "Makefile", "README.md", "manifest.json"}
    check_consistent(k, files["kernel.xml"], files["link.cfg"], files["link_hw_emu.cfg"],
                     verilog_ports(files["dfx_core.v"]))
    man = json.loads(files["manifest.json"])
    assert (man["core"], man["board"], man["kernel"]) == ("tiny", "tiny", "dfx_core")
    assert {f["file"] for f in man["files"]} == set(files) - {"manifest.json"}
    for f in man["files"]:
        assert hashlib.sha256(files[f["file"]].encode()).hexdigest() == f["sha256"]
    assert man["git"] is None or len(man["git"]["commit"]) == 40
    assert man["banks"]["m_axi_ddr"] == "DDR[0]"
    assert "make xclbin TARGET=hw" in files["README.md"]


def test_u280_32_distinct_pseudo_channels():
    """dfx-u280 from the Python port description (no Verilog): 32 HBM masters, each on its
    own pseudo-channel, kernel.xml and both link configurations agree."""
    k = describe(load_core("dfx-u280"))
    hbm = [b for b in k.m_axi if b.name.startswith("m_axi_hbm")]
    assert len(hbm) == 32 and all(b.width == 512 for b in hbm)
    assert sorted(k.banks[b.name] for b in hbm) == sorted(f"HBM[{i}]" for i in range(32))
    check_consistent(k, kernel_xml(k), link_cfg(k), link_emu_cfg(k), None)
    cfg = link_cfg(k)
    assert cfg_lines(cfg, "slr") == ["dfx_core_1:SLR0", "aurora_flow_0:SLR2",
                                     "aurora_flow_1:SLR2"]
    assert k.board.platform == "xilinx_u280_gen3x16_xdma_1_202211_1"
    assert f"freqHz={int(k.kernel_mhz * 1e6)}:dfx_core_1.ap_clk" in cfg


@pytest.mark.fullsize
def test_u280_project_with_verilog(tmp_path):
    out = tmp_path / "u280"
    assert main(["build", "--board", "u280", "--core", "dfx-u280", "--out", str(out),
                 "-q"]) == 0
    k = describe(load_core("dfx-u280"))
    check_consistent(k, (out / "kernel.xml").read_text(), (out / "link.cfg").read_text(),
                     (out / "link_hw_emu.cfg").read_text(),
                     verilog_ports((out / "dfx_core.v").read_text()))


# --------------------------------------------------------------------------------- Tcl
TCLSH = shutil.which("tclsh")
_CHECK = """\
proc unknown {args} { return "" }
set ::argv [list xcu280-fsvh2892-2L-e [file join [pwd] out dfx_core.xo]]
set ::argc 2
if {[catch {source package_kernel.tcl} err]} { puts stderr $err; exit 1 }
puts ok
"""


@pytest.mark.skipif(TCLSH is None, reason="tclsh not installed (Debian package tcl; .ci/run "
                    "installs it)")
@pytest.mark.parametrize("core", ["tiny", "dfx-u280"])
def test_tcl_parses(core, tmp_path):
    """The packaging script runs in tclsh with every Vivado command stubbed (``unknown``):
    its syntax, quoting and control flow are sound."""
    k = describe(load_core(core))
    (tmp_path / "package_kernel.tcl").write_text(package_tcl(k, ["dfx_core.v"]))
    res = subprocess.run([TCLSH], input=_CHECK, cwd=tmp_path, capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr
    # every kernel argument is a register of the packaged IP, at its offset
    text = (tmp_path / "package_kernel.tcl").read_text()
    for r in k.regs.args:
        assert f'add_register -quiet "{r.name}"' in text
        assert f"address_offset 0x{r.offset:03X}" in text


# ------------------------------------------------------------------- outputs and errors
def _fake_verilog(_k) -> str:
    return "// no Verilog in this test\n"


def test_build_atomic_on_failure(tmp_path, monkeypatch):
    """A failure while writing leaves no directory and no temporary behind."""
    import dfx.host.kernel.project as project

    def boom(*_a, **_k):
        raise RuntimeError("failed mid-way")

    monkeypatch.setattr(project, "manifest", boom)
    out = tmp_path / "new" / "proj"
    with pytest.raises(RuntimeError):
        write_project(load_core("tiny"), out, verilog=_fake_verilog)
    assert not (tmp_path / "new").exists()
    assert list(tmp_path.iterdir()) == []


def test_build_replaces_files_only_when_complete(tmp_path):
    out = tmp_path / "proj"
    write_project(load_core("tiny"), out, verilog=_fake_verilog)
    (out / "unrelated.txt").write_text("kept")
    man = write_project(load_core("tiny"), out, verilog=_fake_verilog)
    assert (out / "unrelated.txt").read_text() == "kept"
    assert json.loads((out / "manifest.json").read_text()) == man
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("kind", ["file", "under_file", "devnull", "empty"])
def test_build_bad_out(kind, tmp_path, capsys):
    f = tmp_path / "f"
    f.write_text("x")
    out = {"file": str(f), "under_file": str(f / "sub"), "devnull": "/dev/null",
           "empty": ""}[kind]
    assert main(["build", "--core", "tiny", "--board", "tiny", "--out", out, "-q"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("dfx: error: --out")
    assert f.read_text() == "x"


def test_build_bad_core(tmp_path, capsys):
    assert main(["build", "--core", "no-such-core", "--out", str(tmp_path / "o")]) == 1
    assert "no-such-core" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
