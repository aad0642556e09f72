"""``ScalarRegs``: the scalar register file s0..s(n-1) (FP32, SFU_V of DFX §2.5) with pending
bits (the scoreboard's scalar part, DFX §2.1).

* Reads are combinational (the issue stage reads an instruction's scalar operands in the
  cycle it issues: the value travels with the command, so a later write never races a read).
* Writes (``w_<name>``: ``idx``, ``value``, ``en``) take effect at the end of the cycle and
  clear the register's pending bit: the value is available in the next cycle.
* ``claim`` (``lo``, ``count``, ``en``) sets the pending bits of ``s[lo .. lo + count - 1]`` when
  an instruction that will write them issues; ``pending`` shows them. A claim and a write of
  the same register in one cycle leave it pending (the claim is the later instruction).
* ``clear`` (the host's start): every register +0.0, nothing pending (``isa/spec.yaml``
  power-on state).
"""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Array, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["ScalarRegs", "SrfWriteSignature"]


def _or(values: list) -> Any:
    out = values[0]
    for v in values[1:]:
        out = out | v
    return out


class SrfWriteSignature(wiring.Signature):
    """A write port seen from its user: ``idx``, ``value`` (FP32 bits), ``en``."""

    def __init__(self, n: int):
        self.n = n
        super().__init__({"idx": Out(range(n)), "value": Out(32), "en": Out(1)})

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SrfWriteSignature) and other.n == self.n

    def __hash__(self) -> int:
        return hash((SrfWriteSignature, self.n))


class ScalarRegs(wiring.Component):
    """``n`` FP32 registers with ``read_ports`` combinational reads (``r_<name>_idx`` in,
    ``r_<name>_value`` out) and ``write_ports`` (module doc). ``max_claim``: the most registers
    one instruction claims (maskedmm's row maxima of a batch: 255)."""

    def __init__(self, n: int, *, read_ports: Any, write_ports: Any, max_claim: int = 255):
        if not isinstance(n, int) or not 1 <= n <= 256:
            raise ValueError(f"n must be an integer in 1..256 (s0..s255), not {n!r}")
        if not isinstance(max_claim, int) or max_claim < 1:
            raise ValueError(f"max_claim must be a positive integer, not {max_claim!r}")
        self._n = n
        self._reads = tuple(read_ports)
        self._writes = tuple(write_ports)
        if len(set(self._reads)) != len(self._reads) or len(set(self._writes)) != len(
                self._writes):
            raise ValueError("port names must be unique")
        members: dict[str, Any] = {
            "clear": In(1),
            "claim_lo": In(range(n)),
            "claim_count": In(range(max_claim + 1)),
            "claim_en": In(1),
            "pending": Out(n),
        }
        for r in self._reads:
            members[f"r_{r}_idx"] = In(range(n))
            members[f"r_{r}_value"] = Out(32)
        for w in self._writes:
            members[f"w_{w}"] = In(SrfWriteSignature(n))
        super().__init__(members)

    @classmethod
    def from_core(cls, core: Any, **kw: Any) -> ScalarRegs:
        """The SRF of a core (``buffers.srf_scalars`` registers)."""
        return cls(core.buffers.srf_scalars, **kw)

    @property
    def n(self) -> int:
        return self._n

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        n = self._n
        regs = Array(Signal(32, name=f"s{i}") for i in range(n))
        pend = Signal(n, name="pend")
        m.d.comb += self.pending.eq(pend)
        for r in self._reads:
            m.d.comb += getattr(self, f"r_{r}_value").eq(regs[getattr(self, f"r_{r}_idx")])
        cleared = Signal(n)
        hits = []
        for w in self._writes:
            port = getattr(self, f"w_{w}")
            with m.If(port.en):
                m.d.sync += regs[port.idx].eq(port.value)
            hits.append(port.en.as_unsigned() << port.idx)
        m.d.comb += cleared.eq(_or(hits))
        claimed = Signal(n)
        lo, cnt = self.claim_lo, self.claim_count
        for i in range(n):
            m.d.comb += claimed[i].eq(self.claim_en & (i >= lo) & (i < lo + cnt))
        m.d.sync += pend.eq((pend & ~cleared) | claimed)
        with m.If(self.clear):
            m.d.sync += pend.eq(0)
            m.d.sync += [regs[i].eq(0) for i in range(n)]
        return m
