"""``Scoreboard``: which VRF vectors are stale, DFX §2.1 ("stale bit set while a writing
instruction executes, valid bit at write-back"; a new instruction whose sources or destination
overlap an in-flight one waits: instruction chaining).

The VRF part is kept per instruction, not per vector: a table of in-flight **writers**
(``lo``, ``hi``, and ``cnt`` = how many of its vectors have been written: every unit writes an
instruction's vectors in address order) and a table of in-flight **readers** (``lo``, ``hi``).

* Chaining (:attr:`check`): vector ``v`` may be read in cycle t iff no writer entry other than
  the reader's own instruction covers ``v`` with ``v >= lo + cnt`` in cycle t. A unit that
  writes a vector in cycle t advances ``cnt`` at the end of t, so the vector is available from
  t + 1 (when the VRF returns the new contents).
* WAW (:attr:`waw_busy`): an instruction may not issue while an in-flight writer overlaps its
  destination; WAR (:attr:`war_busy`): nor while an in-flight reader overlaps it (readers are
  retired by their unit when they have read everything: the MPU keeps x until its tile stream
  ends).

A writer entry retires when its last vector is written; a reader entry when its unit says
``done``. Issue allocates at most one writer and two readers per cycle; when a table is full
issue waits (:attr:`w_full`, :attr:`r_full`).
"""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .ports import AdvanceSignature, CheckSignature, DoneSignature

__all__ = ["Scoreboard"]


def _check_names(kind: str, names: Any) -> tuple[str, ...]:
    names = tuple(names)
    if not all(isinstance(n, str) and n.isidentifier() for n in names) or len(set(names)) != len(
            names):
        raise ValueError(f"{kind} must be distinct identifiers, not {names!r}")
    return names


class Scoreboard(wiring.Component):
    """The VRF scoreboard (module doc).

    Parameters: ``vectors`` (VRF size), ``writers``, ``readers`` (table entries, >= 1),
    ``check_ports`` (names of the VRF read ports that check availability: ``check_<p>``, a
    :class:`~dfx.rtl.issue.ports.CheckSignature`), ``write_units`` (units that write vectors:
    ``adv_<u>``), ``read_units`` (units that retire readers: ``done_<u>``).
    """

    def __init__(self, vectors: int, *, writers: int, readers: int, check_ports: Any,
                 write_units: Any, read_units: Any):
        for name, v in (("vectors", vectors), ("writers", writers), ("readers", readers)):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, not {v!r}")
        self._vectors, self._nw, self._nr = vectors, writers, readers
        self._checks = _check_names("check_ports", check_ports)
        self._wunits = _check_names("write_units", write_units)
        self._runits = _check_names("read_units", read_units)
        va = range(vectors + 1)
        members: dict[str, Any] = {
            # allocation (issue)
            "alloc_w_en": In(1), "alloc_w_lo": In(va), "alloc_w_n": In(va),
            "alloc_w_idx": Out(range(writers)), "w_full": Out(1),
            "alloc_r0_en": In(1), "alloc_r0_lo": In(va), "alloc_r0_n": In(va),
            "alloc_r1_en": In(1), "alloc_r1_lo": In(va), "alloc_r1_n": In(va),
            "alloc_r0_idx": Out(range(readers)), "alloc_r1_idx": Out(range(readers)),
            "r_full": Out(1),
            # issue-time hazards of a destination range
            "dst_lo": In(va), "dst_n": In(va),
            "waw_busy": Out(1), "war_busy": Out(1),
            "empty": Out(1),
            "clear": In(1),
        }
        for p in self._checks:
            members[f"check_{p}"] = In(CheckSignature(vectors, writers))
        for u in self._wunits:
            members[f"adv_{u}"] = In(AdvanceSignature(writers))
        for u in self._runits:
            members[f"done_{u}"] = In(DoneSignature(readers))
        super().__init__(members)

    @property
    def writers(self) -> int:
        return self._nw

    @property
    def readers(self) -> int:
        return self._nr

    def elaborate(self, platform: Any) -> Module:  # noqa: C901 - one table each
        m = Module()
        nw, nr, va = self._nw, self._nr, range(self._vectors + 1)
        w_valid = Signal(nw)
        w_lo = [Signal(va, name=f"w{i}_lo") for i in range(nw)]
        w_hi = [Signal(va, name=f"w{i}_hi") for i in range(nw)]
        w_cnt = [Signal(va, name=f"w{i}_cnt") for i in range(nw)]
        r_valid = Signal(nr)
        r_lo = [Signal(va, name=f"r{i}_lo") for i in range(nr)]
        r_hi = [Signal(va, name=f"r{i}_hi") for i in range(nr)]

        # free entries: the lowest free writer, the two lowest free readers
        def first_free(valid: Signal, n: int, skip: Any = None) -> tuple[Signal, Signal]:
            idx = Signal(range(n))
            found = Signal()
            for i in reversed(range(n)):
                ok = ~valid[i] if skip is None else ~valid[i] & (skip != i)
                with m.If(ok):
                    m.d.comb += [idx.eq(i), found.eq(1)]
            return idx, found

        wi, wf = first_free(w_valid, nw)
        r0i, r0f = first_free(r_valid, nr)
        r1i, r1f = first_free(r_valid, nr, skip=r0i)
        m.d.comb += [
            self.alloc_w_idx.eq(wi), self.w_full.eq(~wf),
            self.alloc_r0_idx.eq(r0i), self.alloc_r1_idx.eq(r1i),
            self.r_full.eq(~r0f | ~r1f),
            self.empty.eq((w_valid == 0) & (r_valid == 0)),
        ]

        # destination hazards
        d_lo, d_hi = self.dst_lo, self.dst_lo + self.dst_n
        m.d.comb += [
            self.waw_busy.eq(Cat(*(w_valid[i] & (w_lo[i] < d_hi) & (w_hi[i] > d_lo)
                                   for i in range(nw))).any()),
            self.war_busy.eq(Cat(*(r_valid[i] & (r_lo[i] < d_hi) & (r_hi[i] > d_lo)
                                   for i in range(nr))).any()),
        ]

        # chaining checks
        for p in self._checks:
            port = getattr(self, f"check_{p}")
            v, own, has_own = port.v, port.own, port.has_own
            stale = [w_valid[i] & ~(has_own & (own == i)) & (w_lo[i] <= v) & (v < w_hi[i])
                     & (v - w_lo[i] >= w_cnt[i]) for i in range(nw)]
            m.d.comb += port.ok.eq(~Cat(*stale).any())

        # writer table: allocate, advance, retire
        for i in range(nw):
            adv = Cat(*(getattr(self, f"adv_{u}").en & (getattr(self, f"adv_{u}").idx == i)
                        for u in self._wunits)).any() if self._wunits else 0
            with m.If(self.alloc_w_en & wf & (wi == i)):
                m.d.sync += [w_valid[i].eq(self.alloc_w_n != 0), w_lo[i].eq(self.alloc_w_lo),
                             w_hi[i].eq(self.alloc_w_lo + self.alloc_w_n), w_cnt[i].eq(0)]
            with m.Elif(adv):
                m.d.sync += w_cnt[i].eq(w_cnt[i] + 1)
                with m.If(w_lo[i] + w_cnt[i] + 1 >= w_hi[i]):
                    m.d.sync += w_valid[i].eq(0)

        # reader table: allocate, retire
        for i in range(nr):
            done = Cat(*(getattr(self, f"done_{u}").en & (getattr(self, f"done_{u}").idx == i)
                         for u in self._runits)).any() if self._runits else 0
            a0 = self.alloc_r0_en & r0f & (r0i == i)
            a1 = self.alloc_r1_en & r1f & (r1i == i)
            with m.If(a0):
                m.d.sync += [r_valid[i].eq(self.alloc_r0_n != 0), r_lo[i].eq(self.alloc_r0_lo),
                             r_hi[i].eq(self.alloc_r0_lo + self.alloc_r0_n)]
            with m.Elif(a1):
                m.d.sync += [r_valid[i].eq(self.alloc_r1_n != 0), r_lo[i].eq(self.alloc_r1_lo),
                             r_hi[i].eq(self.alloc_r1_lo + self.alloc_r1_n)]
            with m.Elif(done):
                m.d.sync += r_valid[i].eq(0)

        with m.If(self.clear):
            m.d.sync += [w_valid.eq(0), r_valid.eq(0)]
        return m
