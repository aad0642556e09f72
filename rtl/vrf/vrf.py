"""``Vrf``: the vector register file (DFX §2: d-wide FP16 vectors, ``buffers.vrf_vectors``).

Every unit port of the core has its own read and write ports, so the MPU, LUT-GEMM unit, VPU,
DMA and router stream at one vector per cycle each at the same time (DFX §2.1: independent
instructions run in parallel). Reads are synchronous: ``data`` holds ``v[addr]`` one cycle after
a cycle with ``en`` (and keeps it while ``en`` is low). A write in cycle t is seen by a read in
cycle t + 1 or later (the scoreboard makes a written vector available in t + 1,
:mod:`dfx.rtl.issue.scoreboard`). Two ports never write one vector in the same cycle (WAW
hazards are resolved at issue).

Storage (issue 12): a live-value-table multi-port memory (:mod:`.lvt`; LaForest and
Steffan, FPGA 2010). Each (write port, read port) pair has its own copy of the vectors, a
``Memory`` with one write and one synchronous read port (``ram_style = "ultra"``: a URAM288
column of ``ceil(16 d / 72)`` blocks per 4,096 vectors; the datapath units use no UltraRAM),
written only by its write port and read only by its read port; the
:class:`~.lvt.LiveValueTable` names the write port that last wrote each vector, and a read
port returns that writer's copy. No access waits for another: every port keeps one vector per
cycle, so the VRF has no schedule rule of its own. Cost: writers x readers copies (30 at
dfx-u280: 450 URAM for 4,096 x 1,024 bits) and a ``writers``:1 multiplexer per read port.
"""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Module, Signal, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..uram_init import ultra
from .lvt import LiveValueTable

__all__ = ["Vrf", "VrfReadSignature", "VrfWriteSignature"]


class VrfReadSignature(wiring.Signature):
    """A read port seen from its user: ``addr``, ``en`` out; ``data`` (d FP16) in."""

    def __init__(self, vectors: int, d: int):
        self.vectors, self.d = vectors, d
        super().__init__({
            "addr": Out(range(vectors)),
            "en": Out(1),
            "data": In(data.ArrayLayout(16, d)),
        })

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, VrfReadSignature) and other.vectors == self.vectors
                and other.d == self.d)

    def __hash__(self) -> int:
        return hash((VrfReadSignature, self.vectors, self.d))


class VrfWriteSignature(wiring.Signature):
    """A write port seen from its user: ``addr``, ``data`` (d FP16), ``en`` out."""

    def __init__(self, vectors: int, d: int):
        self.vectors, self.d = vectors, d
        super().__init__({
            "addr": Out(range(vectors)),
            "data": Out(data.ArrayLayout(16, d)),
            "en": Out(1),
        })

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, VrfWriteSignature) and other.vectors == self.vectors
                and other.d == self.d)

    def __hash__(self) -> int:
        return hash((VrfWriteSignature, self.vectors, self.d))


def _names(kind: str, names: Any) -> tuple[str, ...]:
    names = tuple(names)
    if not names or not all(isinstance(n, str) and n.isidentifier() for n in names):
        raise ValueError(f"{kind} must be a non-empty sequence of identifiers, not {names!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"{kind} must not repeat a name: {names!r}")
    return names


class Vrf(wiring.Component):
    """The VRF: ``vectors`` x d FP16, named read ports ``r_<name>`` and write ports ``w_<name>``.

    Parameters: ``vectors`` (>= 1), ``d`` (a power of two), ``read_ports``, ``write_ports``
    (sequences of port names).
    """

    def __init__(self, vectors: int, d: int, *, read_ports: Any, write_ports: Any):
        if not isinstance(vectors, int) or vectors < 1:
            raise ValueError(f"vectors must be a positive integer, not {vectors!r}")
        if not isinstance(d, int) or d < 1 or d & (d - 1):
            raise ValueError(f"d must be a power of two, not {d!r}")
        self._vectors, self._d = vectors, d
        self._reads = _names("read_ports", read_ports)
        self._writes = _names("write_ports", write_ports)
        members: dict[str, Any] = {}
        for n in self._reads:
            members[f"r_{n}"] = In(VrfReadSignature(vectors, d))
        for n in self._writes:
            members[f"w_{n}"] = In(VrfWriteSignature(vectors, d))
        super().__init__(members)

    @classmethod
    def from_core(cls, core: Any, **kw: Any) -> Vrf:
        """The VRF of a :class:`dfx.isa.config.CoreConfig` (``buffers.vrf_vectors``, d)."""
        return cls(core.buffers.vrf_vectors, core.d, **kw)

    @property
    def vectors(self) -> int:
        return self._vectors

    @property
    def d(self) -> int:
        return self._d

    @property
    def read_ports(self) -> tuple[str, ...]:
        return self._reads

    @property
    def write_ports(self) -> tuple[str, ...]:
        return self._writes

    @property
    def read_latency(self) -> int:
        """Cycles from a read's ``en`` to its ``data``."""
        return 1

    @property
    def copies(self) -> int:
        """Block-RAM copies of the vectors: one per (write port, read port) pair."""
        return len(self._writes) * len(self._reads)

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        width = 16 * self._d
        m.submodules.lvt = lvt = LiveValueTable(self._vectors, len(self._writes),
                                                len(self._reads))
        for k, n in enumerate(self._writes):
            port = getattr(self, f"w_{n}")
            m.d.comb += [getattr(lvt, f"w{k}_addr").eq(port.addr),
                         getattr(lvt, f"w{k}_en").eq(port.en)]
        for j, rn in enumerate(self._reads):
            rport = getattr(self, f"r_{rn}")
            m.d.comb += [getattr(lvt, f"r{j}_addr").eq(rport.addr),
                         getattr(lvt, f"r{j}_en").eq(rport.en)]
            outs = []
            for wn in self._writes:
                wport = getattr(self, f"w_{wn}")
                copy = Memory(shape=unsigned(width), depth=self._vectors, init=[],
                              attrs=ultra())
                m.submodules[f"copy_{wn}_{rn}"] = copy
                wp = copy.write_port()
                rp = copy.read_port()
                m.d.comb += [wp.addr.eq(wport.addr), wp.data.eq(wport.data),
                             wp.en.eq(wport.en), rp.addr.eq(rport.addr), rp.en.eq(rport.en)]
                outs.append(rp.data)
            data = Signal(width, name=f"{rn}_data")
            sel = getattr(lvt, f"r{j}_sel")
            if len(outs) == 1:
                m.d.comb += data.eq(outs[0])
            else:
                with m.Switch(sel):
                    for k, d in enumerate(outs):
                        with m.Case(k):
                            m.d.comb += data.eq(d)
            m.d.comb += rport.data.eq(data)
        return m
