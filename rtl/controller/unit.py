"""``ControlUnit``: the control unit of DFX §2.1 (controller + instruction buffer): the front end
(:class:`~dfx.rtl.frontend.frontend.Frontend`: loader, buffer, fetch, decode) and the
:class:`~.controller.Controller`. The scheduler/scoreboard is the issue stage (``rtl/issue``).

Ports (all ``sync``):

======================  ===  ==========================================================
``start``               in   the host's start (pulse): power-on state, load, run
``prog``, ``prog_words`` in   DDR-port byte address and length (256-bit words) of the program
``prog_cmd``            out  stream {``addr``, ``words``}: read the program
``prog_data``           in   stream of 256-bit words, in order
``issue``               out  stream of ``Resolved`` {``op``, ``pc``, ``word``, ``val[]``, ``limit``}
``mem_req``             out  stream {``write``, ``space``, ``addr``, ``wdata``} (lw/sw)
``mem_resp``            in   stream {``rdata``}: one per request, in order
``rd_write``            in   {``valid``, ``reg``, ``value``}: the core writes a vargmax result
``stop``                in   freeze (a fault elsewhere)
``fault``, ``fault_pc``,     out  the first fault of the loader or the controller (``Fault.OK``:
``fault_word``                    none); the loader's come first (nothing runs after them)
``halted``              out  ``halt`` executed
``idle``                out  no lw/sw or ALU result in flight
``loading``             out  the loader is busy
``running``             out  fetching (from ``first_fetch`` to halt or fault)
``first_fetch``         out  pulse in the first fetch cycle
``fire``, ``fire_pc``   out  the instruction at ``fire_pc`` executed / issued this cycle
======================  ===  ==========================================================

Cycle rules: :mod:`dfx.rtl.frontend.loader` (start to ``first_fetch``),
:mod:`dfx.rtl.frontend.fetch` (``branch_penalty``; instruction 0 can fire ``branch_penalty``
cycles after ``first_fetch``), :mod:`.controller` (when an instruction fires). The same figures
are read-only properties here.
"""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Module, Mux
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..core.faults import Fault
from ..frontend.frontend import Frontend
from ..frontend.loader import ADDR_BITS, prog_cmd_layout
from ..isa_layouts import WORD_BITS
from .controller import Controller, RdWriteSignature
from .memport import mem_req_layout, mem_resp_layout
from .resolve import resolved_layout

__all__ = ["ControlUnit"]


class ControlUnit(wiring.Component):
    """Front end + controller (module doc). Parameters as :class:`~.controller.Controller`;
    :meth:`from_core` takes them from a core configuration."""

    def __init__(self, *, words: int, issue_cycles: int, branch_penalty: int, int_latency: int,
                 loop_depth: int, hbm_bytes: int, ddr_bytes: int, mem_outstanding: int = 4):
        self.controller = Controller(
            words=words, issue_cycles=issue_cycles, branch_penalty=branch_penalty,
            int_latency=int_latency, loop_depth=loop_depth, hbm_bytes=hbm_bytes,
            ddr_bytes=ddr_bytes, mem_outstanding=mem_outstanding)
        self.frontend = Frontend(words, branch_penalty)
        self._words = words
        pcs = range(words + 1)
        super().__init__({
            "start": In(1),
            "prog": In(ADDR_BITS),
            "prog_words": In(64),
            "prog_cmd": Out(stream.Signature(prog_cmd_layout(words))),
            "prog_data": In(stream.Signature(WORD_BITS)),
            "issue": Out(stream.Signature(resolved_layout(words))),
            "mem_req": Out(stream.Signature(mem_req_layout(self.controller.addr_bits))),
            "mem_resp": In(stream.Signature(mem_resp_layout())),
            "rd_write": In(RdWriteSignature()),
            "stop": In(1),
            "fault": Out(Fault),
            "fault_pc": Out(pcs),
            "fault_word": Out(WORD_BITS),
            "halted": Out(1),
            "idle": Out(1),
            "loading": Out(1),
            "running": Out(1),
            "first_fetch": Out(1),
            "fire": Out(1),
            "fire_pc": Out(pcs),
        })

    @classmethod
    def from_core(cls, core: Any, **kw: Any) -> ControlUnit:
        b = core.b
        return cls(words=core.buffers.instruction_words, issue_cycles=core.timing.issue_cycles,
                   branch_penalty=core.timing.branch_penalty,
                   int_latency=core.timing.int_latency, loop_depth=core.control.loop_depth,
                   hbm_bytes=b.hbm.capacity_bytes, ddr_bytes=b.ddr.capacity_bytes, **kw)

    # -- cycle figures (docs: the modules named in the module doc) -----------------------------
    @property
    def words(self) -> int:
        """Instruction-buffer depth."""
        return self._words

    @property
    def branch_penalty(self) -> int:
        """Cycles lost after a redirect; also ``first_fetch`` to the first possible fire."""
        return self.frontend.branch_penalty

    @property
    def first_fire_delay(self) -> int:
        """Instruction 0 fires at ``first_fetch`` + this, at the earliest."""
        return self.frontend.branch_penalty

    @property
    def issue_cycles(self) -> int:
        return self.controller.issue_cycles

    @property
    def int_latency(self) -> int:
        return self.controller.int_latency

    @property
    def lw_result_delay(self) -> int:
        return self.controller.lw_result_delay

    @property
    def rd_write_delay(self) -> int:
        return self.controller.rd_write_delay

    @property
    def mem_outstanding(self) -> int:
        return self.controller.mem_outstanding

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        m.submodules.frontend = fe = self.frontend
        m.submodules.controller = ct = self.controller
        wiring.connect(m, fe.fetch, ct.fetch)
        for name in ("prog_cmd", "issue", "mem_req"):
            src = fe if name == "prog_cmd" else ct
            wiring.connect(m, wiring.flipped(getattr(self, name)), getattr(src, name))
        wiring.connect(m, wiring.flipped(self.prog_data), fe.prog_data)
        wiring.connect(m, wiring.flipped(self.mem_resp), ct.mem_resp)
        wiring.connect(m, wiring.flipped(self.rd_write), ct.rd_write)
        loader_fault = fe.fault != Fault.OK
        m.d.comb += [
            fe.start.eq(self.start), fe.prog.eq(self.prog), fe.prog_words.eq(self.prog_words),
            ct.start.eq(self.start), ct.stop.eq(self.stop),
            self.fault.eq(Mux(loader_fault, fe.fault, ct.fault)),
            self.fault_pc.eq(Mux(loader_fault, fe.fault_pc, ct.fault_pc)),
            self.fault_word.eq(Mux(loader_fault, fe.fault_word, ct.fault_word)),
            self.halted.eq(ct.halted), self.idle.eq(ct.idle),
            self.loading.eq(fe.loading), self.running.eq(fe.running),
            self.first_fetch.eq(fe.first_fetch),
            self.fire.eq(ct.fire), self.fire_pc.eq(ct.fire_pc),
        ]
        return m
