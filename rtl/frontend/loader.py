"""``Loader``: copies the program from DDR into the instruction buffer (docs/core.md "The
instruction's path", step 1).

Cycle by cycle, from the host's ``start`` pulse in cycle s (``prog``: the program's DDR-port
byte address, ``prog_words``: its length in 256-bit words, both sampled in cycle s):

* ``prog_words`` > ``words``: ``fault`` = ``PROGRAM_SIZE`` (pc 0, word 0) from s + 1; nothing
  is read.
* ``prog_words`` = 0: ``go`` in s + 1 (fetch then faults ``PC_RANGE`` at pc 0, as the
  functional simulator does).
* otherwise ``prog_cmd`` {``addr`` = prog, ``words`` = prog_words} is valid from s + 1 until
  taken; then every ``prog_data`` word (``ready`` is always high) is written to the buffer in
  order (``w_*``) and checked by :class:`~.decode.Legality`. In the cycle after the last word:
  ``go`` if every word is legal, else ``fault`` = the first illegal word's fault, ``fault_pc``
  its index, ``fault_word`` the word (the remaining words are still taken, so the memory
  system is left idle).

``busy`` is high from s + 1 to the last word (and in the ``go`` cycle). ``n_prog`` holds
``prog_words``. Without stalls, the first fetch is in cycle s + 3 + prog_words. ``start`` restarts
the loader from any state; the host gives it only while the core is idle.
"""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..core.faults import Fault
from ..isa_layouts import WORD_BITS
from .decode import Legality, check_positive

__all__ = ["ADDR_BITS", "Loader", "prog_cmd_layout"]

#: Width of the DDR-port byte address ``prog`` (a 64-bit kernel argument).
ADDR_BITS = 64


def prog_cmd_layout(words: int) -> data.StructLayout:
    """The program read request: ``addr`` (DDR-port byte address), ``words`` (256-bit words)."""
    return data.StructLayout({"addr": ADDR_BITS, "words": range(words + 1)})


class Loader(wiring.Component):
    """The program loader (module doc). Parameter ``words``: instruction-buffer depth."""

    def __init__(self, words: int):
        self._words = check_positive(words, "words")
        pcs = range(words + 1)
        super().__init__({
            "start": In(1),
            "prog": In(ADDR_BITS),
            "prog_words": In(64),
            "prog_cmd": Out(stream.Signature(prog_cmd_layout(words))),
            "prog_data": In(stream.Signature(WORD_BITS)),
            "w_en": Out(1),
            "w_addr": Out(range(max(words, 2))),
            "w_word": Out(WORD_BITS),
            "n_prog": Out(pcs),
            "go": Out(1),
            "busy": Out(1),
            "fault": Out(Fault),
            "fault_pc": Out(pcs),
            "fault_word": Out(WORD_BITS),
        })

    @property
    def words(self) -> int:
        return self._words

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        m.submodules.legal = legal = Legality()
        cmd, dat = self.prog_cmd, self.prog_data
        addr = Signal(ADDR_BITS)
        cnt = Signal(range(self._words + 1))
        bad = Signal(Fault)
        bad_pc = Signal(range(self._words + 1))
        bad_word = Signal(WORD_BITS)
        m.d.comb += [
            cmd.payload.addr.eq(addr), cmd.payload.words.eq(self.n_prog),
            self.w_addr.eq(cnt), self.w_word.eq(dat.payload), legal.word.eq(dat.payload),
        ]
        idle, cmd_s, data_s, end_s = range(4)
        state = Signal(range(4))
        with m.Switch(state):
            with m.Case(cmd_s):
                m.d.comb += [cmd.valid.eq(1), self.busy.eq(1)]
                with m.If(cmd.ready):
                    m.d.sync += state.eq(data_s)
            with m.Case(data_s):
                m.d.comb += [dat.ready.eq(1), self.busy.eq(1), self.w_en.eq(dat.valid)]
                # the first illegal word so far, this one included
                first = Signal(Fault)
                first_pc = Signal(range(self._words + 1))
                first_word = Signal(WORD_BITS)
                m.d.comb += [first.eq(bad), first_pc.eq(bad_pc), first_word.eq(bad_word)]
                with m.If((bad == Fault.OK) & (legal.fault != Fault.OK)):
                    m.d.comb += [first.eq(legal.fault), first_pc.eq(cnt),
                                 first_word.eq(dat.payload)]
                with m.If(dat.valid):
                    m.d.sync += [cnt.eq(cnt + 1), bad.eq(first), bad_pc.eq(first_pc),
                                 bad_word.eq(first_word)]
                    with m.If(cnt == self.n_prog - 1):
                        with m.If(first == Fault.OK):
                            m.d.sync += state.eq(end_s)
                        with m.Else():
                            m.d.sync += [self.fault.eq(first), self.fault_pc.eq(first_pc),
                                         self.fault_word.eq(first_word), state.eq(idle)]
            with m.Case(end_s):
                m.d.comb += [self.busy.eq(1), self.go.eq(1)]
                m.d.sync += state.eq(idle)
        with m.If(self.start):
            m.d.sync += [addr.eq(self.prog), cnt.eq(0), bad.eq(Fault.OK),
                         self.fault.eq(Fault.OK), self.fault_pc.eq(0), self.fault_word.eq(0)]
            with m.If(self.prog_words > self._words):
                m.d.sync += [self.fault.eq(Fault.PROGRAM_SIZE), state.eq(idle)]
            with m.Elif(self.prog_words == 0):
                m.d.sync += [self.n_prog.eq(0), state.eq(end_s)]
            with m.Else():
                m.d.sync += [self.n_prog.eq(self.prog_words), state.eq(cmd_s)]
        return m
