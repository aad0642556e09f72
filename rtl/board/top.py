"""``BoardTop``: the Alveo kernel ``dfx_core`` as ``dfx build`` packages it (docs/u280.md).

The core (:class:`~dfx.rtl.core.core.DfxCore`, ``debug=False``) with its Vitis ports passed
through unchanged (``s_axi_control``, ``interrupt``, ``m_axi_hbmNN``, ``m_axi_ddr``), the ring
router between the core's ``tx``/``rx`` vector streams and the QSFP links, and one
:class:`~.cdc.LinkCdc` per QSFP port between the kernel clock and the link clock:

```
 ap_clk domain                                         | ap_clk_2 domain (link)
 DfxCore.tx ─► router.tx_in    router.next_tx ─► LinkCdc 0 ─► qsfp0_tx (to the next card)
 DfxCore.rx ◄─ router.rx_out   router.next_rx ◄─ LinkCdc 0 ◄─ qsfp0_rx
                               router.prev_tx ─► LinkCdc 1 ─► qsfp1_tx (to the previous card)
                               router.prev_rx ◄─ LinkCdc 1 ◄─ qsfp1_rx
```

Ports beyond the core's: ``ap_clk_2`` / ``ap_rst_n_2`` (the link clock and its active-low
synchronous reset; UG1393 2023.2: a kernel may have several clocks, each interface associated
with one), ``qsfpP_tx`` (Out) and ``qsfpP_rx`` (In), AXI4-Stream with TDATA/TVALID/TREADY,
:func:`~.hook.link_bits` wide, on ``ap_clk_2``. Every other interface is on ``ap_clk``.

``router``: a class called as ``router(core)`` with the members ``tx_in``, ``rx_out`` and, for
each of :data:`~.hook.LINK_DIRECTIONS`, ``<dir>_tx`` / ``<dir>_rx`` (``tdata``/``tvalid``
[/``tready``], the router's link beats on the core clock; a receive port without ``tready``
takes every beat); default
:func:`default_router`: ``dfx.rtl.router.Router`` when it exists, else the
:class:`~.hook.RouterHook` stand-in.

The port description that ``dfx build`` derives kernel.xml, the IP packager Tcl and the v++
link configuration from is this component's signature (:func:`kernel_buses`), the same one
the Verilog is converted from.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, NamedTuple

from amaranth.hdl import ClockDomain, Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from dfx.rtl.bus.vitis import AP_CLK, AP_RST_N, VitisBus, vitis_buses
from dfx.rtl.core.core import DfxCore
from dfx.rtl.leaves import Leaf, add_leaf

from .cdc import LINK_DOMAIN, LinkCdc
from .hook import LINK_DIRECTIONS, RouterHook, link_bits

__all__ = ["AP_CLK_2", "AP_RST_N_2", "BoardTop", "KernelBus", "default_router",
           "kernel_buses", "qsfp_name"]

AP_CLK_2 = "ap_clk_2"
AP_RST_N_2 = "ap_rst_n_2"
#: The core's ring streams, replaced at the board top by the router and the QSFP links.
CORE_RING = ("tx", "rx")


def qsfp_name(port: int) -> str:
    """``qsfp0``, ``qsfp1``: the prefix of QSFP port ``port``'s two streams."""
    return f"qsfp{port}"


def default_router() -> Callable[[Any], wiring.Component]:
    """``dfx.rtl.router.Router`` if that module exists, else :class:`~.hook.RouterHook`."""
    try:
        mod = importlib.import_module("dfx.rtl.router")
    except ModuleNotFoundError:
        return RouterHook
    return getattr(mod, "Router", RouterHook)


class BoardTop(wiring.Component):
    """The kernel top (module doc): ``BoardTop(core, leaf=..., router=...)``."""

    def __init__(self, core: Any, *, leaf: Leaf = add_leaf,
                 router: Callable[[Any], wiring.Component] | None = None):
        ports = int(core.b.qsfp.ports)
        if ports < len(LINK_DIRECTIONS):
            raise ValueError(f"board {core.b.name!r}: qsfp.ports = {ports}, the ring needs "
                             f"{len(LINK_DIRECTIONS)} (one to each neighbour)")
        self._cfg = core
        self._core = DfxCore(core, debug=False, leaf=leaf)
        self._router = (router or default_router())(core)
        self._bits = link_bits(core)
        self._cdc = [LinkCdc(self._bits) for _ in LINK_DIRECTIONS]
        members: dict[str, Any] = {}
        for name, member in self._core.signature.members.items():
            if name not in CORE_RING:
                members[name] = member
        members[AP_CLK_2] = In(1)
        members[AP_RST_N_2] = In(1, init=1)
        for p, cdc in enumerate(self._cdc):
            members[f"{qsfp_name(p)}_tx"] = Out(cdc.link_tx.signature)
            members[f"{qsfp_name(p)}_rx"] = In(cdc.link_tx.signature)
        super().__init__(members)

    @property
    def core(self) -> DfxCore:
        return self._core

    @property
    def router(self) -> wiring.Component:
        return self._router

    @property
    def has_router(self) -> bool:
        """False while the board top holds the :class:`~.hook.RouterHook` stand-in."""
        return not isinstance(self._router, RouterHook)

    @property
    def link_bits(self) -> int:
        return self._bits

    @property
    def links(self) -> tuple[str, ...]:
        """The QSFP prefixes in ring-direction order (:data:`~.hook.LINK_DIRECTIONS`)."""
        return tuple(qsfp_name(p) for p in range(len(self._cdc)))

    @property
    def regs(self) -> Any:
        return self._core.regs

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        m.domains.link = cd = ClockDomain(LINK_DOMAIN, local=True)
        m.d.comb += [cd.clk.eq(getattr(self, AP_CLK_2)), cd.rst.eq(~getattr(self, AP_RST_N_2))]
        m.submodules.core = core = self._core
        m.submodules.router = rt = self._router
        for name in self._core.signature.members:
            if name in CORE_RING:
                continue
            ours, theirs = getattr(self, name), getattr(core, name)
            member = self.signature.members[name]
            if member.is_port:
                m.d.comb += theirs.eq(ours) if member.flow == In else ours.eq(theirs)
            else:
                _connect(m, ours, theirs)
        wiring.connect(m, core.tx, rt.tx_in)
        wiring.connect(m, rt.rx_out, core.rx)
        for p, (direction, cdc) in enumerate(zip(LINK_DIRECTIONS, self._cdc, strict=True)):
            m.submodules[f"cdc_{qsfp_name(p)}"] = cdc
            rtx = _beat(getattr(rt, f"{direction}_tx"))
            rrx = _beat(getattr(rt, f"{direction}_rx"))
            m.d.comb += [cdc.tx.payload.eq(rtx[0]), cdc.tx.valid.eq(rtx[1]),
                         rtx[2].eq(cdc.tx.ready),
                         rrx[0].eq(cdc.rx.payload), rrx[1].eq(cdc.rx.valid),
                         # the router's receive side takes every beat (no TREADY)
                         cdc.rx.ready.eq(rrx[2] if rrx[2] is not None else 1)]
            wiring.connect(m, cdc.link_tx, wiring.flipped(getattr(self, f"{qsfp_name(p)}_tx")))
            wiring.connect(m, wiring.flipped(getattr(self, f"{qsfp_name(p)}_rx")), cdc.link_rx)
        return m


def _beat(iface: Any) -> tuple[Any, Any, Any]:
    """(data, valid, ready or None) of a router link port: the router's AXI4-Stream-shaped
    ``tdata``/``tvalid``/``tready`` members, or an ``amaranth.lib.stream`` interface."""
    if hasattr(iface, "tdata"):
        return iface.tdata, iface.tvalid, getattr(iface, "tready", None)
    return iface.payload, iface.valid, getattr(iface, "ready", None)


def _connect(m: Module, ours: Any, theirs: Any) -> None:
    """Pass one of the core's interfaces (or an array of them) through to the top."""
    if isinstance(ours, (list, tuple)):
        for a, b in zip(ours, theirs, strict=True):
            _connect(m, a, b)
        return
    wiring.connect(m, wiring.flipped(ours), theirs)


class KernelBus(NamedTuple):
    """One interface of the kernel: :class:`~dfx.rtl.bus.vitis.VitisBus`'s ``name``, ``kind``
    (``clock``/``reset`` for the clocks and resets, else as VitisBus), ``ports``, and
    ``clock``: the clock port it is associated with (``None`` for the clocks)."""

    name: str
    kind: str
    ports: tuple
    clock: str | None
    width: int


def kernel_buses(top: BoardTop) -> list[KernelBus]:
    """The kernel's interfaces, in port order (the port description of ``dfx build``)."""
    out = []
    link = set(top.links)
    for b in vitis_buses(top):
        bus: VitisBus = b
        kind, clock = bus.kind, AP_CLK
        if bus.name in (AP_CLK, AP_CLK_2):
            kind, clock = "clock", None
        elif bus.name in (AP_RST_N, AP_RST_N_2):
            kind, clock = "reset", AP_CLK if bus.name == AP_RST_N else AP_CLK_2
        elif bus.name.rsplit("_", 1)[0] in link:
            clock = AP_CLK_2
        width = _data_width(bus)
        out.append(KernelBus(bus.name, kind, bus.ports, clock, width))
    return out


def _data_width(bus: VitisBus) -> int:
    for suffix in ("_tdata", "_wdata"):
        for p in bus.ports:
            if p.name.endswith(suffix):
                return p.width
    return bus.ports[0].width if len(bus.ports) == 1 else 0
