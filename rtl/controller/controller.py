"""``Controller``: the X stage of the control unit (DFX §2.1; docs/core.md "The instruction's
path", step 3). It executes control and integer instructions itself and resolves the operands
of every other instruction before handing it to issue.

The instruction in the front end's X stage (``fetch.x``) **fires** in a cycle t when:

1. ``t >= f + issue_cycles + branch_penalty * redirect(f)`` for the previous firing cycle f
   (one instruction per ``issue_cycles``; a redirect costs ``branch_penalty``, see
   :mod:`dfx.rtl.frontend.fetch`);
2. none of its integer registers is pending: every register it reads (``INT_READS``) and the
   one it writes (``INT_DEST``). An ALU result is available ``int_latency`` cycles after its
   instruction fired; a ``lw`` result the cycle after its ``mem_resp`` arrived; a
   ``vargmax`` result the cycle after the core's ``rd_write``;
3. by kind:

   * ``nop``, ``halt``, ``loop``, ``endloop``, branches, ALU ops: always (once 1 and 2 hold);
   * ``lw``/``sw``: ``mem_req`` is taken in t (``mem_req.valid`` needs fewer than
     ``mem_outstanding`` requests in flight and, for ``lw``, no ``sw`` in flight);
   * every other instruction: ``issue`` is taken in t (``issue.valid`` from the first cycle 1
     and 2 allow). Issue's acceptance of a ``vargmax`` sets its ``rd`` pending.

A redirect (taken branch, ``endloop`` going back, ``loop`` with count 0 skipping its body) is
decided in the firing cycle. Faults are checked in the cycle the instruction would fire
(after 1 and 2), in the functional simulator's order (``Card._op_loop`` ...): ``PC_RANGE``
(running past the program; branch target), ``LOOP``, ``COUNT`` (negative count, also of issued
instructions; shift amount outside 0..63), ``SPACE``, ``ALIGN``, ``MEM_RANGE`` (lw/sw past HBM
= pseudo_channels x pc_capacity_bytes or DDR = channels x channel_capacity_bytes). A fault
fires nothing: ``fault``, ``fault_pc``, ``fault_word`` (0 past the program) hold it from
t + 1 and the controller stops. ``halt`` fires and stops it: ``halted`` from t + 1. ``stop``
(in) freezes it (the top asserts it for a fault found elsewhere, e.g. by issue, from the cycle
after issue accepted the faulting instruction at the latest). ``idle``: no lw/sw or ALU
result in flight. ``fire``/``fire_pc``: the instruction at ``fire_pc`` fired this cycle.
``start``: power-on state (registers 0, no loops, nothing pending), then run.
"""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..core.faults import Fault
from ..frontend.decode import check_positive
from ..frontend.fetch import FetchSignature
from ..isa_layouts import LAYOUTS, WORD_BITS, Opcode, Space
from .alu import ALU_OPS, IntAlu
from .loops import LoopStack
from .memport import WordPort, mem_req_layout, mem_resp_layout
from .regfile import INT_BITS, INT_COUNT, IntRegs
from .resolve import LIMIT, READ_PORTS, Resolve, resolved_layout

__all__ = ["Controller", "RdWriteSignature"]

_BRANCHES = (Opcode.JMP, Opcode.BEQ, Opcode.BNE, Opcode.BLT, Opcode.BGE)
_MEM_OPS = (Opcode.LW, Opcode.SW)
#: Memory spaces lw/sw may use (isa/spec.yaml ``lw``/``sw``: hbm or ddr).
WORD_SPACES = (Space.HBM, Space.DDR)


class RdWriteSignature(wiring.Signature):
    """The core writes an integer register (a ``vargmax`` result), seen from the writer:
    ``valid`` (one-cycle pulse), ``reg``, ``value``."""

    def __init__(self) -> None:
        super().__init__({"valid": Out(1), "reg": Out(range(INT_COUNT)), "value": Out(INT_BITS)})

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RdWriteSignature)

    def __hash__(self) -> int:
        return hash(RdWriteSignature)


class Controller(wiring.Component):
    """The controller (module doc).

    Parameters (``from_core`` reads them from the core configuration): ``words``
    (``buffers.instruction_words``), ``issue_cycles``, ``branch_penalty``, ``int_latency``
    (``timing.*``), ``loop_depth`` (``control.loop_depth``), ``hbm_bytes``, ``ddr_bytes`` (the
    board's memory sizes), ``mem_outstanding`` (lw/sw requests in flight, a design choice).
    """

    def __init__(self, *, words: int, issue_cycles: int, branch_penalty: int, int_latency: int,
                 loop_depth: int, hbm_bytes: int, ddr_bytes: int, mem_outstanding: int = 4):
        self._words = check_positive(words, "words")
        self._issue = check_positive(issue_cycles, "issue_cycles")
        self._p = check_positive(branch_penalty, "branch_penalty")
        self._lat = check_positive(int_latency, "int_latency")
        self._depth = check_positive(loop_depth, "loop_depth")
        self._hbm = check_positive(hbm_bytes, "hbm_bytes", 4)
        self._ddr = check_positive(ddr_bytes, "ddr_bytes", 4)
        self._outstanding = check_positive(mem_outstanding, "mem_outstanding")
        self._addr_bits = (max(hbm_bytes, ddr_bytes) - 1).bit_length()
        pcs = range(words + 1)
        super().__init__({
            "start": In(1),
            "stop": In(1),
            "fetch": In(FetchSignature(words)),
            "issue": Out(stream.Signature(resolved_layout(words))),
            "mem_req": Out(stream.Signature(mem_req_layout(self._addr_bits))),
            "mem_resp": In(stream.Signature(mem_resp_layout())),
            "rd_write": In(RdWriteSignature()),
            "halted": Out(1),
            "idle": Out(1),
            "fault": Out(Fault),
            "fault_pc": Out(pcs),
            "fault_word": Out(WORD_BITS),
            "fire": Out(1),
            "fire_pc": Out(pcs),
        })
        self.regs = IntRegs(read_ports=READ_PORTS, write_ports=("alu", "mem", "core"))

    @classmethod
    def from_core(cls, core: Any, **kw: Any) -> Controller:
        b = core.b
        return cls(words=core.buffers.instruction_words, issue_cycles=core.timing.issue_cycles,
                   branch_penalty=core.timing.branch_penalty,
                   int_latency=core.timing.int_latency, loop_depth=core.control.loop_depth,
                   hbm_bytes=b.hbm.capacity_bytes, ddr_bytes=b.ddr.capacity_bytes, **kw)

    # -- cycle figures (module doc) ------------------------------------------------------------
    @property
    def issue_cycles(self) -> int:
        """Cycles between two instructions firing, at least."""
        return self._issue

    @property
    def branch_penalty(self) -> int:
        """Extra cycles after an instruction that redirects fetch."""
        return self._p

    @property
    def int_latency(self) -> int:
        """An ALU result fired in cycle t is available in cycle t + int_latency."""
        return self._lat

    @property
    def lw_result_delay(self) -> int:
        """A lw result is available this many cycles after its ``mem_resp`` transfer."""
        return 1

    @property
    def rd_write_delay(self) -> int:
        """A ``rd_write`` in cycle t makes the value available in cycle t + rd_write_delay."""
        return 1

    @property
    def mem_outstanding(self) -> int:
        """lw/sw requests in flight at most."""
        return self._outstanding

    @property
    def loop_depth(self) -> int:
        return self._depth

    @property
    def addr_bits(self) -> int:
        """Width of ``mem_req.addr`` (the larger memory's byte addresses)."""
        return self._addr_bits

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        m.submodules.regs = regs = self.regs
        m.submodules.loops = loops = LoopStack(self._depth, self._words)
        m.submodules.port = port = WordPort(self._outstanding)
        m.submodules.alu = alu = IntAlu()
        m.submodules.resolve = res = Resolve()
        f, x = self.fetch, self.fetch.x
        op = Signal(Opcode)
        iv = data.View(LAYOUTS["int"], x.word)
        m.d.comb += [
            op.eq(x.word[:Opcode.as_shape().width]),
            res.word.eq(x.word),
            regs.r_idx.eq(res.r_idx),
            res.r_val.eq(regs.r_val),
        ]

        # ---- state ---------------------------------------------------------------------------
        run = Signal()
        cool_ok = Signal(init=1)
        wait = 0
        for j in range(READ_PORTS):
            wait = wait | regs.pending.bit_select(res.r_idx[j], 1)
        wait = wait | regs.pending.bit_select(res.dest, 1)
        ev = Signal()
        m.d.comb += ev.eq(x.valid & run & ~self.stop & cool_ok & (x.oor | ~wait))

        fault = Signal(Fault)
        fire, redirect, halt_now, alu_we = Signal(), Signal(), Signal(), Signal()
        target = Signal(range(self._words + 1))
        a, b = res.regs.rs1, res.regs.rs2
        addr = res.val[0].as_unsigned()  # lw/sw: mem = r{base} + off
        space = iv.mem_space
        mem_ok = ~port.full & ((op == Opcode.SW) | ~port.writes)

        with m.If(ev & x.oor):
            m.d.comb += fault.eq(Fault.PC_RANGE)
        with m.Elif(ev):
            with m.Switch(op):
                with m.Case(Opcode.NOP):
                    m.d.comb += fire.eq(1)
                with m.Case(Opcode.HALT):
                    m.d.comb += [fire.eq(1), halt_now.eq(1)]
                with m.Case(Opcode.LOOP):
                    with m.If(res.neg[0]):
                        m.d.comb += fault.eq(Fault.COUNT)
                    with m.Elif(~x.loop_ok):
                        m.d.comb += fault.eq(Fault.LOOP)
                    with m.Elif(res.val[0] == 0):
                        m.d.comb += [fire.eq(1), redirect.eq(1), target.eq(x.skip)]
                    with m.Elif(loops.full):
                        m.d.comb += fault.eq(Fault.LOOP)
                    with m.Else():
                        m.d.comb += [fire.eq(1), loops.push.eq(1)]
                with m.Case(Opcode.ENDLOOP):
                    with m.If(~loops.active | (x.pc != loops.top_end)):
                        m.d.comb += fault.eq(Fault.LOOP)
                    with m.Elif(loops.top_last):
                        m.d.comb += [fire.eq(1), loops.pop.eq(1)]
                    with m.Else():
                        m.d.comb += [fire.eq(1), loops.dec.eq(1), redirect.eq(1),
                                     target.eq(loops.top_start)]
                with m.Case(*_BRANCHES):
                    taken = Signal()
                    with m.Switch(op):
                        with m.Case(Opcode.JMP):
                            m.d.comb += taken.eq(1)
                        with m.Case(Opcode.BEQ):
                            m.d.comb += taken.eq(a == b)
                        with m.Case(Opcode.BNE):
                            m.d.comb += taken.eq(a != b)
                        with m.Case(Opcode.BLT):
                            m.d.comb += taken.eq(a.as_signed() < b.as_signed())
                        with m.Case(Opcode.BGE):
                            m.d.comb += taken.eq(a.as_signed() >= b.as_signed())
                    outside = (x.tgt < loops.top_start) | (x.tgt > loops.top_end)
                    with m.If(~taken):
                        m.d.comb += fire.eq(1)
                    with m.Elif(~x.tgt_ok):
                        m.d.comb += fault.eq(Fault.PC_RANGE)
                    with m.Elif(loops.active & outside):
                        m.d.comb += fault.eq(Fault.LOOP)
                    with m.Else():
                        m.d.comb += [fire.eq(1), redirect.eq(1), target.eq(x.tgt)]
                with m.Case(*ALU_OPS):
                    shift = (op == Opcode.SHLI) | (op == Opcode.SHRI)
                    with m.If(shift & alu.shift_bad):
                        m.d.comb += fault.eq(Fault.COUNT)
                    with m.Else():
                        m.d.comb += [fire.eq(1), alu_we.eq(1)]
                with m.Case(*_MEM_OPS):
                    cap = Mux(space == Space.HBM, self._hbm, self._ddr)
                    with m.If((space != Space.HBM) & (space != Space.DDR)):
                        m.d.comb += fault.eq(Fault.SPACE)
                    with m.Elif(addr[:2] != 0):
                        m.d.comb += fault.eq(Fault.ALIGN)
                    with m.Elif(addr + 4 > cap):
                        m.d.comb += fault.eq(Fault.MEM_RANGE)
                    with m.Else():
                        m.d.comb += [self.mem_req.valid.eq(mem_ok),
                                     fire.eq(mem_ok & self.mem_req.ready)]
                with m.Default():
                    with m.If(res.count_neg):
                        m.d.comb += fault.eq(Fault.COUNT)
                    with m.Else():
                        m.d.comb += [self.issue.valid.eq(1), fire.eq(self.issue.ready)]

        # ---- outputs to fetch, issue, memory --------------------------------------------------
        m.d.comb += [
            f.fire.eq(fire), f.redirect.eq(redirect), f.target.eq(target),
            f.stop.eq(~run | self.stop),
            self.fire.eq(fire), self.fire_pc.eq(x.pc),
            self.issue.payload.op.eq(op), self.issue.payload.pc.eq(x.pc),
            self.issue.payload.word.eq(x.word), self.issue.payload.val.eq(res.val),
            self.issue.payload.limit.eq(res.regs[LIMIT]),
            self.mem_req.payload.write.eq(op == Opcode.SW),
            self.mem_req.payload.space.eq(space),
            self.mem_req.payload.addr.eq(addr),
            self.mem_req.payload.wdata.eq(a),
            port.sent.eq(self.mem_req.valid & self.mem_req.ready),
            port.sent_write.eq(op == Opcode.SW),
            port.sent_rd.eq(iv.rd),
            loops.push_start.eq(x.pc + 1), loops.push_end.eq(x.end),
            loops.push_count.eq(res.val[0]),
            alu.op.eq(op), alu.a.eq(a), alu.b.eq(b), alu.imm.eq(iv.imm),
        ]
        wiring.connect(m, wiring.flipped(self.mem_resp), port.resp)
        wiring.connect(m, port.wb, regs.w_mem)
        m.d.comb += [
            regs.w_core.en.eq(self.rd_write.valid), regs.w_core.idx.eq(self.rd_write.reg),
            regs.w_core.value.eq(self.rd_write.value),
        ]

        # ---- integer results: claim (pending) and write --------------------------------------
        is_alu = Signal()
        m.d.comb += is_alu.eq(alu_we)
        late_alu = self._lat > 1
        claims = (op == Opcode.LW) | self.issue.valid | (is_alu if late_alu else 0)
        m.d.comb += [regs.claim_en.eq(fire & claims & (res.dest != 0)),
                     regs.claim_idx.eq(res.dest)]
        alu_busy = 0
        if not late_alu:
            m.d.comb += [regs.w_alu.en.eq(fire & alu_we), regs.w_alu.idx.eq(iv.rd),
                         regs.w_alu.value.eq(alu.result)]
        else:
            wl = data.StructLayout({"en": 1, "idx": range(INT_COUNT), "value": INT_BITS})
            line = [Signal(wl, name=f"alu_d{i}") for i in range(self._lat - 1)]
            m.d.sync += [line[0].en.eq(fire & alu_we), line[0].idx.eq(iv.rd),
                         line[0].value.eq(alu.result)]
            m.d.sync += [line[i].eq(line[i - 1]) for i in range(1, len(line))]
            m.d.comb += [regs.w_alu.en.eq(line[-1].en), regs.w_alu.idx.eq(line[-1].idx),
                         regs.w_alu.value.eq(line[-1].value)]
            for e in line:
                alu_busy = alu_busy | e.en
        m.d.comb += self.idle.eq(~port.busy & ~alu_busy)

        # ---- one instruction per issue_cycles, redirects cost branch_penalty -----------------
        if self._issue > 1:
            cool = Signal(range(self._issue + self._p))
            with m.If(fire):
                m.d.sync += cool.eq(self._issue - 1 + Mux(redirect, self._p, 0))
            with m.Elif(cool != 0):
                m.d.sync += cool.eq(cool - 1)
            m.d.comb += cool_ok.eq(cool == 0)
            with m.If(self.start):
                m.d.sync += cool.eq(0)

        # ---- halt, faults, start -------------------------------------------------------------
        with m.If(fire & halt_now):
            m.d.sync += [run.eq(0), self.halted.eq(1)]
        with m.If(fault != Fault.OK):
            m.d.sync += [run.eq(0), self.fault.eq(fault), self.fault_pc.eq(x.pc),
                         self.fault_word.eq(Mux(x.oor, 0, x.word))]
        m.d.comb += [regs.clear.eq(self.start), loops.clear.eq(self.start),
                     port.clear.eq(self.start)]
        with m.If(self.start):
            m.d.sync += [run.eq(1), self.halted.eq(0), self.fault.eq(Fault.OK),
                         self.fault_pc.eq(0), self.fault_word.eq(0)]
        return m
