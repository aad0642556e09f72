"""``Fetch``: the instruction buffer and the fetch pipeline (DFX §2.1 control unit; docs/core.md
"The instruction's path", step 2).

The instruction buffer holds ``words`` 256-bit instruction words (``buffers.instruction_words``)
written by the loader (``w_*``), with a one-bit shadow per word (the word is an ``endloop``)
that :class:`~.decode.Predecode` reads asynchronously for ``loop``'s body check.

Pipeline (``P`` = ``branch_penalty`` >= 1 stages), all stalled together:

* fetch: while ``fetching``, pc ``fpc`` addresses the buffer's registered read port; the word
  and its pc enter stage 1 at the end of the cycle and ``fpc`` counts up (it stops at the
  program's end: an entry at ``pc >= n_prog`` is marked ``oor``, "outside the program");
* stage 1 -> stage P: :class:`~.decode.Predecode` on stage 1 (combinational), then ``P - 1``
  registers (``P`` = 2: the decode register);
* stage P is the X stage presented to the controller on ``fetch.x``.

Every stage advances when the X stage is empty or the controller takes it (``fetch.fire``).
``fetch.redirect`` (with ``fire``) loads ``fpc`` with ``fetch.target`` and empties every stage:
the target's word is in the X stage ``P`` cycles after the cycle after the redirect, i.e. an
instruction that redirects in cycle t is followed by its target in cycle t + 1 + ``P``:
``branch_penalty`` = P cycles lost, exactly. ``go`` (from the loader) starts fetching at pc 0
in the next cycle (``first_fetch``); instruction 0 is in the X stage ``P`` cycles after
``first_fetch`` (as if the start were a redirect to pc 0). ``fetch.stop`` (halt, fault) ends
fetching and empties the stages; ``start`` (the host's start) does too.
"""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Module, Signal
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..isa_layouts import WORD_BITS, Opcode
from ..uram_init import ultra
from .decode import Predecode, check_positive

__all__ = ["Fetch", "FetchSignature", "xstage_layout"]

_OPCODE_BITS = Opcode.as_shape().width


def xstage_layout(words: int) -> data.StructLayout:
    """The X stage: the instruction the controller executes or resolves."""
    pcs = range(words + 1)
    return data.StructLayout({
        "valid": 1,
        "pc": pcs,
        "oor": 1,  # pc >= n_prog: running past the program (PC_RANGE when executed)
        "word": WORD_BITS,
        "tgt": pcs,  # pc + target (ctrl format), valid when tgt_ok
        "tgt_ok": 1,
        "end": pcs,  # pc + body (ctrl format), valid when loop_ok
        "skip": pcs,  # end + 1
        "loop_ok": 1,  # body >= 1, end in the program, the word at end is an endloop
    })


class FetchSignature(wiring.Signature):
    """Front end -> controller, seen from the front end: ``x`` out; ``fire`` (the X stage's
    instruction is executed or issued this cycle), ``redirect`` + ``target`` (with ``fire``:
    continue at ``target``), ``stop`` (halt or fault: fetch no more) in."""

    def __init__(self, words: int):
        self.words = check_positive(words, "words")
        super().__init__({
            "x": Out(xstage_layout(words)),
            "fire": In(1),
            "redirect": In(1),
            "target": In(range(words + 1)),
            "stop": In(1),
        })

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FetchSignature) and other.words == self.words

    def __hash__(self) -> int:
        return hash((FetchSignature, self.words))


class Fetch(wiring.Component):
    """Instruction buffer + fetch pipeline (module doc). Parameters: ``words`` (buffer depth),
    ``branch_penalty`` (pipeline stages, >= 1)."""

    def __init__(self, words: int, branch_penalty: int):
        self._words = check_positive(words, "words")
        self._p = check_positive(branch_penalty, "branch_penalty")
        pcs = range(words + 1)
        super().__init__({
            "start": In(1),
            "go": In(1),
            "n_prog": In(pcs),
            "w_en": In(1),
            "w_addr": In(range(max(words, 2))),
            "w_word": In(WORD_BITS),
            "fetch": Out(FetchSignature(words)),
            "fetching": Out(1),
            "first_fetch": Out(1),
        })

    @classmethod
    def from_core(cls, core: Any) -> Fetch:
        return cls(core.buffers.instruction_words, core.timing.branch_penalty)

    @property
    def words(self) -> int:
        """Instruction-buffer depth (256-bit words)."""
        return self._words

    @property
    def branch_penalty(self) -> int:
        """Cycles lost by a redirect: the target follows its redirecting instruction
        ``1 + branch_penalty`` cycles later. Also the cycles from ``first_fetch`` to
        instruction 0 in the X stage."""
        return self._p

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        words, p, f = self._words, self._p, self.fetch
        m.submodules.buf = buf = Memory(shape=WORD_BITS, depth=words, init=[], attrs=ultra())
        m.submodules.ends = ends = Memory(shape=1, depth=words, init=[])
        wp, ewp = buf.write_port(), ends.write_port()
        rp, erp = buf.read_port(), ends.read_port(domain="comb")
        m.d.comb += [
            wp.addr.eq(self.w_addr), wp.data.eq(self.w_word), wp.en.eq(self.w_en),
            ewp.addr.eq(self.w_addr), ewp.en.eq(self.w_en),
            ewp.data.eq(self.w_word[:_OPCODE_BITS] == Opcode.ENDLOOP.value),
        ]

        layout = xstage_layout(words)
        fpc = Signal(range(words + 1))
        fetching = Signal()
        v1, pc1, oor1 = Signal(), Signal(range(words + 1)), Signal()
        stages = [Signal(layout, name=f"stage{i}") for i in range(2, p + 1)]
        x_valid = stages[-1].valid if stages else v1
        adv = ~x_valid | f.fire
        flush = f.redirect | f.stop | self.start

        # stage 1: the buffer's registered read and its pc
        m.d.comb += [rp.addr.eq(fpc), rp.en.eq(adv)]
        with m.If(adv):
            m.d.sync += [v1.eq(fetching & ~flush), pc1.eq(fpc), oor1.eq(fpc >= self.n_prog)]
            with m.If(fetching & (fpc < self.n_prog)):
                m.d.sync += fpc.eq(fpc + 1)
        m.submodules.predecode = pd = Predecode(words)
        m.d.comb += [
            pd.word.eq(rp.data), pd.pc.eq(pc1), pd.n_prog.eq(self.n_prog),
            erp.addr.eq(pd.end_addr), pd.end_is_endloop.eq(erp.data),
        ]
        s1 = Signal(layout)
        m.d.comb += [
            s1.valid.eq(v1), s1.pc.eq(pc1), s1.oor.eq(oor1), s1.word.eq(rp.data),
            s1.tgt.eq(pd.tgt), s1.tgt_ok.eq(pd.tgt_ok), s1.end.eq(pd.end), s1.skip.eq(pd.skip),
            s1.loop_ok.eq(pd.loop_ok),
        ]
        # stages 2..P: the decode register and any further delay
        prev = s1
        for st in stages:
            with m.If(adv):
                m.d.sync += [st.eq(prev), st.valid.eq(prev.valid & ~flush)]
            prev = st
        m.d.comb += f.x.eq(prev)
        with m.If(flush):
            m.d.sync += [v1.eq(0)] + [st.valid.eq(0) for st in stages]

        with m.If(f.fire & f.redirect):
            m.d.sync += fpc.eq(f.target)
        with m.If(f.stop | self.start):
            m.d.sync += fetching.eq(0)
        with m.If(self.go):
            m.d.sync += [fetching.eq(1), fpc.eq(0)]
        first = Signal()
        m.d.sync += first.eq(self.go)
        m.d.comb += [self.fetching.eq(fetching), self.first_fetch.eq(first)]
        return m
