"""Tiny Amaranth design for the Verilator smoke test.

``SmokeAlu`` is an 8-bit registered ALU with a free-running cycle counter:

* when ``en`` is high, on the next clock edge ``result`` becomes ``a + b`` (``op == 0``),
  ``a - b`` (``op == 1``) or ``a ^ b`` (``op == 2``), all modulo 256; ``op == 3`` holds it;
* ``count`` increments every cycle (wrapping), ``count_is_3`` is ``count == 3``;
* ``zero`` is ``op == 0`` (combinational).

It is small, but it uses the constructs whose Verilog trips the Verilator warnings waived in
``dfx.rtl.toolchain.verilator.LINT_WAIVERS`` (a constant compared at a narrower width, a
``Switch`` without a default arm, a multi-bit truth test, range checks that are constant at
a field's minimum or maximum), so the smoke test proves that the
waiver list is enough for real Amaranth output.
"""

from amaranth import Module
from amaranth.back import verilog
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out


class SmokeAlu(wiring.Component):
    a: In(8)
    b: In(8)
    op: In(2)
    en: In(1)
    result: Out(8)
    count: Out(8)
    count_is_3: Out(1)
    zero: Out(1)
    low_ge_0: Out(1)
    low_le_3: Out(1)

    def elaborate(self, platform):
        m = Module()
        with m.If(self.en):
            with m.Switch(self.op):
                with m.Case(0):
                    m.d.sync += self.result.eq(self.a + self.b)
                with m.Case(1):
                    m.d.sync += self.result.eq(self.a - self.b)
                with m.Case(2):
                    m.d.sync += self.result.eq(self.a ^ self.b)
        m.d.sync += self.count.eq(self.count + 1)
        m.d.comb += [
            self.count_is_3.eq(self.count == 3),
            self.zero.eq(self.op == 0),
            # parameterised range checks whose bound is the field's minimum / maximum
            self.low_ge_0.eq(self.a[4:6] >= 0),
            self.low_le_3.eq(self.a[0:2] <= 3),
        ]
        return m


def to_verilog(name: str = "smoke_alu") -> str:
    """Return the Verilog text of a ``SmokeAlu`` as module *name*."""
    return verilog.convert(SmokeAlu(), name=name, emit_src=False)
