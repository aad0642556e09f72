"""``ControlSlave``: the core's AXI4-Lite ``s_axi_control`` slave with Vitis ``ap_ctrl_hs``
semantics (docs/core.md "Control register map"; AMD UG1393; the register map is
:func:`.regmap.regmap`).

Behaviour, as XRT drives it (write the arguments, set ap_start, poll CTRL for ap_done or wait
for the interrupt):

* **start**: a host write of CTRL with bit 0 set (byte 0 strobed) sets ap_start. While
  ap_start is set, the core reports ``idle`` and no run is in progress, the slave pulses
  ``start`` for one cycle; that is also ap_ready (the core has taken its arguments): ap_start
  becomes auto_restart, the sticky ap_ready bit and ISR bit 1 (if IER bit 1) are set, and a
  run is in progress until ``done``.
* **done**: a ``done`` pulse during a run ends it and sets ap_done and ISR bit 0 (if IER bit
  0). ap_done and ap_ready are cleared when the host reads CTRL (the read returns them set);
  a done in the same cycle as the read wins.
* ap_idle (CTRL bit 2) = no run in progress and the core's ``idle``.
* auto_restart (bit 7) is written with byte 0 of any CTRL write; with it set, ap_start stays
  set after ap_ready and the core restarts as soon as it is idle again.
* GIE bit 0, IER bits 1..0 are plain registers; ISR bits toggle where a written 1 is (byte 0
  strobed), an event in the same cycle wins. ``interrupt`` = GIE & |(IER & ISR).
* arguments: read/write with byte strobes, offered to the core on ``prog_words``, ``prog``,
  ``ddr``, ``hbm[i]``, ``cards`` (XRT writes them only while the core is idle); status registers are
  read from the core's ``status``, ``error_pc``, ``cycles``, ``error_word`` inputs.

AXI4-Lite: the AW and W channels are independent one-entry buffers (``awready`` / ``wready``
high while empty), so AW before W, W before AW and both in one cycle all work; the register
write happens in the cycle after both are held (and no B is pending), ``bvalid`` follows in
the next cycle and is held until ``bready``. A read is taken when no R is pending
(``arready`` = not ``rvalid``); ``rdata`` is registered at the AR handshake, ``rvalid`` the
cycle after, held until ``rready``. Every valid/ready output comes from a register.
"""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from dfx.isa.config import CoreConfig

from ..bus.axi import RESP_OKAY, AxiLiteSignature
from .regmap import CTRL, GIE, IER, ISR, RegMap, regmap

__all__ = ["ControlSlave"]


class ControlSlave(wiring.Component):
    """The ``ap_ctrl_hs`` AXI4-Lite slave of one core (module doc).

    Parameter: ``regs``, the :class:`~.regmap.RegMap` (:meth:`from_core` computes it).

    Members: ``s_axi_control`` (``In(AxiLiteSignature)``), ``interrupt`` (out); to the core:
    ``start`` (pulse), ``prog_words``, ``cards`` (32), ``prog``, ``ddr`` (64), ``hbm`` (array
    of 64, one per pseudo-channel); from the core: ``done`` (pulse), ``idle`` (level), ``status``,
    ``error_pc`` (32), ``cycles`` (64), ``error_word`` (256).
    """

    def __init__(self, regs: RegMap):
        if not isinstance(regs, RegMap):
            raise TypeError(f"regs must be a RegMap (control.regmap.regmap(core)), not {regs!r}")
        self._regs = regs
        members: dict[str, Any] = {
            "s_axi_control": In(AxiLiteSignature(addr_width=regs.addr_width)),
            "interrupt": Out(1),
            "start": Out(1),
            "done": In(1),
            "idle": In(1),
            "prog_words": Out(regs["prog_words"].bits),
            "cards": Out(regs["cards"].bits),
            "prog": Out(regs["prog"].bits),
            "ddr": Out(regs["ddr"].bits),
            "hbm": Out(64).array(regs.pseudo_channels),
        }
        for r in regs.status:
            members[r.name] = In(r.bits)
        super().__init__(members)

    @classmethod
    def from_core(cls, core: CoreConfig) -> ControlSlave:
        return cls(regmap(core))

    @property
    def regs(self) -> RegMap:
        return self._regs

    @property
    def write_latency(self) -> int:
        """Cycles from the later of the AW / W handshakes to ``bvalid``."""
        return 2

    @property
    def read_latency(self) -> int:
        """Cycles from the AR handshake to ``rvalid``."""
        return 1

    @property
    def start_latency(self) -> int:
        """Cycles from the register write that sets ap_start to ``start`` (core idle)."""
        return 1

    def arg(self, name: str) -> Signal:
        """The output carrying argument ``name`` of the register map (``hbm03`` ->
        ``hbm[3]``)."""
        if name in self._regs.hbm_names:
            return self.hbm[int(name[3:])]
        if name in ("prog_words", "cards", "prog", "ddr"):
            return getattr(self, name)
        raise KeyError(f"no argument {name!r}")

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        bus = self.s_axi_control
        regs = self._regs
        aw = regs.addr_width

        # ---- ap_ctrl_hs state
        ap_start = Signal()
        ap_done = Signal()
        ap_ready = Signal()  # sticky, clear on read
        auto_restart = Signal()
        running = Signal()
        gie = Signal()
        ier = Signal(2)
        isr = Signal(2)
        ap_idle = ~running & self.idle
        take = ap_start & ~running & self.idle
        finish = self.done & running
        m.d.comb += [
            self.start.eq(take),
            self.interrupt.eq(gie & (ier & isr).any()),
        ]

        args = {r.name: Signal(r.bits, name=f"arg_{r.name}") for r in regs.args}
        m.d.comb += [
            self.prog_words.eq(args["prog_words"]),
            self.cards.eq(args["cards"]),
            self.prog.eq(args["prog"]),
            self.ddr.eq(args["ddr"]),
        ]
        for i, name in enumerate(regs.hbm_names):
            m.d.comb += self.hbm[i].eq(args[name])

        # ---- write channel: one-entry AW and W buffers, then the register write
        aw_full, w_full = Signal(), Signal()
        aw_addr = Signal(aw)
        w_data, w_strb = Signal(32), Signal(4)
        bvalid = Signal()
        m.d.comb += [
            bus.awready.eq(~aw_full),
            bus.wready.eq(~w_full),
            bus.bvalid.eq(bvalid),
            bus.bresp.eq(RESP_OKAY),
        ]
        with m.If(bus.awvalid & ~aw_full):
            m.d.sync += [aw_full.eq(1), aw_addr.eq(bus.awaddr)]
        with m.If(bus.wvalid & ~w_full):
            m.d.sync += [w_full.eq(1), w_data.eq(bus.wdata), w_strb.eq(bus.wstrb)]
        with m.If(bvalid & bus.bready):
            m.d.sync += bvalid.eq(0)
        do_write = aw_full & w_full & ~bvalid
        with m.If(do_write):
            m.d.sync += [aw_full.eq(0), w_full.eq(0), bvalid.eq(1)]
        wword = aw_addr[2:]
        wmask = Cat(*[w_strb[i].replicate(8) for i in range(4)])
        b0 = w_strb[0]

        def written(offset: int):
            return do_write & (wword == offset // 4)

        # ---- read channel
        ar_take = bus.arvalid & ~bus.rvalid
        rvalid, rdata = Signal(), Signal(32)
        m.d.comb += [
            bus.arready.eq(~rvalid),
            bus.rvalid.eq(rvalid),
            bus.rdata.eq(rdata),
            bus.rresp.eq(RESP_OKAY),
        ]
        with m.If(rvalid & bus.rready):
            m.d.sync += rvalid.eq(0)
        read_ctrl = ar_take & (bus.araddr[2:] == CTRL // 4)

        # ---- control registers (events win over host writes / clear-on-read)
        with m.If(take):
            m.d.sync += [ap_start.eq(auto_restart), running.eq(1)]
        with m.If(written(CTRL) & b0 & w_data[0]):
            m.d.sync += ap_start.eq(1)
        with m.If(written(CTRL) & b0):
            m.d.sync += auto_restart.eq(w_data[7])
        with m.If(finish):
            m.d.sync += running.eq(0)
        with m.If(finish):
            m.d.sync += ap_done.eq(1)
        with m.Elif(read_ctrl):
            m.d.sync += ap_done.eq(0)
        with m.If(take):
            m.d.sync += ap_ready.eq(1)
        with m.Elif(read_ctrl):
            m.d.sync += ap_ready.eq(0)
        with m.If(written(GIE) & b0):
            m.d.sync += gie.eq(w_data[0])
        with m.If(written(IER) & b0):
            m.d.sync += ier.eq(w_data[:2])
        events = Cat(finish & ier[0], take & ier[1])
        toggle = Mux(written(ISR) & b0, w_data[:2], 0)
        m.d.sync += isr.eq((isr ^ toggle) | events)

        for r in regs.args:
            for i, off in enumerate(r.word_offsets):
                part = args[r.name][32 * i: min(r.bits, 32 * i + 32)]
                with m.If(written(off)):
                    m.d.sync += part.eq((w_data & wmask) | (part & ~wmask))

        # ---- read mux (registered at the AR handshake)
        values = {
            CTRL: Cat(ap_start, ap_done, ap_idle, ap_ready, 0, 0, 0, auto_restart),
            GIE: gie,
            IER: ier,
            ISR: isr,
        }
        for r in regs.args:
            for i, off in enumerate(r.word_offsets):
                values[off] = args[r.name][32 * i: min(r.bits, 32 * i + 32)]
        for r in regs.status:
            src = getattr(self, r.name)
            for i, off in enumerate(r.word_offsets):
                values[off] = src[32 * i: min(r.bits, 32 * i + 32)]
        with m.If(ar_take):
            m.d.sync += rvalid.eq(1)
            with m.Switch(bus.araddr[2:]):
                for off, v in values.items():
                    with m.Case(off // 4):
                        m.d.sync += rdata.eq(v)
                with m.Default():
                    m.d.sync += rdata.eq(0)
        return m
