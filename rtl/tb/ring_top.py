"""``RingTestTop``: N cards in a ring for the multi-card Verilator testbench (issue 11).

Each card is an instance of the one-card testbench module :data:`~.core_build.TOP`
(:class:`~.core_top.CoreTestTop`: a core and its memories, generated once per core
configuration), so the ring's Verilog is this small top plus the card's cached Verilog, and
Verilator compiles the card's code once for all instances. Each card's ``tx``/``rx`` streams go
through its :class:`~dfx.rtl.router.Router`; the routers are joined by
:class:`~.link_model.LinkModel`s (data to the next card, credits back) whose latency (1 ..
:data:`MAX_LINK_LATENCY`) and TREADY stall threshold are inputs the testbench drives
(:func:`link_settings`: the board's link, or any latencies and stall probability), so one
model per core and card count serves every link setting.

Ports (flat Vitis names): ``ap_clk``, ``ap_rst_n`` (shared), then every port of the card
module except the ring streams, prefixed ``cardNN_`` (``card00_s_axi_control_awaddr``,
``card01_interrupt``, ``card02_bd_sel`` ...), ``ring_error`` (sticky: a receive FIFO
overflowed or a link model's queue filled; never) and per link k (card c's data link is
2c, its credit link 2c + 1) ``linkKK_latency`` and ``linkKK_threshold``. Every card's memory
back door reads and writes the same file (:data:`~.mem_model.BACKDOOR_FILE`); the testbench
strobes one card at a time.
"""

from __future__ import annotations

import re
from typing import Any

from amaranth.back import verilog
from amaranth.hdl import Cat, ClockDomain, Elaboratable, Instance, Module, Signal
from amaranth.hdl._ir import PortDirection

from dfx.isa.config import CoreConfig
from dfx.rtl.bus.vitis import AP_CLK, AP_RST_N, VitisPort
from dfx.rtl.router import Router, connect_ring
from dfx.rtl.router.link import wire_cycles

from .link_model import STALL_BITS, LinkModel, stall_threshold

__all__ = ["MAX_LINK_LATENCY", "RING_ERROR", "RING_STREAMS", "RING_TOP", "RingTestTop",
           "card_prefix", "link_prefix", "link_settings", "module_ports", "ring_ports",
           "ring_verilog"]

#: The multi-card testbench's top module.
RING_TOP = "dfx_ring_tb"
#: The ring top's sticky error output (module doc).
RING_ERROR = "ring_error"
#: The card module's ring stream ports (connected inside the ring top, not top ports).
RING_STREAMS = ("tx_tdata", "tx_tvalid", "tx_tready", "rx_tdata", "rx_tvalid", "rx_tready")
#: The largest link latency the ring model's link models take (cycles).
MAX_LINK_LATENCY = 64
#: Seed of link k's stall LFSR: LINK_SEED + k.
LINK_SEED = 1


def card_prefix(card: int) -> str:
    """The port-name prefix of card ``card`` in the ring top (``card00_``)."""
    return f"card{card:02d}_"


def link_prefix(link: int) -> str:
    """The port-name prefix of link ``link`` in the ring top (``link00_``)."""
    return f"link{link:02d}_"


def link_settings(core: CoreConfig, cards: int, latencies: tuple[int, ...] | None = None,
                  stall_prob: float = 0.0) -> list[tuple[int, int]]:
    """(latency, stall threshold) of each of the ring's ``2 cards`` links: the board's link
    latency (:meth:`LinkModel.from_core`) unless ``latencies``; TREADY low on ``stall_prob``
    of the cycles. Raises ValueError for settings the ring model cannot take."""
    if not isinstance(stall_prob, int | float) or not 0 <= stall_prob < 1:
        raise ValueError(f"stall_prob must be a number in [0, 1), not {stall_prob!r}")
    if latencies is None:
        latencies = (wire_cycles(core),) * (2 * cards)
    if len(latencies) != 2 * cards:
        raise ValueError(f"latencies needs 2 x cards = {2 * cards} entries (each card's "
                         f"data and credit link), got {len(latencies)}")
    out = []
    for k, lat in enumerate(latencies):
        if not isinstance(lat, int) or not 1 <= lat <= MAX_LINK_LATENCY:
            raise ValueError(f"link {k}: latency must be an integer 1..{MAX_LINK_LATENCY}, "
                             f"not {lat!r}")
        out.append((lat, stall_threshold(stall_prob)))
    return out


def module_ports(verilog_text: str, module: str) -> list[VitisPort]:
    """The ports of ``module`` in a Verilog text (its header and declarations)."""
    m = re.search(rf"^module {re.escape(module)}\((.*?)\);(.*?)^endmodule", verilog_text,
                  re.S | re.M)
    if m is None:
        raise ValueError(f"no module {module} in the Verilog text")
    names = [n.strip() for n in m.group(1).split(",") if n.strip()]
    decl = {d.group(3): (d.group(1), int(d.group(2) or 0) + 1)
            for d in re.finditer(r"^\s*(input|output)\s+(?:\[(\d+):0\]\s+)?(\S+)\s*;",
                                 m.group(2), re.M)}
    out = []
    for n in names:
        if n not in decl:
            raise ValueError(f"module {module}: port {n} has no input/output declaration")
        direction, width = decl[n]
        out.append(VitisPort(n, "in" if direction == "input" else "out", width))
    return out


def ring_ports(top: Any, clocks: dict[str, Signal]) -> dict[str, tuple[Any, PortDirection]]:
    """The ports of a ring top (:class:`RingTestTop`, the board ring): ``clocks`` (inputs),
    ``ring_error``, each link's ``linkKK_latency``/``linkKK_threshold`` and each card's ports
    prefixed ``cardNN_`` (``top``'s ``ring_error``, ``link_latency``, ``link_threshold``,
    ``sigs``, ``card_ports``, ``cards``)."""
    out: dict[str, tuple[Any, PortDirection]] = {
        n: (sig, PortDirection.Input) for n, sig in clocks.items()}
    out[RING_ERROR] = (top.ring_error, PortDirection.Output)
    for k in range(2 * top.cards):
        out[link_prefix(k) + "latency"] = (top.link_latency[k], PortDirection.Input)
        out[link_prefix(k) + "threshold"] = (top.link_threshold[k], PortDirection.Input)
    for c in range(top.cards):
        for p in top.card_ports:
            out[card_prefix(c) + p.name] = (
                top.sigs[c][p.name],
                PortDirection.Input if p.direction == "in" else PortDirection.Output)
    return out


class RingTestTop(Elaboratable):
    """``cards`` instances of the card module ``card_module`` in a ring (module doc)."""

    def __init__(self, core: CoreConfig, cards: int, *, card_module: str,
                 card_ports: list[VitisPort]):
        if not isinstance(cards, int) or isinstance(cards, bool) or not 2 <= cards <= 64:
            raise ValueError(f"cards must be an integer 2..64 (one card needs no ring), "
                             f"not {cards!r}")
        self.core, self.cards, self.card_module = core, cards, card_module
        self.ring_error = Signal(name=RING_ERROR)
        wire = wire_cycles(core)
        self.links = [LinkModel(core, wire, 0.0, LINK_SEED + k, max_latency=MAX_LINK_LATENCY)
                      for k in range(2 * cards)]
        self.link_latency = [Signal(range(MAX_LINK_LATENCY + 1),
                                    name=link_prefix(k) + "latency")
                             for k in range(2 * cards)]
        self.link_threshold = [Signal(STALL_BITS + 1, name=link_prefix(k) + "threshold")
                               for k in range(2 * cards)]
        ports = card_ports
        self.stream_width = {p.name: p.width for p in ports if p.name in RING_STREAMS}
        self.card_ports = [p for p in ports
                           if p.name not in (AP_CLK, AP_RST_N) and p.name not in RING_STREAMS]
        self.ap_clk = Signal(name=AP_CLK)
        self.ap_rst_n = Signal(name=AP_RST_N, init=1)
        self.sigs = [{p.name: Signal(p.width, name=card_prefix(c) + p.name)
                      for p in self.card_ports} for c in range(cards)]

    def ports(self) -> dict[str, tuple[Any, PortDirection]]:
        """``ports=`` of :func:`amaranth.back.verilog.convert` (module doc's order)."""
        return ring_ports(self, {AP_CLK: self.ap_clk, AP_RST_N: self.ap_rst_n})

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        m.domains.sync = cd = ClockDomain("sync")
        rst_q = Signal(init=1, reset_less=True)  # registered reset, as in the card
        m.d.comb += [cd.clk.eq(self.ap_clk), cd.rst.eq(rst_q)]
        m.d.sync += rst_q.eq(~self.ap_rst_n)
        tx, rx = [], []
        for c in range(self.cards):
            t = {k: Signal(self.stream_width[f"tx_{k}"], name=f"c{c}_tx_{k}")
                 for k in ("tdata", "tvalid", "tready")}
            r = {k: Signal(self.stream_width[f"rx_{k}"], name=f"c{c}_rx_{k}")
                 for k in ("tdata", "tvalid", "tready")}
            tx.append(t)
            rx.append(r)
            kw: dict[str, Any] = {f"i_{AP_CLK}": self.ap_clk, f"i_{AP_RST_N}": self.ap_rst_n,
                                  "o_tx_tdata": t["tdata"], "o_tx_tvalid": t["tvalid"],
                                  "i_tx_tready": t["tready"], "i_rx_tdata": r["tdata"],
                                  "i_rx_tvalid": r["tvalid"], "o_rx_tready": r["tready"]}
            for p in self.card_ports:
                kw[("i_" if p.direction == "in" else "o_") + p.name] = self.sigs[c][p.name]
            m.submodules[f"card{c}"] = Instance(self.card_module, **kw)
        routers = [Router(self.core) for _ in range(self.cards)]
        links = self.links
        for c, r in enumerate(routers):
            m.submodules[f"router{c}"] = r
            m.d.comb += [r.tx_in.payload.eq(tx[c]["tdata"]), r.tx_in.valid.eq(tx[c]["tvalid"]),
                         tx[c]["tready"].eq(r.tx_in.ready),
                         rx[c]["tdata"].eq(r.rx_out.payload.as_value()),
                         rx[c]["tvalid"].eq(r.rx_out.valid), r.rx_out.ready.eq(rx[c]["tready"])]
        for k, lk in enumerate(links):
            m.submodules[f"link{k}"] = lk
            m.d.comb += [lk.set_latency.eq(self.link_latency[k]),
                         lk.set_threshold.eq(self.link_threshold[k])]
        connect_ring(m, routers, [(links[2 * c], links[2 * c + 1]) for c in range(self.cards)])
        bad = Signal()
        m.d.comb += bad.eq(Cat(*(r.overflow for r in routers), *(lk.full for lk in links)).any())
        with m.If(bad):
            m.d.sync += self.ring_error.eq(1)
        return m


def ring_verilog(core: CoreConfig, cards: int, card_verilog: str, card_module: str) -> str:
    """The Verilog of the ring top (module :data:`RING_TOP`) around ``cards`` instances of
    ``card_module`` from the one-card testbench's Verilog text ``card_verilog``."""
    top = RingTestTop(core, cards, card_module=card_module,
                      card_ports=module_ports(card_verilog, card_module))
    return verilog.convert(top, name=RING_TOP, ports=top.ports(), emit_src=False)
