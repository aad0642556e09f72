"""dfx.rtl.leaves (fingerprints, LeafModules) and dfx.rtl.cycle_check (the linear-time
combinational-cycle check): pure Python and Amaranth, no Verilator."""

import re

import pytest
from amaranth.back import verilog
from amaranth.hdl import Module, Signal
from amaranth.hdl._nir import CombinationalCycle
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from dfx.isa.golden import tables as gtab
from dfx.rtl.arith.fp16_mul import Fp16Mul
from dfx.rtl.arith.fp32_add import Fp32Add
from dfx.rtl.arith.pwl_table import PwlTable
from dfx.rtl.cycle_check import ACTIVE, check_comb_cycles, fast_cycle_check
from dfx.rtl.leaves import LeafModules, add_leaf, fingerprint, leaf_verilog

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


def test_fingerprint_same_and_different():
    assert fingerprint(Fp32Add(2)) == fingerprint(Fp32Add(2))
    assert fingerprint(Fp32Add(2)) != fingerprint(Fp32Add(3))
    assert fingerprint(Fp32Add(2)) != fingerprint(Fp16Mul(2))
    g = gtab.table_from_spec("gelu", {"lo": -8.0, "hi": 8.0, "points": 256})
    g2 = gtab.table_from_spec("gelu", {"lo": -8.0, "hi": 8.0, "points": 128})
    assert fingerprint(PwlTable(g, lanes=2)) == fingerprint(PwlTable(g, lanes=2))
    assert fingerprint(PwlTable(g, lanes=2)) != fingerprint(PwlTable(g2, lanes=2))
    assert fingerprint(PwlTable(g, lanes=2)) != fingerprint(PwlTable(g, lanes=4))
    # how a leaf adds its own leaves does not change its circuit
    assert (fingerprint(PwlTable(g, leaf=add_leaf))
            == fingerprint(PwlTable(g, leaf=LeafModules("x"))))


class _WithExpr(wiring.Component):
    def __init__(self, expr):
        self._expr = expr
        super().__init__({"o": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.o.eq(self._expr)
        return m


class _Inner(wiring.Component):
    def __init__(self, init):
        self._reg = Signal(4, init=init)  # internal state: its initial value matters
        super().__init__({"i": In(4), "o": Out(4)})

    def elaborate(self, platform):
        m = Module()
        m.d.sync += self._reg.eq(self.i)
        m.d.comb += self.o.eq(self._reg)
        return m


def test_fingerprint_conservative():
    a = Signal()
    assert fingerprint(_WithExpr(a | 1)) is None  # an expression: never shared
    assert fingerprint(_WithExpr(lambda: 0)) is None  # a function: never shared
    assert fingerprint(_Inner(1)) == fingerprint(_Inner(1))
    assert fingerprint(_Inner(1)) != fingerprint(_Inner(2))


class _Pair(wiring.Component):
    """Two adders and a multiplier added through a Leaf."""

    def __init__(self, leaf):
        self._leaf = leaf
        super().__init__({"a": In(32), "b": In(32), "x": In(16), "y": Out(32), "z": Out(32)})

    def elaborate(self, platform):
        m = Module()
        s1 = self._leaf(m, "s1", Fp32Add(2))
        s2 = self._leaf(m, "s2", Fp32Add(2))
        p = self._leaf(m, "p", Fp16Mul(1))
        m.d.comb += [s1.a.eq(self.a), s1.b.eq(self.b), s2.a.eq(s1.result), s2.b.eq(self.a),
                     p.a.eq(self.x), p.b.eq(self.x), self.y.eq(s2.result), self.z.eq(p.result)]
        return m


def test_leaf_modules_dedupe_and_instantiate():
    leaves = LeafModules("top")
    text = verilog.convert(_Pair(leaves), name="top", emit_src=False)
    assert leaves.instances == {"top_fp32add_l2": 2, "top_fp16mul_l1": 1}
    mods = leaves.verilog()
    assert list(mods) == ["top_fp32add_l2", "top_fp16mul_l1"]
    assert text.count("top_fp32add_l2 ") == 2 and text.count("top_fp16mul_l1 ") == 1
    for name, body in mods.items():
        header = re.search(rf"module {name}\((.*?)\);", body).group(1)
        assert {"clk", "rst"} <= {p.strip() for p in header.split(",")}
    with pytest.raises(ValueError, match="prefix"):
        LeafModules("not a name")
    with pytest.raises(TypeError, match="wiring.Component"):
        leaves(Module(), "x", object())


def test_leaf_verilog_ports():
    text = leaf_verilog(Fp16Mul(0), "mul0")  # combinational: clk and rst still exist
    assert re.search(r"module mul0\(", text)
    for port in ("clk", "rst", "a", "b", "valid_in", "en", "result", "valid_out"):
        assert re.search(rf"\b(input|output)\b[^;]*\b{port}\s*;", text), port


def _cyclic():
    m = Module()
    a, b, c = Signal(8), Signal(8), Signal(8)
    m.d.comb += [a.eq(b + 1), b.eq(c << 1), c.eq(a[2:] + 3)]
    return m, [a]


def _acyclic():
    m = Module()
    a, b, c, d = Signal(12), Signal(12), Signal(12), Signal(40)
    m.d.comb += [b.eq(a + 1), c.eq(b << a[:3]), d.eq(c.bit_select(a[:4], 12) * b)]
    m.d.sync += a.eq(d[:12] ^ c)
    return m, [a, d]


@pytest.mark.skipif(not ACTIVE, reason="only for Amaranth 0.5")
def test_fast_cycle_check_same_result():
    m, ports = _acyclic()
    plain = verilog.convert(m, ports=ports, emit_src=False)
    m, ports = _acyclic()
    with fast_cycle_check():
        fast = verilog.convert(m, ports=ports, emit_src=False)
    assert fast == plain
    m, ports = _cyclic()
    with fast_cycle_check(), pytest.raises(CombinationalCycle, match="operator <<"):
        verilog.convert(m, ports=ports, emit_src=False)
    # re-entrant, and restored afterwards
    from amaranth.hdl import _nir

    with fast_cycle_check(), fast_cycle_check():
        assert _nir.Netlist.check_comb_cycles is check_comb_cycles
    assert _nir.Netlist.check_comb_cycles is not check_comb_cycles
