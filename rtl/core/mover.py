"""``VectorMover``: moves an instruction's vectors between the VRF and a stream, in
instruction order: the VRF side of the DMA instructions (DFX §2.2; the memory system got the
command at issue) and of the router's send and recv (DFX §2.1, the router issue builds the
ring behind the streams).

* A *writing* opcode (load, recv): the vectors arriving on ``load`` are written to
  ``base + i`` in the cycle they arrive (the scoreboard counts them);
* a *reading* opcode (store, store_t, send): the vectors ``base + i`` are read from the VRF,
  each no earlier than it is available (chaining), one per cycle, and offered on ``store``
  (the vector read in cycle r is offered in r + 1); the reader entry is retired with the
  last read;
* any other opcode the port is given (copy) moves nothing here.

Each opcode's base and count are resolved operands (``val[i]``): ``reads``/``writes`` map an
opcode to (base slot, count slot); counts are FP16 elements (``elements``: ceil(n/d) vectors)
or vectors.
"""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from dfx.rtl.issue.ports import AdvanceSignature, CheckSignature, DoneSignature
from dfx.rtl.vrf.vrf import VrfReadSignature, VrfWriteSignature

__all__ = ["STORE_SLOTS", "VectorMover"]

STORE_SLOTS = 4
"""Vectors read ahead of the memory system's store stream."""


class VectorMover(wiring.Component):
    """Vectors between the VRF and streams (module doc). ``reads``/``writes``: opcode ->
    (base slot, count slot); ``elements``: counts are FP16 elements (else vectors). Ports:
    ``cmd`` (in, issue commands), ``load`` (in: vectors to write), ``store`` (out: vectors
    read), ``rv`` (VRF read), ``w`` (VRF write), ``check``, ``adv``, ``done``, ``idle``,
    ``active`` (an instruction still has vectors to move) and its ``pc``."""

    def __init__(self, core: Any, cmd_layout: data.StructLayout, *, writers: int,
                 readers: int, reads: dict, writes: dict, elements: bool):
        self._core = core
        self._reads, self._writes, self._elements = dict(reads), dict(writes), elements
        v, d = core.buffers.vrf_vectors, core.d
        self._cmd_layout = cmd_layout
        vec = data.ArrayLayout(16, d)
        super().__init__({
            "cmd": In(stream.Signature(cmd_layout)),
            "load": In(stream.Signature(vec)),
            "store": Out(stream.Signature(vec)),
            "rv": Out(VrfReadSignature(v, d)),
            "w": Out(VrfWriteSignature(v, d)),
            "check": Out(CheckSignature(v, writers)),
            "adv": Out(AdvanceSignature(writers)),
            "done": Out(DoneSignature(readers)),
            "idle": Out(1),
            "active": Out(1),
            "pc": Out(cmd_layout["pc"].shape),
        })

    @property
    def store_slots(self) -> int:
        """Vectors read ahead of the ``store`` stream, at most."""
        return STORE_SLOTS

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        d = self._core.d
        m.submodules.sbuf = sbuf = SyncFIFO(width=16 * d, depth=STORE_SLOTS)
        cur = Signal(self._cmd_layout)
        left = Signal(32)  # vectors of the current instruction still to move
        is_load = Signal()
        is_store = Signal()
        base = Signal(64)
        with m.Switch(cur.op):
            for op, (b, _) in self._writes.items():
                with m.Case(op):
                    m.d.comb += [is_load.eq(1), base.eq(cur.val[b])]
            for op, (b, _) in self._reads.items():
                with m.Case(op):
                    m.d.comb += [is_store.eq(1), base.eq(cur.val[b])]
        pos = Signal(32)

        # store: read the sources with chaining
        src = base + pos
        m.d.comb += [self.check.v.eq(src), self.check.own.eq(cur.wid),
                     self.check.has_own.eq(0)]
        inflight = Signal()
        read = Signal()
        m.d.comb += read.eq(is_store & (left != 0) & (sbuf.level + inflight < STORE_SLOTS)
                            & self.check.ok)
        m.d.comb += [self.rv.addr.eq(src), self.rv.en.eq(read)]
        m.d.sync += inflight.eq(read)
        fresh = self.rv.data.as_value()
        have = sbuf.r_rdy | inflight
        m.d.comb += [
            self.store.valid.eq(have),
            self.store.payload.eq(Mux(sbuf.r_rdy, sbuf.r_data, fresh)),
            sbuf.r_en.eq(self.store.ready & sbuf.r_rdy),
            sbuf.w_en.eq(inflight & ~(self.store.ready & ~sbuf.r_rdy)), sbuf.w_data.eq(fresh),
            self.done.en.eq(read & (left == 1)), self.done.idx.eq(cur.rid0),
        ]

        # load: write what arrives
        got = is_load & (left != 0) & self.load.valid
        m.d.comb += [
            self.load.ready.eq(is_load & (left != 0)),
            self.w.en.eq(got), self.w.addr.eq(base + pos), self.w.data.eq(self.load.payload),
            self.adv.en.eq(got), self.adv.idx.eq(cur.wid),
        ]
        step = read | got
        with m.If(step):
            m.d.sync += [left.eq(left - 1), pos.eq(pos + 1)]

        # the next instruction
        p = self.cmd.payload
        count = Signal(64)
        with m.Switch(p.op):
            for op, (_, c) in {**self._reads, **self._writes}.items():
                with m.Case(op):
                    m.d.comb += count.eq(p.val[c])
        nv = (count + (d - 1)) >> (d.bit_length() - 1) if self._elements else count
        take = Signal()
        m.d.comb += [take.eq(self.cmd.valid & ((left == 0) | (step & (left == 1)))),
                     self.cmd.ready.eq(take)]
        with m.If(take):
            m.d.sync += [cur.eq(p), pos.eq(0), left.eq(nv)]
        m.d.comb += [self.idle.eq((left == 0) & ~have), self.active.eq(left != 0),
                     self.pc.eq(cur.pc)]
        return m
