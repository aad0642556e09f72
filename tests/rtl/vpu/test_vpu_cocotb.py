"""The Vpu as Verilog under Verilator + cocotb (``dfx.rtl.tb.vpu``): every scenario crossed with
every back-pressure mode, all outputs bit-exact against the golden model; and the full
dfx-u280 VPU (d = 64) generated and linted with the project's waivers (``slow``).
"""

import subprocess
import time
from pathlib import Path

import pytest
from amaranth.back import verilog

from dfx.isa.config import load_core
from dfx.rtl.tb.vpu_harness import config_json
from dfx.rtl.toolchain import verilator as vt
from dfx.rtl.vpu import Vpu

HERE = Path(__file__).parent
TOP = "vpu"

CONFIGS = {
    "tiny": lambda: Vpu.from_core(load_core("tiny")),
    # every latency different, FP32 converter and accumulate tree combinational, 3 limbs
    "odd": lambda: Vpu(
        2,
        add_latency=3,
        mul_latency=2,
        table_latency=1,
        bypass_latency=2,
        scalar_latency=1,
        cvt_latency=0,
        acc_tree_latency=0,
        acc_add_latency=3,
        acc_convert_latency=1,
        tables={"exp": {"lo": -8.0, "hi": 8.0, "points": 64}},
    ),
}


@pytest.mark.verilator
@pytest.mark.parametrize("config", list(CONFIGS))
def test_vpu_verilator(config, tmp_path_factory):
    vpu = CONFIGS[config]()
    t0 = time.monotonic()
    src = vt.cached_source(verilog.convert(vpu, name=TOP), f"{TOP}.v")
    t_gen = time.monotonic() - t0
    build = tmp_path_factory.mktemp(f"vpu_{config}")  # own build directory per configuration
    t0 = time.monotonic()
    results = vt.run_cocotb(
        [src],
        toplevel=TOP,
        test_module="dfx.rtl.tb.vpu",
        build_dir=build,
        extra_env={"VPU_CONFIG": config_json(vpu)},
        timeout_s=3600,
    )
    text = results.read_text()
    assert text.count("<testcase") == 20, text[:2000]
    print(f"{config}: generate {t_gen:.1f} s, build + run {time.monotonic() - t0:.1f} s")


@pytest.mark.fullsize
@pytest.mark.slow
@pytest.mark.verilator
def test_full_size_generation_and_lint(tmp_path):
    """dfx-u280 (d = 64, 11-cycle adders): Verilog generation and Verilator lint times."""
    core = load_core("dfx-u280")
    t0 = time.monotonic()
    vpu = Vpu.from_core(core)
    text = verilog.convert(vpu, name=TOP)
    t_gen = time.monotonic() - t0
    src = tmp_path / f"{TOP}.v"
    src.write_text(text)
    assert vpu.d == 64
    t0 = time.monotonic()
    lint = subprocess.run(
        ["verilator", "--lint-only", *vt.waiver_args(), "--top-module", TOP, str(src)],
        env=vt.verilator_env(),
        capture_output=True,
        text=True,
        timeout=7200,
        check=False,
    )
    t_lint = time.monotonic() - t0
    assert lint.returncode == 0, lint.stderr[-5000:]
    lines = text.count("\n")
    print(f"dfx-u280 VPU: {lines} lines, generate {t_gen:.1f} s, lint {t_lint:.1f} s")
