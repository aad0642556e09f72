"""Fast core Verilog (dfx.rtl.core.generate): the kernel top's ports, the deduplicated
conversion of the tiny core, the cache of core_verilog; on Verilator, the black-boxed VPU
against the golden model (the cocotb VPU bench) and against the flat VPU (a random miter)."""

from __future__ import annotations

import re
import time
import warnings
from pathlib import Path

import pytest
from amaranth.hdl import Module, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from dfx.isa.config import load_core
from dfx.rtl.arith.fp32_to_fp16 import Fp32ToFp16
from dfx.rtl.bus.vitis import vitis_buses, vitis_ports
from dfx.rtl.core import generate as cg
from dfx.rtl.core.core import DfxCore
from dfx.rtl.leaves import add_leaf, mark_used

CORE = load_core("tiny")
pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


def test_kernel_top_ports():
    kernel = DfxCore(CORE, debug=False)
    names = [p.name for p in vitis_ports(kernel)]
    assert names[:2] == ["ap_clk", "ap_rst_n"]
    assert not [n for n in names if n.startswith("dbg")]
    channels = CORE.b.hbm.pseudo_channels
    for n in ("s_axi_control_awaddr", "s_axi_control_rdata", "interrupt", "m_axi_hbm00_araddr",
              f"m_axi_hbm{channels - 1:02d}_wdata", "m_axi_ddr_rdata", "tx_tdata", "tx_tvalid",
              "rx_tready"):
        assert n in names, n
    kinds = {b.name: b.kind for b in vitis_buses(kernel)}
    assert kinds["s_axi_control"] == "s_axilite"
    assert kinds["m_axi_ddr"] == "m_axi" and kinds["m_axi_hbm00"] == "m_axi"
    assert kinds["tx"] == "m_axis" and kinds["rx"] == "s_axis"
    assert sum(k == "m_axi" for k in kinds.values()) == channels + 1
    # the default keeps the testbench back doors
    full = DfxCore(CORE)
    assert "dbg_srf_value" in [p.name for p in vitis_ports(full)]
    assert full.debug and not kernel.debug
    mark_used(kernel)
    mark_used(full)


@pytest.fixture(scope="module")
def tiny_kernel():
    return cg.convert_core(CORE)


def test_convert_core_tiny(tiny_kernel):
    r = tiny_kernel
    text = r.text
    assert re.findall(r"^module dfx_core\(", text, re.M) == ["module dfx_core("]
    for name in r.modules:  # each leaf module defined once, and used
        assert len(re.findall(rf"^module {name}\(", text, re.M)) == 1, name
        assert re.search(rf"^\s*{name} \S+ \(", r.top_text, re.M), name
    assert all(n >= 1 for n in r.instances.values())

    def count(kind: str) -> int:
        return sum(n for k, n in r.instances.items() if f"_{kind}_" in k + "_")

    lc = CORE.lutgemm
    # one dot product per MPU lane; a LUT-GEMM lane / scaler each
    assert count("blockdot") == CORE.l and count("fp16mul") == 0
    assert count("lutlane") == lc.lanes and count("lutscaler") == lc.scalers
    # every instance names a module of this text (nothing left undefined)
    defined = set(re.findall(r"^module (\S+?)\(", text, re.M))
    used = set(re.findall(r"^\s*(dfx_core_\w+) \S+ \(", text, re.M))
    assert used <= defined


class Toy(wiring.Component):
    """A small top for the cache tests: two converters added through ``leaf``."""

    def __init__(self, core, *, leaf=add_leaf, width: int = 32):
        self._leaf = leaf
        super().__init__({"a": In(width), "b": In(width), "y": Out(32)})

    def elaborate(self, platform):
        m = Module()
        c0 = self._leaf(m, "c0", Fp32ToFp16(1))
        c1 = self._leaf(m, "c1", Fp32ToFp16(1))
        m.d.comb += [c0.a.eq(self.a), c1.a.eq(self.b), self.y.eq(c0.result | (c1.result << 16))]
        return m


def test_core_verilog_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DFX_RTL_CACHE", str(tmp_path))
    with pytest.raises(ValueError, match="params need a component"):
        cg.convert_core(CORE, params={"width": 3})
    said = []
    text = cg.core_verilog(CORE, top="toy", component=Toy, params={"width": 32},
                           progress=said.append)
    assert len(said) == 2 and "generating" in said[0]
    assert re.search(r"^module toy\(", text, re.M) and "module toy_fp32tofp16_l1(" in text
    assert text.count("toy_fp32tofp16_l1 ") == 2
    # the second call reads the cache
    monkeypatch.setattr(cg, "convert_core", lambda *a, **k: pytest.fail("regenerated"))
    assert cg.core_verilog(CORE, top="toy", component=Toy, params={"width": 32}) == text
    key = cg.core_key(CORE, top="toy", component=Toy, params={"width": 32})
    assert (tmp_path / f"{CORE.name}-toy-{key}" / "toy.v").read_text() == text
    # the key follows the parameters, the top, the component and the core
    others = {cg.core_key(CORE, top="toy", component=Toy, params={"width": 16}),
              cg.core_key(CORE, top="toy2", component=Toy, params={"width": 32}),
              cg.core_key(CORE, top="toy"),
              cg.core_key(load_core("dfx-u280"), top="toy", component=Toy,
                          params={"width": 32})}
    assert key not in others and len(others) == 4
    with pytest.raises(ValueError, match="module-level"):
        cg.core_key(CORE, component=lambda core, leaf: Toy(core, leaf=leaf))
    with pytest.raises(ValueError, match="cache key"):
        cg.core_key(CORE, component=Toy, params={"width": Value.cast(1)})


def test_hardware_sources():
    names = [n for n, _p in cg.hardware_sources()]
    assert "rtl/core/core.py" in names and "isa/spec.yaml" in names
    assert "rtl/core/generate.py" in names  # it shapes the text
    assert not [n for n in names if n.startswith("rtl/toolchain/")]
    assert "rtl/regress.py" not in names and "rtl/generate.py" not in names


# ------------------------------------------------------------------------- on Verilator


@pytest.mark.verilator
def test_blackboxed_vpu_golden(tmp_path_factory):
    """The cocotb VPU bench (every scenario x back-pressure mode, bit-exact against the
    golden model) on the VPU whose lane blocks are black-box modules."""
    from dfx.rtl.tb.vpu_harness import config_json
    from dfx.rtl.toolchain import verilator as vt
    from dfx.rtl.vpu import Vpu

    vpu = Vpu.from_core(CORE)
    src = vt.cached_source(vpu.verilog("vpu"), "vpu.v")
    assert "module vpu_fp32add_l" in src.read_text()
    results = vt.run_cocotb([src], toplevel="vpu", test_module="dfx.rtl.tb.vpu",
                            build_dir=tmp_path_factory.mktemp("vpu_leaves"),
                            extra_env={"VPU_CONFIG": config_json(vpu)}, timeout_s=3600)
    text = results.read_text()
    assert text.count("<testcase") == 20 and "<failure" not in text, text[:2000]


@pytest.mark.slow
@pytest.mark.verilator
def test_blackboxed_vpu_equals_flat(tmp_path):
    """The black-boxed and the flat VPU, same random inputs (valid VPU commands of 0..4
    vectors, random operands and back-pressure): every output equal in every cycle."""
    from generate_miter import miter_verilog, run_miter

    from dfx.rtl.cycle_check import fast_cycle_check
    from dfx.rtl.vpu import Vpu
    from dfx.rtl.vpu.vfu import VpuOp

    t0 = time.monotonic()
    with warnings.catch_warnings(), fast_cycle_check():
        warnings.simplefilter("ignore")
        gold = Vpu.from_core(CORE).verilog("gold_vpu", flat=True)
        gate = Vpu.from_core(CORE).verilog("gate_vpu")
    t_gen = time.monotonic() - t0
    vpu = Vpu.from_core(CORE)
    ports = [("clk", "in", 1), ("rst", "in", 1)]
    for path, member, value in vpu.signature.flatten(vpu):
        ports.append(("__".join(map(str, path)), "in" if member.flow == wiring.In else "out",
                      len(Value.cast(value))))
    ops = [o.value for o in VpuOp]
    cases = "\n".join(f"      {i}: pick_op = 8'd{v};" for i, v in enumerate(ops))
    decls = (f"  function [7:0] pick_op(input [31:0] r);\n    case (r % {len(ops)})\n{cases}\n"
             "      default: pick_op = 8'd0;\n    endcase\n  endfunction")
    # Command: op (bits 0-7), n (8-31: 0..4 vectors), s, t (random FP32)
    drive = {"cmd__payload": "{$urandom, $urandom, 21'd0, 3'($urandom % 5), pick_op($urandom)}",
             "cmd__valid": "($urandom % 4) == 0"}
    top = miter_verilog("gold_vpu", "gate_vpu", ports, clock="clk", reset="rst",
                        reset_active=1, cycles=20000, drive=drive, decls=decls,
                        count=["y__valid", "result__valid"])
    t0 = time.monotonic()
    got = run_miter(Path(tmp_path), {"gold.v": gold, "gate.v": gate}, top)
    print(f"VPU miter: generate {t_gen:.0f} s, build + run {time.monotonic() - t0:.0f} s: {got}")
    assert got["errors"] == 0 and got["mismatches"] == 0, got
    assert got["cycles"] == 20000 and got["y__valid"] > 1000 and got["result__valid"] > 100
