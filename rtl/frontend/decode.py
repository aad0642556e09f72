"""Instruction decode of the front end (docs/core.md "The instruction's path", step 2).

* :class:`Legality` checks one instruction word: an opcode ``isa/spec.yaml`` does not define
  is ``UNDEFINED_OPCODE``; a non-zero bit outside the instruction's used fields
  (``USED_MASK``: unused fields of its format and the reserved bits above it), or a used field
  holding a value its kind does not allow (``FIELD_RULES``, none in the current spec), is
  ``RESERVED_BITS`` ("a decoder rejects anything else"). Combinational. The loader runs it on
  every word as it arrives, so an illegal program faults before it runs, as in the functional
  simulator (which decodes the whole program first).
* :class:`Predecode` computes, from a word and its pc, what the controller needs to redirect
  fetch in the cycle it executes a ``loop`` or a branch (ctrl format, ``LAYOUTS["ctrl"]``):
  ``tgt = pc + target`` and whether it lies in the program, ``end = pc + body`` (the loop's
  ``endloop``), ``skip = end + 1`` (where a loop with count 0 continues) and ``loop_ok``:
  ``body >= 1``, ``end`` in the program and the word at ``end`` is an ``endloop`` (read from the
  instruction buffer's one-bit ``endloop`` shadow, an asynchronous read). Combinational; the
  fetch pipeline registers its outputs when ``branch_penalty`` >= 2.
"""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Const, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..core.faults import Fault
from ..isa_layouts import FIELD_RULES, LAYOUTS, USED_MASK, WORD_BITS, Opcode

__all__ = ["Legality", "Predecode", "check_positive"]

_OPCODE_BITS = Opcode.as_shape().width
_ALL = (1 << WORD_BITS) - 1


def check_positive(value: Any, name: str, lo: int = 1) -> int:
    """``value`` as an int >= ``lo``, or a ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise ValueError(f"{name} must be an integer >= {lo}, not {value!r}")
    return value


class Legality(wiring.Component):
    """``word`` in, ``fault`` out: ``OK``, ``UNDEFINED_OPCODE`` or ``RESERVED_BITS`` (module
    doc). Combinational."""

    def __init__(self) -> None:
        super().__init__({"word": In(WORD_BITS), "fault": Out(Fault)})

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        word = self.word
        with m.Switch(word[:_OPCODE_BITS]):
            for op in Opcode:
                with m.Case(op.value):
                    bad = (word & Const(_ALL & ~USED_MASK[op], WORD_BITS)).any()
                    for rule in FIELD_RULES[op]:
                        v = word[rule.lsb:rule.lsb + rule.width]
                        ok = (v >= rule.lo) & (v <= rule.hi)
                        if rule.codes is not None:
                            hit = Const(0, 1)
                            for c in rule.codes:
                                hit = hit | (v == c)
                            ok = ok & hit
                        bad = bad | ~ok
                    m.d.comb += self.fault.eq(Mux(bad, Fault.RESERVED_BITS, Fault.OK))
            with m.Default():
                m.d.comb += self.fault.eq(Fault.UNDEFINED_OPCODE)
        return m


class Predecode(wiring.Component):
    """Branch target and loop end of a ctrl-format word at ``pc`` (module doc).

    Parameter ``words``: instruction-buffer depth (pcs are ``range(words + 1)``). Ports:
    ``word``, ``pc``, ``n_prog`` (program length) in; ``end_addr`` out and ``end_is_endloop`` in
    (the shadow read); ``tgt``, ``tgt_ok``, ``end``, ``skip``, ``loop_ok`` out.
    """

    def __init__(self, words: int):
        self._words = check_positive(words, "words")
        pcs = range(words + 1)
        super().__init__({
            "word": In(WORD_BITS),
            "pc": In(pcs),
            "n_prog": In(pcs),
            "end_addr": Out(range(max(words, 2))),
            "end_is_endloop": In(1),
            "tgt": Out(pcs),
            "tgt_ok": Out(1),
            "end": Out(pcs),
            "skip": Out(pcs),
            "loop_ok": Out(1),
        })

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        ctrl = data.View(LAYOUTS["ctrl"], self.word)
        pcw = len(self.pc)
        tgt = Signal(range(-(1 << 24) - 1, (1 << pcw) + (1 << 24)))
        end = Signal(range((1 << pcw) + (1 << len(ctrl.body))))
        m.d.comb += [
            tgt.eq(self.pc + ctrl.target.as_signed()),
            self.tgt.eq(tgt),
            self.tgt_ok.eq((tgt >= 0) & (tgt < self.n_prog)),
            end.eq(self.pc + ctrl.body),
            self.end.eq(end),
            self.skip.eq(end + 1),
            self.end_addr.eq(end),
            self.loop_ok.eq((ctrl.body != 0) & (end < self.n_prog) & self.end_is_endloop),
        ]
        return m
