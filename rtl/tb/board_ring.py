"""The board testbench's clocks and ``BoardRingTop``: N Alveo kernels in a ring for the
multi-card Verilator testbench (issue 13: the RTL backend through the board tops).

Clocks: ``ap_clk`` is the core's (the testbench's ``period_ns``), ``ap_clk_2`` the link clock
of the kernel project (:func:`dfx.rtl.router.link.link_clock_mhz`: 76 MHz for the tiny
core's 100 MHz, 190 MHz for dfx-u280's 200 MHz), at the same ratio (:func:`link_period_ps`),
so the kernel's clock-domain crossings run between two unrelated clocks as on the board.

Each card is an instance of the one-card module :data:`BOARD_TOP`
(:class:`~.board_top.BoardTestTop`: a kernel with its router and crossings, and the card's
memories; generated once per core configuration). The ring top joins the cards' QSFP streams
as cables do (card c's ``qsfp0`` to card c + 1's ``qsfp1``) through
:class:`~.link_model.LinkModel`\\ s in the link clock domain: data link 2c carries card c's
``qsfp0_tx`` to card c + 1's ``qsfp1_rx``, credit link 2c + 1 card c + 1's ``qsfp1_tx`` to
card c's ``qsfp0_rx`` (the router's directions, :func:`dfx.rtl.router.connect_ring`). Their
rate is the link's in link-clock cycles (:func:`link_rate`), their latency (1 ..
:data:`~.ring_top.MAX_LINK_LATENCY` link cycles) and TREADY stall threshold run-time inputs
(:func:`board_link_settings`).

Ports: ``ap_clk``, ``ap_rst_n``, ``ap_clk_2``, ``ap_rst_n_2`` (shared), ``ring_error``
(sticky: a router's receive FIFO overflowed, a link model's queue filled, or a beat reached a
kernel whose receive crossing was full — lost, as on Aurora's receive side; never),
``linkKK_latency`` / ``linkKK_threshold``, then every other port of the card module prefixed
``cardNN_`` (as :class:`~.ring_top.RingTestTop`).
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

from amaranth.back import verilog
from amaranth.hdl import Cat, ClockDomain, DomainRenamer, Elaboratable, Instance, Module, Signal
from amaranth.hdl._ir import PortDirection

from dfx.isa.config import CoreConfig
from dfx.rtl.board.top import AP_CLK_2, AP_RST_N_2, qsfp_name
from dfx.rtl.bus.vitis import AP_CLK, AP_RST_N, VitisPort
from dfx.rtl.router.link import beat_cycles, link_bits

from .board_top import ROUTER_OVERFLOW
from .link_model import STALL_BITS, LinkModel
from .ring_top import (
    LINK_SEED,
    MAX_LINK_LATENCY,
    RING_ERROR,
    card_prefix,
    link_prefix,
    link_settings,
    module_ports,
    ring_ports,
)

__all__ = ["BOARD_RING_TOP", "BOARD_TOP", "BoardRingTop", "board_link_settings",
           "board_ring_verilog", "link_mhz", "link_period_ps", "link_rate", "link_wire_cycles"]

#: The one-card board testbench's module.
BOARD_TOP = "dfx_board_tb"
#: The multi-card board testbench's top module.
BOARD_RING_TOP = "dfx_board_ring_tb"
#: The card module's ports the ring top joins (not top ports).
LINK_PORTS = (AP_CLK_2, AP_RST_N_2)


def _exact(x: float | int) -> Fraction:
    """A configuration number as the exact fraction of its decimal text."""
    return Fraction(str(x)) if isinstance(x, float) else Fraction(x)


def link_mhz(core: CoreConfig) -> int:
    """The kernel's link clock (``ap_clk_2``) in MHz, as ``dfx build`` sets it."""
    from dfx.rtl.router.link import link_clock_mhz

    return link_clock_mhz(core, link_bits(core))


def link_period_ps(core: CoreConfig, period_ns: int) -> int:
    """The testbench's ``ap_clk_2`` period (ps, even) for an ``ap_clk`` of ``period_ns``: the
    board's ratio of the two clocks."""
    ps = Fraction(period_ns * 1000) * _exact(core.clock_mhz) / link_mhz(core)
    return 2 * max(1, round(ps / 2))


def link_rate(core: CoreConfig) -> Fraction:
    """Link-clock cycles one link beat occupies the link (>= 1: the link clock is the lowest
    whole MHz that carries the payload rate in one beat per cycle)."""
    return beat_cycles(core) * link_mhz(core) / _exact(core.clock_mhz)


def link_wire_cycles(core: CoreConfig) -> int:
    """Whole link-clock cycles of the link layer and cable."""
    q = core.b.qsfp
    return math.ceil((_exact(q.link_latency_ns) + _exact(q.cable_delay_ns)) * link_mhz(core)
                     / 1000)


def board_link_settings(core: CoreConfig, cards: int,
                        latencies: tuple[int, ...] | None = None,
                        stall_prob: float = 0.0) -> list[tuple[int, int]]:
    """(latency in link cycles, stall threshold) per link of the board ring: the board's
    (:func:`link_wire_cycles`) unless ``latencies`` (:func:`~.ring_top.link_settings`)."""
    if latencies is None:
        latencies = (link_wire_cycles(core),) * (2 * cards)
    return link_settings(core, cards, latencies, stall_prob)


def _qsfp_ports(links: int) -> set[str]:
    return {f"{qsfp_name(p)}_{d}_{s}" for p in range(links) for d in ("tx", "rx")
            for s in ("tdata", "tvalid", "tready")}


class BoardRingTop(Elaboratable):
    """``cards`` instances of the board card module ``card_module`` in a ring (module doc)."""

    def __init__(self, core: CoreConfig, cards: int, *, card_module: str,
                 card_ports: list[VitisPort]):
        if not isinstance(cards, int) or isinstance(cards, bool) or not 2 <= cards <= 64:
            raise ValueError(f"cards must be an integer 2..64 (one card needs no ring), "
                             f"not {cards!r}")
        self.core, self.cards, self.card_module = core, cards, card_module
        qsfp = _qsfp_ports(2)
        self.qsfp_width = {p.name: p.width for p in card_ports if p.name in qsfp}
        if set(self.qsfp_width) != qsfp:
            raise ValueError(f"module {card_module} lacks the QSFP ports "
                             f"{sorted(qsfp - set(self.qsfp_width))}")
        self.card_ports = [p for p in card_ports
                           if p.name not in (AP_CLK, AP_RST_N, *LINK_PORTS) and p.name not in qsfp]
        self.ring_error = Signal(name=RING_ERROR)
        rate = link_rate(core)
        self.links = [LinkModel(core, link_wire_cycles(core), 0.0, LINK_SEED + k, rate=rate,
                                max_latency=MAX_LINK_LATENCY) for k in range(2 * cards)]
        self.link_latency = [Signal(range(MAX_LINK_LATENCY + 1), name=link_prefix(k) + "latency")
                             for k in range(2 * cards)]
        self.link_threshold = [Signal(STALL_BITS + 1, name=link_prefix(k) + "threshold")
                               for k in range(2 * cards)]
        self.clk = {n: Signal(name=n, init=int(n in (AP_RST_N, AP_RST_N_2)))
                    for n in (AP_CLK, AP_RST_N, AP_CLK_2, AP_RST_N_2)}
        self.sigs = [{p.name: Signal(p.width, name=card_prefix(c) + p.name)
                      for p in self.card_ports} for c in range(cards)]

    def ports(self) -> dict[str, tuple[Any, PortDirection]]:
        """``ports=`` of :func:`amaranth.back.verilog.convert` (module doc's order)."""
        return ring_ports(self, self.clk)

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        # the link models' domain: ap_clk_2, its reset through a flip-flop (as in the card)
        m.domains.link = cd = ClockDomain("link", local=True)
        rst_q = Signal(init=1, reset_less=True)
        m.domains.link_rst = lr = ClockDomain("link_rst", local=True, reset_less=True)
        m.d.comb += [lr.clk.eq(self.clk[AP_CLK_2]), cd.clk.eq(self.clk[AP_CLK_2]),
                     cd.rst.eq(rst_q)]
        m.d.link_rst += rst_q.eq(~self.clk[AP_RST_N_2])
        m.domains.sync = sd = ClockDomain("sync", local=True)
        m.d.comb += [sd.clk.eq(self.clk[AP_CLK]), sd.rst.eq(~self.clk[AP_RST_N])]
        q = [{n: Signal(w, name=f"c{c}_{n}") for n, w in self.qsfp_width.items()}
             for c in range(self.cards)]
        overflow = [Signal(name=f"c{c}_{ROUTER_OVERFLOW}") for c in range(self.cards)]
        for c in range(self.cards):
            kw: dict[str, Any] = {f"i_{n}": s for n, s in self.clk.items()}
            for n, s in q[c].items():
                kw[("o_" if n.endswith(("tx_tdata", "tx_tvalid", "rx_tready")) else "i_")
                   + n] = s
            for p in self.card_ports:
                sig = overflow[c] if p.name == ROUTER_OVERFLOW else self.sigs[c][p.name]
                kw[("i_" if p.direction == "in" else "o_") + p.name] = sig
                if p.name == ROUTER_OVERFLOW:
                    m.d.comb += self.sigs[c][p.name].eq(sig)
            m.submodules[f"card{c}"] = Instance(self.card_module, **kw)
        lost = []
        for k, lk in enumerate(self.links):
            m.submodules[f"link{k}"] = DomainRenamer("link")(lk)
            m.d.comb += [lk.set_latency.eq(self.link_latency[k]),
                         lk.set_threshold.eq(self.link_threshold[k])]
            here, there = q[k // 2], q[(k // 2 + 1) % self.cards]
            # data link 2c: card c's qsfp0_tx -> card c+1's qsfp1_rx; credit link 2c+1: card
            # c+1's qsfp1_tx -> card c's qsfp0_rx
            if k % 2 == 0:
                sq, sp, dq, dp = here, qsfp_name(0), there, qsfp_name(1)
            else:
                sq, sp, dq, dp = there, qsfp_name(1), here, qsfp_name(0)
            m.d.comb += [lk.i.tdata.eq(sq[f"{sp}_tx_tdata"]), lk.i.tvalid.eq(sq[f"{sp}_tx_tvalid"]),
                         sq[f"{sp}_tx_tready"].eq(lk.i.tready),
                         dq[f"{dp}_rx_tdata"].eq(lk.o.tdata), dq[f"{dp}_rx_tvalid"].eq(lk.o.tvalid)]
            lost.append(lk.o.tvalid & ~dq[f"{dp}_rx_tready"])
        link_bad = Signal()
        with m.If(Cat(*lost, *(lk.full for lk in self.links)).any()):
            m.d.link += link_bad.eq(1)
        core_bad = Signal()
        with m.If(Cat(*overflow).any()):
            m.d.sync += core_bad.eq(1)
        m.d.comb += self.ring_error.eq(link_bad | core_bad)
        return m


def board_ring_verilog(core: CoreConfig, cards: int, card_verilog: str) -> str:
    """The Verilog of the board ring top (module :data:`BOARD_RING_TOP`) around ``cards``
    instances of :data:`BOARD_TOP` from the one-card board testbench's Verilog text."""
    top = BoardRingTop(core, cards, card_module=BOARD_TOP,
                       card_ports=module_ports(card_verilog, BOARD_TOP))
    return verilog.convert(top, name=BOARD_RING_TOP, ports=top.ports(), emit_src=False)
