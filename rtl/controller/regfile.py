"""``IntRegs``: the integer register file r0..r31 (``registers.int`` of ``isa/spec.yaml``: 32 x
64 bits, r0 reads 0 and ignores writes) with a pending bit per register (DFX §2.1 scoreboard,
integer part).

* Reads (``r_idx[i]`` in, ``r_val[i]`` out) are combinational.
* Writes (``w_<name>``: ``idx``, ``value``, ``en``) take effect at the end of the cycle and
  clear the register's pending bit: the value is available in the next cycle.
* ``claim_idx``/``claim_en`` sets a pending bit (an instruction that will write the register
  later: ``lw``, ``vargmax``, an ALU result with ``int_latency`` > 1). A claim and a write of
  the same register in one cycle leave it pending (the claim belongs to the later
  instruction). ``pending`` shows the bits (bit 0 is always 0).
* ``clear`` (the host's start): every register 0, nothing pending (power-on state).
"""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Array, Const, Module, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from dfx.isa.spec import load_spec

from ..frontend.decode import check_positive

__all__ = ["INT_BITS", "INT_COUNT", "IntRegs", "IntWriteSignature"]

_INT = load_spec().registers["int"]
INT_COUNT: int = _INT.count
"""Number of integer registers (r0..r31)."""
INT_BITS: int = _INT.bits or 64
"""Width of an integer register."""


class IntWriteSignature(wiring.Signature):
    """A write port seen from its user: ``idx``, ``value``, ``en``."""

    def __init__(self) -> None:
        super().__init__({"idx": Out(range(INT_COUNT)), "value": Out(INT_BITS), "en": Out(1)})

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IntWriteSignature)

    def __hash__(self) -> int:
        return hash(IntWriteSignature)


class IntRegs(wiring.Component):
    """The integer registers (module doc). Parameters: ``read_ports`` (count),
    ``write_ports`` (names, distinct identifiers)."""

    def __init__(self, *, read_ports: int, write_ports: Any):
        self._nr = check_positive(read_ports, "read_ports")
        self._writes = tuple(write_ports)
        if not self._writes or len(set(self._writes)) != len(self._writes) or not all(
                isinstance(w, str) and w.isidentifier() for w in self._writes):
            raise ValueError(f"write_ports must be distinct identifiers, not {write_ports!r}")
        members: dict[str, Any] = {
            "clear": In(1),
            "r_idx": In(data.ArrayLayout(range(INT_COUNT), self._nr)),
            "r_val": Out(data.ArrayLayout(INT_BITS, self._nr)),
            "claim_idx": In(range(INT_COUNT)),
            "claim_en": In(1),
            "pending": Out(INT_COUNT),
        }
        for w in self._writes:
            members[f"w_{w}"] = In(IntWriteSignature())
        super().__init__(members)
        #: The registers (r0 a constant 0); testbenches read them.
        self.regs = [Const(0, INT_BITS)] + [Signal(INT_BITS, name=f"r{i}")
                                            for i in range(1, INT_COUNT)]

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        regs = self.regs
        arr = Array(regs)
        for i in range(self._nr):
            m.d.comb += self.r_val[i].eq(arr[self.r_idx[i]])
        pend = Signal(INT_COUNT)
        m.d.comb += self.pending.eq(pend)
        for j in range(1, INT_COUNT):
            for w in self._writes:
                port = getattr(self, f"w_{w}")
                with m.If(port.en & (port.idx == j)):
                    m.d.sync += [regs[j].eq(port.value), pend[j].eq(0)]
            with m.If(self.claim_en & (self.claim_idx == j)):
                m.d.sync += pend[j].eq(1)
        with m.If(self.clear):
            m.d.sync += [pend.eq(0)] + [r.eq(0) for r in regs[1:]]
        return m
