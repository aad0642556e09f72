"""The kernel's description: everything ``dfx build`` writes is derived from it, and it is
derived from the board top's signature (:func:`dfx.rtl.board.top.kernel_buses`, the same
one the Verilog is converted from), the control register map
(:func:`dfx.rtl.control.regmap.regmap`) and the core and board configuration.

* **interfaces**: the top's buses with their kind, data width and clock;
* **memory banks**: each AXI4 master to the memory its pointer argument addresses: the
  pointer ``hbmNN`` (port ``m_axi_hbmNN``) to pseudo-channel ``HBM[NN]``, ``ddr`` / ``prog``
  (port ``m_axi_ddr``) to ``DDR[0]`` — one pseudo-channel per port, none shared;
* **clocks**: ``ap_clk`` at the core's ``clock_mhz``; ``ap_clk_2`` (the QSFP links) at the
  lowest whole MHz at which one link beat per cycle carries the link's payload rate
  (``qsfp.line_rate_gbps`` · payload/line bits of the encoding / the beat's bits);
* **placement**: the kernel in SLR0 (the HBM ports are at the bottom of the U280), the link
  kernels of the reference design in the top SLR (the QSFP28 transceivers; AuroraFlow's own
  link configuration binds them to SLR2).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dfx.isa.errors import DfxError
from dfx.rtl.router.link import link_clock_mhz

__all__ = ["KERNEL", "KernelDescription", "describe"]

#: The kernel's name (top module, kernel.xml, nk=).
KERNEL = "dfx_core"


@dataclass(frozen=True)
class KernelDescription:
    """One kernel (module doc). ``buses``: :class:`dfx.rtl.board.top.KernelBus` list;
    ``banks``: m_axi bus name -> ``HBM[i]`` / ``DDR[0]``; ``links``: QSFP prefixes in ring
    order (next card first); ``has_router``: False while the board top holds the
    ``RouterHook`` stand-in."""

    name: str
    core: Any
    regs: Any
    buses: tuple
    banks: dict[str, str]
    links: tuple[str, ...]
    link_bits: int
    has_router: bool
    kernel_mhz: float
    link_mhz: int
    kernel_slr: int
    link_slr: int

    @property
    def board(self) -> Any:
        return self.core.b

    @property
    def instance(self) -> str:
        """The compute unit's name in the link configuration (``dfx_core_1``)."""
        return f"{self.name}_1"

    def bus(self, name: str) -> Any:
        for b in self.buses:
            if b.name == name:
                return b
        raise KeyError(f"no interface {name!r} on {self.name}")

    @property
    def m_axi(self) -> tuple:
        return tuple(b for b in self.buses if b.kind == "m_axi")

    @property
    def streams(self) -> tuple:
        return tuple(b for b in self.buses if b.kind in ("m_axis", "s_axis"))


def _banks(regs: Any, buses: tuple) -> dict[str, str]:
    banks: dict[str, str] = {}
    ddr = regs["ddr"].port
    banks[ddr] = "DDR[0]"
    for i, name in enumerate(regs.hbm_names):
        port = regs[name].port
        if port in banks:
            raise DfxError(f"kernel description: {port} addresses two memories "
                           f"({banks[port]}, HBM[{i}])")
        banks[port] = f"HBM[{i}]"
    masters = [b.name for b in buses if b.kind == "m_axi"]
    missing = [m for m in masters if m not in banks]
    extra = [p for p in banks if p not in masters]
    if missing or extra:
        raise DfxError(f"kernel description: AXI masters {missing} have no memory bank, "
                       f"pointer ports {extra} no AXI master")
    return {m: banks[m] for m in masters}


def describe(core: Any, *, router: Any = None) -> KernelDescription:
    """The kernel description of ``core`` (a :class:`dfx.isa.config.CoreConfig`) on its board;
    builds the board top's component (no Verilog: under a second even for dfx-u280)."""
    import warnings

    from amaranth.hdl import UnusedElaboratable

    from dfx.rtl.board.top import BoardTop, kernel_buses

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnusedElaboratable)
        top = BoardTop(core, router=router)
        buses = tuple(kernel_buses(top))
    regs = top.regs
    slrs = int(core.b.resources.slr)
    return KernelDescription(
        name=KERNEL, core=core, regs=regs, buses=buses, banks=_banks(regs, buses),
        links=top.links, link_bits=top.link_bits, has_router=top.has_router,
        kernel_mhz=float(core.clock_mhz), link_mhz=link_clock_mhz(core, top.link_bits),
        kernel_slr=0, link_slr=slrs - 1)
