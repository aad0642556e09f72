"""Flat Vitis port names for an Amaranth component (docs/core.md "Conventions"; AMD UG1393
"Kernel Interface Requirements"; shared/notes/core-integration.md "Port names").

Amaranth joins a port path with ``__`` (``m_axi_hbm__3__awaddr``); Vitis and cocotbext-axi's
``AxiBus.from_prefix(dut, "m_axi_hbm03")`` want one ``_`` and two-digit channel numbers. The
rule, applied to every port member of the component's signature:

* string parts are joined with ``_``: ``("s_axi_control", "awaddr")`` -> ``s_axi_control_awaddr``;
* an array index is appended to the part before it as two digits (``index_digits``), with no
  separator: ``("m_axi_hbm", 3, "awaddr")`` -> ``m_axi_hbm03_awaddr``;
* members of an :class:`amaranth.lib.stream.Signature` get the AXI4-Stream names:
  ``payload``/``valid``/``ready`` -> ``tdata``/``tvalid``/``tready`` (``("tx", "payload")`` ->
  ``tx_tdata``);
* a plain port keeps its name (``interrupt``);
* the ``sync`` domain becomes ``ap_clk`` and an active-low ``ap_rst_n`` (inverted into the
  domain's synchronous reset by a wrapper).

:func:`vitis_verilog` converts with these names; :func:`vitis_ports` lists them (name,
direction, width) and :func:`vitis_buses` groups them into interfaces, for a kernel.xml or a
testbench manifest.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

from amaranth.back import verilog
from amaranth.hdl import ClockDomain, Elaboratable, Module, Signal
from amaranth.hdl._ir import PortDirection
from amaranth.lib import stream, wiring

from .axi import AxiLiteSignature, AxiSignature

__all__ = [
    "AP_CLK",
    "AP_RST_N",
    "STREAM_NAMES",
    "VERILATOR_ARGS",
    "VitisBus",
    "VitisPort",
    "VitisTop",
    "vitis_buses",
    "vitis_port_map",
    "vitis_ports",
    "vitis_verilog",
]

AP_CLK = "ap_clk"
AP_RST_N = "ap_rst_n"
#: Verilator options a Vitis-named top needs: the required port name ``interrupt`` is a C++
#: keyword-like symbol (Verilator's SYMRSVDWORD warning, fatal by default); Verilator renames
#: it internally and VPI still sees ``interrupt``.
VERILATOR_ARGS = ("-Wno-SYMRSVDWORD",)
#: amaranth.lib.stream member -> AXI4-Stream signal name.
STREAM_NAMES = {"payload": "tdata", "valid": "tvalid", "ready": "tready"}


class VitisPort(NamedTuple):
    """One top-level port: ``direction`` is ``"in"`` or ``"out"``, ``width`` in bits."""

    name: str
    direction: str
    width: int


class VitisBus(NamedTuple):
    """One interface of the top: ``kind`` is ``"clock"``, ``"reset"``, ``"m_axi"`` (AXI4
    manager), ``"s_axi"`` (AXI4 subordinate), ``"s_axilite"``, ``"m_axilite"``, ``"m_axis"``
    (stream out), ``"s_axis"`` (stream in) or ``"wire"``; ``ports`` are its :class:`VitisPort`\\ s;
    ``signature`` the member's signature (``None`` for plain wires)."""

    name: str
    kind: str
    ports: tuple[VitisPort, ...]
    signature: wiring.Signature | None


def _check_digits(index_digits: int) -> int:
    if not isinstance(index_digits, int) or isinstance(index_digits, bool) or index_digits < 1:
        raise ValueError(f"index_digits must be a positive integer, not {index_digits!r}")
    return index_digits


def _join(parts: list[str | int], digits: int) -> str:
    out = ""
    for p in parts:
        if isinstance(p, int):
            if not out:
                raise ValueError("a port path cannot start with an array index")
            out += f"{p:0{digits}d}"
        else:
            out = f"{out}_{p}" if out else p
    return out


def _walk(sig: wiring.Signature, obj: Any, prefix: list[str | int], bus: tuple | None,
          digits: int) -> Iterator[tuple[str, str, int, Any, tuple | None]]:
    """Yield (name, direction, width, value, bus) for every port member under ``sig``.

    ``bus`` is (bus name, signature, flipped) of the innermost AXI / stream signature above.
    """
    for name, member in sig.members.items():
        value = getattr(obj, name)
        for sub_value, idx in _indexed(value, member.dimensions):
            path = [*prefix, name, *idx]
            if member.is_port:
                part = name
                if bus is not None and isinstance(bus[1], stream.Signature):
                    part = STREAM_NAMES.get(name, name)
                flat = _join([*prefix, part, *idx], digits)
                direction = "in" if member.flow == wiring.In else "out"
                width = len(sub_value.as_value() if hasattr(sub_value, "as_value") else sub_value)
                yield flat, direction, width, sub_value, bus
            else:
                msig = member.signature
                inner = bus
                if isinstance(msig, (AxiSignature, AxiLiteSignature, stream.Signature)):
                    inner = (_join(path, digits), msig, member.flow == wiring.In)
                yield from _walk(msig, sub_value, path, inner, digits)


def _indexed(value: Any, dims: tuple[int, ...]) -> Iterator[tuple[Any, tuple[int, ...]]]:
    """(element, index tuple) of an arrayed member, row-major."""
    if not dims:
        yield value, ()
        return
    for i in range(dims[0]):
        for v, idx in _indexed(value[i], dims[1:]):
            yield v, (i, *idx)


def _ports(component: wiring.Component, digits: int):
    if not isinstance(component, wiring.Component):
        raise TypeError(f"component must be an amaranth wiring.Component, not {component!r}")
    seen: dict[str, tuple] = {}
    out = []
    for flat, direction, width, value, bus in _walk(
            component.signature, component, [], None, _check_digits(digits)):
        if flat in (AP_CLK, AP_RST_N) or flat in seen:
            raise ValueError(f"two members of {type(component).__name__} map to the port name "
                             f"{flat!r}")
        seen[flat] = bus
        out.append((flat, direction, width, value, bus))
    return out


class VitisTop(Elaboratable):
    """The component under ``ap_clk`` / active-low ``ap_rst_n`` (the ``sync`` domain's clock
    and synchronous reset; Amaranth's reset is active high).

    ``registered_reset``: take the reset through a flip-flop (one cycle later, reset-less,
    high at power-on). Amaranth puts the reset into every module's next-state logic, so with
    the reset straight from a top-level input Verilator evaluates all of it on every input
    change (each clock edge); a testbench option, the kernel keeps the direct reset.
    """

    def __init__(self, component: wiring.Component, *, registered_reset: bool = False):
        if not isinstance(component, wiring.Component):
            raise TypeError(f"component must be an amaranth wiring.Component, not {component!r}")
        self.component = component
        self.registered_reset = bool(registered_reset)
        self.ap_clk = Signal(name=AP_CLK)
        self.ap_rst_n = Signal(name=AP_RST_N, init=1)

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        m.domains.sync = cd = ClockDomain("sync")
        m.d.comb += cd.clk.eq(self.ap_clk)
        if self.registered_reset:
            rst_q = Signal(init=1, reset_less=True)
            m.d.sync += rst_q.eq(~self.ap_rst_n)
            m.d.comb += cd.rst.eq(rst_q)
        else:
            m.d.comb += cd.rst.eq(~self.ap_rst_n)
        m.submodules.core = self.component
        return m


def vitis_port_map(component: wiring.Component, *, index_digits: int = 2,
                   registered_reset: bool = False
                   ) -> tuple[VitisTop, dict[str, tuple[Any, PortDirection]]]:
    """The wrapper and the ``ports=`` mapping for :func:`amaranth.back.verilog.convert`."""
    top = VitisTop(component, registered_reset=registered_reset)
    ports: dict[str, tuple[Any, PortDirection]] = {
        AP_CLK: (top.ap_clk, PortDirection.Input),
        AP_RST_N: (top.ap_rst_n, PortDirection.Input),
    }
    for flat, direction, _w, value, _bus in _ports(component, index_digits):
        v = value.as_value() if hasattr(value, "as_value") else value
        ports[flat] = (v, PortDirection.Input if direction == "in" else PortDirection.Output)
    return top, ports


def vitis_verilog(component: wiring.Component, name: str, *, index_digits: int = 2,
                  registered_reset: bool = False, **convert_kwargs: Any) -> str:
    """Verilog of ``component`` as module ``name`` with the flat Vitis port names (module doc).

    ``registered_reset``: see :class:`VitisTop` (testbenches). ``convert_kwargs`` go to
    :func:`amaranth.back.verilog.convert` (e.g. ``emit_src=False``).
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"name must be a Verilog identifier, not {name!r}")
    top, ports = vitis_port_map(component, index_digits=index_digits,
                                registered_reset=registered_reset)
    return verilog.convert(top, name=name, ports=ports, **convert_kwargs)


def vitis_ports(component: wiring.Component, *, index_digits: int = 2) -> list[VitisPort]:
    """Every top-level port of :func:`vitis_verilog`'s module, ``ap_clk`` and ``ap_rst_n``
    first, then the signature's members in order."""
    return [VitisPort(AP_CLK, "in", 1), VitisPort(AP_RST_N, "in", 1)] + [
        VitisPort(flat, direction, width)
        for flat, direction, width, _v, _b in _ports(component, index_digits)
    ]


def vitis_buses(component: wiring.Component, *, index_digits: int = 2) -> list[VitisBus]:
    """The ports of :func:`vitis_ports` grouped by interface (for kernel.xml / manifests):
    one entry per AXI4 / AXI4-Lite / stream member (array elements separately), one per
    plain wire, in signature order."""
    buses: list[VitisBus] = [
        VitisBus(AP_CLK, "clock", (VitisPort(AP_CLK, "in", 1),), None),
        VitisBus(AP_RST_N, "reset", (VitisPort(AP_RST_N, "in", 1),), None),
    ]
    groups: dict[str, list] = {}
    for flat, direction, width, _v, bus in _ports(component, index_digits):
        port = VitisPort(flat, direction, width)
        if bus is None:
            buses.append(VitisBus(flat, "wire", (port,), None))
            continue
        name, sig, flipped = bus
        if name not in groups:
            if isinstance(sig, stream.Signature):
                kind = "s_axis" if flipped else "m_axis"
            elif isinstance(sig, AxiLiteSignature):
                kind = "s_axilite" if flipped else "m_axilite"
            else:
                kind = "s_axi" if flipped else "m_axi"
            groups[name] = []
            buses.append(VitisBus(name, kind, (), sig))
        groups[name].append(port)
    return [b._replace(ports=tuple(groups[b.name])) if b.name in groups else b for b in buses]
