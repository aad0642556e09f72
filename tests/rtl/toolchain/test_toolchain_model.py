"""Cached Verilator models without --public-flat-rw (rtl/toolchain/model.py), on the smoke
design of ``smoke_design.py`` and its cocotb testbench ``smoke_tb.py``."""

from __future__ import annotations

from pathlib import Path

import pytest

from dfx.rtl.toolchain import model as mdl

HERE = Path(__file__).parent


def test_public_control_file():
    text = mdl.public_control_file(["top:*", "*:mem"])
    assert text.splitlines() == ["`verilator_config", 'public_flat_rw -module "top" -var "*"',
                                 'public_flat_rw -module "*" -var "mem"']
    for bad in ("nocolon", "a:b:c", ":x", 'a:"b"'):
        with pytest.raises(ValueError, match="module:signal"):
            mdl.public_control_file([bad])


def test_argument_checks(tmp_path):
    src = tmp_path / "x.v"
    src.write_text("module x; endmodule\n")
    with pytest.raises(ValueError, match="toplevel"):
        mdl.build_model([src], "not a name", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="at least one"):
        mdl.build_model([], "x", cache_dir=tmp_path)
    with pytest.raises(FileNotFoundError):
        mdl.build_model([tmp_path / "missing.v"], "x", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="public must be"):
        mdl.build_model([src], "x", public="everything", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="threads"):
        mdl.build_model([src], "x", threads=0, cache_dir=tmp_path)


@pytest.mark.verilator
def test_build_once_then_cached_and_run(tmp_path):
    from smoke_design import to_verilog

    text = to_verilog("smoke_alu")
    cache = tmp_path / "models"
    first = mdl.build_model_from_text(text, "smoke_alu.v", "smoke_alu", cache_dir=cache)
    assert not first.cached and first.executable.is_file()
    vlt = (first.build_dir / "public.vlt").read_text()
    assert 'public_flat_rw -module "smoke_alu" -var "*"' in vlt
    again = mdl.build_model_from_text(text, "smoke_alu.v", "smoke_alu", cache_dir=cache)
    assert again.cached and again.build_dir == first.build_dir and again.key == first.key
    for i in range(2):  # two test runs share the build, each in its own directory
        results = mdl.run_model(again, "smoke_tb", tmp_path / f"run{i}", python_path=[HERE],
                                timeout_s=120)
        assert 'name="alu_and_counter"' in results.read_text()
    other = mdl.build_model_from_text(text, "smoke_alu.v", "smoke_alu", cache_dir=cache,
                                      public=mdl.PUBLIC_ALL)
    assert other.key != first.key and not other.cached
    with pytest.raises(ValueError, match="waves"):
        mdl.run_model(again, "smoke_tb", tmp_path / "w", waves=True)


@pytest.mark.verilator
def test_traced_model_writes_waves(tmp_path):
    """A model built with waves=True records the run (FST, or VCD without lz4/zlib headers):
    the path `dfx run --backend rtl --waves` takes, on a small model (the core's own traced
    build is the `extended` e2e test)."""
    from smoke_design import to_verilog

    from dfx.rtl.toolchain import verilator as vt

    model = mdl.build_model_from_text(to_verilog("smoke_alu"), "smoke_alu.v", "smoke_alu",
                                      cache_dir=tmp_path / "models", waves=True)
    assert model.waves
    mdl.run_model(model, "smoke_tb", tmp_path / "run", python_path=[HERE], waves=True,
                  timeout_s=120)
    name = "dump.fst" if vt.fst_supported() else "dump.vcd"
    dumps = [p for p in (tmp_path / "run", model.build_dir) if (p / name).is_file()]
    assert dumps and (dumps[0] / name).stat().st_size > 100
