"""``Issue``: in-order issue of the non-control instructions (DFX §2.1 scheduler + scoreboard).

The controller hands over one resolved instruction at a time (``ins``); issue accepts it in the
first cycle in which

* its operands are legal (:class:`~.plan.Plan`; otherwise it raises ``fault`` and stops),
* its scalar sources and destinations are not pending (RAW, WAW on the SRF; scalars are read
  in the cycle of issue and travel with the command, so there is no WAR on scalars),
* its VRF destination overlaps no in-flight writer (WAW) or reader (WAR) and the scoreboard has
  entries for it (:class:`~.scoreboard.Scoreboard`),
* its unit's command queue has room (``core.timing.unit_queue`` deep; the unit port holds the
  one executing), and the memory system takes its memory command (weights, bias, LUT-GEMM
  stream, DMA) in the same cycle, so memory sees transfers in issue order.

VRF *sources* are not checked here: the unit ports read every source vector no earlier than it
is available (chaining, per vector), so an instruction waiting for its data never holds up
independent instructions behind it. ``sli`` writes its scalar at issue (available the next
cycle). An instruction with nothing to do (a count of 0) is accepted and dropped.
"""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Cat, Module, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from dfx.rtl.bus.stream import RegFifo
from dfx.rtl.core.faults import Fault
from dfx.rtl.isa_layouts import LAYOUTS, RESOLVED_MAX, WORD_BITS, Opcode

from .plan import Plan, Unit, resolved_layout

__all__ = ["QUEUED_UNITS", "Issue", "command_layout"]

QUEUED_UNITS = ("mpu", "lut", "vpu", "dma", "tx", "rx")
"""Units with a command queue, in :class:`~.plan.Unit` order."""

_UNIT_ENUM = {"mpu": Unit.MPU, "lut": Unit.LUT, "vpu": Unit.VPU, "dma": Unit.DMA,
              "tx": Unit.TX, "rx": Unit.RX}


def command_layout(core: Any, writers: int, readers: int) -> data.StructLayout:
    """A unit's command: the resolved instruction, its scalar operands read at issue (``s0``,
    ``s1``) and its scoreboard entries (``wid`` writer, ``rid0``/``rid1`` readers)."""
    from amaranth.hdl import signed

    return data.StructLayout({
        "op": Opcode,
        "pc": unsigned(max(1, (core.buffers.instruction_words - 1).bit_length())),
        "word": unsigned(WORD_BITS),
        "val": data.ArrayLayout(signed(64), RESOLVED_MAX),
        "limit": signed(64),
        "s0": unsigned(32),
        "s1": unsigned(32),
        "wid": range(writers),
        "rid0": range(readers),
        "rid1": range(readers),
    })


class Issue(wiring.Component):
    """In-order issue (module doc). Parameters: the core configuration; ``writers``,
    ``readers``: the scoreboard's table sizes.

    Ports: ``ins`` (in stream, :func:`~.plan.resolved_layout`); ``cards``; one out stream per
    unit in :data:`QUEUED_UNITS` (:func:`command_layout`); ``mem`` (out stream of the same
    commands for the memory system, for instructions that use memory); the scoreboard's
    allocation and destination-hazard ports (``sb_*``); the SRF's claim, pending, two read
    ports and the ``sli`` write port (``srf_*``); ``fault`` (+ ``fault_pc``, ``fault_word``:
    held from the faulting instruction on); ``idle`` (every queue empty); ``clear`` (start).
    """

    def __init__(self, core: Any, *, writers: int, readers: int):
        self._core = core
        self._writers, self._readers = writers, readers
        self._depth = core.timing.unit_queue
        n_srf = core.buffers.srf_scalars
        v = core.buffers.vrf_vectors
        va = range(v + 1)
        cmd = command_layout(core, writers, readers)
        self._cmd = cmd
        members: dict[str, Any] = {
            "ins": In(stream.Signature(resolved_layout(core))),
            "cards": In(8),
            "mem": Out(stream.Signature(cmd)),
            # scoreboard
            "sb_alloc_w_en": Out(1), "sb_alloc_w_lo": Out(va), "sb_alloc_w_n": Out(va),
            "sb_alloc_w_idx": In(range(writers)), "sb_w_full": In(1),
            "sb_alloc_r0_en": Out(1), "sb_alloc_r0_lo": Out(va), "sb_alloc_r0_n": Out(va),
            "sb_alloc_r1_en": Out(1), "sb_alloc_r1_lo": Out(va), "sb_alloc_r1_n": Out(va),
            "sb_alloc_r0_idx": In(range(readers)), "sb_alloc_r1_idx": In(range(readers)),
            "sb_r_full": In(1),
            "sb_dst_lo": Out(va), "sb_dst_n": Out(va),
            "sb_waw_busy": In(1), "sb_war_busy": In(1),
            # scalar register file
            "srf_pending": In(n_srf),
            "srf_r0_idx": Out(range(n_srf)), "srf_r0_value": In(32),
            "srf_r1_idx": Out(range(n_srf)), "srf_r1_value": In(32),
            "srf_claim_en": Out(1), "srf_claim_lo": Out(range(n_srf)),
            "srf_claim_count": Out(range(256)),
            "srf_sli_en": Out(1), "srf_sli_idx": Out(range(n_srf)), "srf_sli_value": Out(32),
            # status
            "fault": Out(Fault), "fault_pc": Out(cmd["pc"].shape),
            "fault_word": Out(WORD_BITS),
            "idle": Out(1),
            "clear": In(1),
        }
        for u in QUEUED_UNITS:
            members[u] = Out(stream.Signature(cmd))
        super().__init__(members)

    @property
    def queue_depth(self) -> int:
        """Commands waiting per unit (``timing.unit_queue``), besides the one executing."""
        return self._depth

    @property
    def queue_latency(self) -> int:
        """Cycles from a command's push (its issue) to the unit port seeing it (a
        :class:`~dfx.rtl.bus.stream.RegFifo`; its room is registered: a slot freed by the
        port's take in cycle t can be pushed in t + 1)."""
        q = RegFifo(1, 1)
        q._MustUse__used = True  # built for its figure only
        return q.latency

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        core = self._core
        n_srf = core.buffers.srf_scalars
        m.submodules.plan = plan = Plan(core)
        p = self.ins.payload
        m.d.comb += [plan.ins.eq(p), plan.cards.eq(self.cards)]

        # per-unit command queues (the unit port holds the one executing)
        queues = {}
        for u in QUEUED_UNITS:
            if self._depth:
                q = RegFifo(self._cmd.size, self._depth)
                m.submodules[f"q_{u}"] = q
                port = getattr(self, u)
                m.d.comb += [port.payload.eq(q.r_data), port.valid.eq(q.r_rdy),
                             q.r_en.eq(port.ready)]
                queues[u] = (q.w_rdy, q.w_en, q.w_data, q.level != 0)
            else:
                port = getattr(self, u)
                queues[u] = (port.ready, port.valid, port.payload, port.valid)

        # scalar operands and hazards
        m.d.comb += [self.srf_r0_idx.eq(plan.sread0_idx), self.srf_r1_idx.eq(plan.sread1_idx)]
        pend = self.srf_pending
        claim_hit = Cat(*(pend[i] & (i >= plan.sclaim_lo) & (i < plan.sclaim_lo + plan.sclaim_n)
                          for i in range(n_srf))).any()
        srf_ok = ~((plan.sread0_en & pend.bit_select(plan.sread0_idx, 1))
                   | (plan.sread1_en & pend.bit_select(plan.sread1_idx, 1))
                   | (plan.sclaim_en & claim_hit))

        # VRF destination hazards and table space
        m.d.comb += [self.sb_dst_lo.eq(plan.dst_lo), self.sb_dst_n.eq(plan.dst_n)]
        vrf_ok = ~(plan.dst_en & (self.sb_waw_busy | self.sb_war_busy | self.sb_w_full)) & ~(
            (plan.src0_en | plan.src1_en) & self.sb_r_full)

        # the unit and memory system take it
        unit_ok = Signal()
        uses_mem = Signal()
        with m.Switch(plan.unit):
            for u in QUEUED_UNITS:
                with m.Case(_UNIT_ENUM[u]):
                    m.d.comb += unit_ok.eq(queues[u][0])
            with m.Default():
                m.d.comb += unit_ok.eq(1)
        mat = data.View(LAYOUTS["mat"], p.word)
        with m.Switch(p.op):
            with m.Case(Opcode.CONV1D, Opcode.MASKEDMM, Opcode.MM, Opcode.LUTMV):
                m.d.comb += uses_mem.eq(1)
            with m.Case(Opcode.LOAD, Opcode.STORE, Opcode.STORE_T, Opcode.COPY):
                m.d.comb += uses_mem.eq(plan.unit == Unit.DMA)
        _ = mat

        stopped = Signal()
        faulty = self.ins.valid & (plan.fault != Fault.OK)
        accept = Signal()
        m.d.comb += [
            accept.eq(self.ins.valid & ~stopped & (plan.fault == Fault.OK) & srf_ok & vrf_ok
                      & unit_ok & (~uses_mem | self.mem.ready)),
            self.ins.ready.eq(accept),
        ]

        # the command
        cmd = Signal(self._cmd)
        m.d.comb += [
            cmd.op.eq(p.op), cmd.pc.eq(p.pc), cmd.word.eq(p.word), cmd.limit.eq(p.limit),
            cmd.s0.eq(self.srf_r0_value), cmd.s1.eq(self.srf_r1_value),
            cmd.wid.eq(self.sb_alloc_w_idx), cmd.rid0.eq(self.sb_alloc_r0_idx),
            cmd.rid1.eq(self.sb_alloc_r1_idx),
        ]
        m.d.comb += [cmd.val[i].eq(p.val[i]) for i in range(RESOLVED_MAX)]
        for u in QUEUED_UNITS:
            _, w_en, w_data, _ = queues[u]
            m.d.comb += [w_data.eq(cmd), w_en.eq(accept & (plan.unit == _UNIT_ENUM[u]))]
        m.d.comb += [self.mem.payload.eq(cmd), self.mem.valid.eq(accept & uses_mem)]

        # scoreboard allocation, scalar claims, sli
        m.d.comb += [
            self.sb_alloc_w_en.eq(accept & plan.dst_en),
            self.sb_alloc_w_lo.eq(plan.dst_lo), self.sb_alloc_w_n.eq(plan.dst_n),
            self.sb_alloc_r0_en.eq(accept & plan.src0_en),
            self.sb_alloc_r0_lo.eq(plan.src0_lo), self.sb_alloc_r0_n.eq(plan.src0_n),
            self.sb_alloc_r1_en.eq(accept & plan.src1_en),
            self.sb_alloc_r1_lo.eq(plan.src1_lo), self.sb_alloc_r1_n.eq(plan.src1_n),
            self.srf_claim_en.eq(accept & plan.sclaim_en & (plan.unit != Unit.SLI)),
            self.srf_claim_lo.eq(plan.sclaim_lo), self.srf_claim_count.eq(plan.sclaim_n),
        ]
        scal = data.View(LAYOUTS["scal"], p.word)
        m.d.comb += [
            self.srf_sli_en.eq(accept & (plan.unit == Unit.SLI)),
            self.srf_sli_idx.eq(scal.sd), self.srf_sli_value.eq(scal.imm),
        ]

        # faults stop issue until the next start
        with m.If(faulty & ~stopped):
            m.d.sync += [stopped.eq(1), self.fault.eq(plan.fault), self.fault_pc.eq(p.pc),
                         self.fault_word.eq(p.word)]
        with m.If(self.clear):
            m.d.sync += [stopped.eq(0), self.fault.eq(Fault.OK)]

        m.d.comb += self.idle.eq(Cat(*(~queues[u][3] for u in QUEUED_UNITS)).all())
        return m
