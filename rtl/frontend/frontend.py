"""``Frontend``: program loader + instruction buffer + fetch/decode (docs/core.md "The
instruction's path", steps 1 and 2). Cycle rules: :mod:`.loader` and :mod:`.fetch`.

Ports: ``start``, ``prog``, ``prog_words`` in (from the control registers); ``prog_cmd`` out and
``prog_data`` in (the DDR read of the program); ``fetch`` (:class:`~.fetch.FetchSignature`) to
the controller; ``fault``, ``fault_pc``, ``fault_word`` (loader faults: ``PROGRAM_SIZE``,
``UNDEFINED_OPCODE``, ``RESERVED_BITS``); ``loading``; ``running`` (fetching: from
``first_fetch`` until the controller stops it) and ``first_fetch`` (a pulse in the first fetch
cycle; the core counts its cycles from there).
"""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..core.faults import Fault
from ..isa_layouts import WORD_BITS
from .decode import check_positive
from .fetch import Fetch, FetchSignature
from .loader import ADDR_BITS, Loader, prog_cmd_layout

__all__ = ["Frontend"]


class Frontend(wiring.Component):
    """Loader, instruction buffer, fetch and decode. Parameters: ``words``
    (``buffers.instruction_words``), ``branch_penalty`` (``timing.branch_penalty``)."""

    def __init__(self, words: int, branch_penalty: int):
        self._words = check_positive(words, "words")
        self._p = check_positive(branch_penalty, "branch_penalty")
        pcs = range(words + 1)
        super().__init__({
            "start": In(1),
            "prog": In(ADDR_BITS),
            "prog_words": In(64),
            "prog_cmd": Out(stream.Signature(prog_cmd_layout(words))),
            "prog_data": In(stream.Signature(WORD_BITS)),
            "fetch": Out(FetchSignature(words)),
            "fault": Out(Fault),
            "fault_pc": Out(pcs),
            "fault_word": Out(WORD_BITS),
            "loading": Out(1),
            "running": Out(1),
            "first_fetch": Out(1),
        })

    @classmethod
    def from_core(cls, core: Any) -> Frontend:
        return cls(core.buffers.instruction_words, core.timing.branch_penalty)

    @property
    def words(self) -> int:
        return self._words

    @property
    def branch_penalty(self) -> int:
        """See :attr:`.fetch.Fetch.branch_penalty`."""
        return self._p

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        m.submodules.loader = ld = Loader(self._words)
        m.submodules.fetch = fe = Fetch(self._words, self._p)
        wiring.connect(m, wiring.flipped(self.prog_cmd), ld.prog_cmd)
        wiring.connect(m, wiring.flipped(self.prog_data), ld.prog_data)
        wiring.connect(m, wiring.flipped(self.fetch), fe.fetch)
        m.d.comb += [
            ld.start.eq(self.start), ld.prog.eq(self.prog), ld.prog_words.eq(self.prog_words),
            fe.start.eq(self.start), fe.go.eq(ld.go), fe.n_prog.eq(ld.n_prog),
            fe.w_en.eq(ld.w_en), fe.w_addr.eq(ld.w_addr), fe.w_word.eq(ld.w_word),
            self.fault.eq(ld.fault), self.fault_pc.eq(ld.fault_pc),
            self.fault_word.eq(ld.fault_word),
            self.loading.eq(ld.busy), self.running.eq(fe.fetching),
            self.first_fetch.eq(fe.first_fetch),
        ]
        return m
