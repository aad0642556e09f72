"""``LiveValueTable``: which write port last wrote each vector of the VRF.

The VRF is built as a live-value-table multi-port memory (LaForest and Steffan, "Efficient
multi-ported memories for FPGAs", FPGA 2010): one copy of the vectors per (write port, read
port) pair, each a one-write one-read block RAM, and this table, ``depth`` entries of
``ceil(log2(writers))`` bits with every write and read port, saying whose copy holds the
live value. A write by port k of vector a sets entry a to k in the same cycle; a read returns
the entry one cycle after its ``en`` (held while ``en`` is low), aligned with the copies'
synchronous reads. A read in the cycle of a write to the same entry sees the old entry, as the
copies show the old vector (not transparent). Two ports writing one entry in the same cycle
never happens in the core (the scoreboard resolves WAW at issue).

**XOR form** (Abdelhadi and Lemieux, "Modular multi-ported SRAM-based memories", FPGA 2014):
a table with five write ports would be registers with a write decoder per port and a
4,096:1 multiplexer per read port (79 K LUT at dfx-u280 in Yosys). Instead each write port k
owns a table ``T_k`` with one write port, in LUT-RAM: writing vector a it stores
``k ^ (XOR of the other tables' entries a)``, read asynchronously in the same cycle, so that the
XOR of all tables' entries a is k until the next write of a. A read port XORs the tables'
entries and registers the result. Each table has one write and ``readers + writers - 1``
asynchronous read ports, which LUT-RAM provides by replication.
"""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Const, Module, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

__all__ = ["LiveValueTable"]


class LiveValueTable(wiring.Component):
    """``depth`` entries naming the last writer; ports ``w<k>_addr``/``w<k>_en`` for each of
    ``writers`` write ports, ``r<j>_addr``/``r<j>_en`` -> ``r<j>_sel`` (one cycle later) for
    each of ``readers`` read ports."""

    def __init__(self, depth: int, writers: int, readers: int):
        for name, v in (("depth", depth), ("writers", writers), ("readers", readers)):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, not {v!r}")
        self.depth, self.writers, self.readers = depth, writers, readers
        members: dict[str, Any] = {}
        for k in range(writers):
            members[f"w{k}_addr"] = In(range(depth))
            members[f"w{k}_en"] = In(1)
        for j in range(readers):
            members[f"r{j}_addr"] = In(range(depth))
            members[f"r{j}_en"] = In(1)
            members[f"r{j}_sel"] = Out(range(writers))
        super().__init__(members)

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        width = max(1, (self.writers - 1).bit_length())
        tables = []
        for k in range(self.writers):
            t = Memory(shape=unsigned(width), depth=self.depth, init=[])
            m.submodules[f"table{k}"] = t
            tables.append(t)
        # the write side: table k stores k ^ the other tables' entries at its address
        for k, t in enumerate(tables):
            others = [tables[v].read_port(domain="comb") for v in range(self.writers) if v != k]
            addr = getattr(self, f"w{k}_addr")
            value = Const(k, width)
            for rp in others:
                m.d.comb += rp.addr.eq(addr)
                value = value ^ rp.data
            wp = t.write_port()
            m.d.comb += [wp.addr.eq(addr), wp.data.eq(value),
                         wp.en.eq(getattr(self, f"w{k}_en"))]
        # the read side: the XOR of every table's entry, registered while en
        for j in range(self.readers):
            addr = getattr(self, f"r{j}_addr")
            sel = Const(0, width)
            for t in tables:
                rp = t.read_port(domain="comb")
                m.d.comb += rp.addr.eq(addr)
                sel = sel ^ rp.data
            out = Signal(width, name=f"r{j}_sel_q")
            with m.If(getattr(self, f"r{j}_en")):
                m.d.sync += out.eq(sel)
            m.d.comb += getattr(self, f"r{j}_sel").eq(out)
        return m
