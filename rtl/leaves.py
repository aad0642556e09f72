"""Leaves: how a block adds its repeated sub-blocks, and a way to emit each distinct one once.

A block with many identical sub-blocks (the MPU's FP16 multipliers and FP32 adders, the VPU's
per-lane adders, multipliers, converters and table units, the LUT-GEMM lanes and scalers)
adds each of them through a :data:`Leaf` callable, ``leaf(m, name, comp)``, which returns the
object whose ports the block then connects. :func:`add_leaf` (the default) makes ``comp`` a
plain submodule: the design simulates in Amaranth and converts as one flat netlist.

:class:`LeafModules` is the Leaf of fast Verilog generation (``dfx rtl``,
:mod:`dfx.rtl.core.generate`): every leaf becomes an ``Instance`` of a Verilog module, one
module per *distinct* leaf (same class, same constructor state, same signature:
:func:`fingerprint`), converted once from its first instance by :meth:`LeafModules.verilog`.
Amaranth's netlist builder and Yosys then handle each distinct leaf once instead of every copy
(the dfx-u280 core has thousands). The leaf's port signals stay the parent's wires and the
instance drives its outputs, so the circuit is the same as the flat one (docs/core.md
"Verilog generation").
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import hashlib
import json
import types
from collections.abc import Callable
from fractions import Fraction
from typing import Any

from amaranth.hdl import (
    ClockDomain,
    ClockSignal,
    Elaboratable,
    Instance,
    Module,
    ResetSignal,
    Shape,
    ShapeCastable,
    Signal,
    Value,
)
from amaranth.hdl._ir import PortDirection
from amaranth.lib import wiring

__all__ = ["Leaf", "LeafModules", "add_leaf", "fingerprint", "mark_used"]

Leaf = Callable[[Module, str, Any], Any]
"""``leaf(m, name, comp)`` adds the leaf component ``comp`` to ``m`` under ``name`` and returns
the object whose ports the caller connects (``comp`` itself for every Leaf here)."""


def add_leaf(m: Module, name: str, comp: Any) -> Any:
    """The default :data:`Leaf`: ``comp`` becomes the submodule ``name``."""
    m.submodules[name] = comp
    return comp


def mark_used(obj: Any) -> None:
    """Mark ``obj`` and every elaboratable held in its attributes (recursively) as used: for a
    design that a twin built with another :data:`Leaf` stands in for (no UnusedElaboratable
    warnings)."""
    todo, seen = [obj], set()
    while todo:
        o = todo.pop()
        if id(o) in seen:
            continue
        seen.add(id(o))
        if isinstance(o, Elaboratable):
            o._MustUse__used = True
        state = getattr(o, "__dict__", None)
        if isinstance(o, (list, tuple)):
            todo.extend(o)
        elif isinstance(o, dict):
            todo.extend(o.values())
        elif isinstance(o, Elaboratable) and isinstance(state, dict):
            todo.extend(v for k, v in state.items() if not k.startswith(_SKIP))


# ------------------------------------------------------------------------------ fingerprint


class _Unique:
    """A fingerprint part that matches nothing else (state that cannot be compared)."""

    def __init__(self, obj: Any):
        self.what = type(obj).__qualname__


def _qualname(t: type) -> str:
    return f"{t.__module__}.{t.__qualname__}"


def _shape_fp(shape: Any) -> Any:
    if isinstance(shape, type):  # an enum class used as a shape
        return ["type", _qualname(shape),
                [[m.name, _fp(m.value, set())] for m in shape] if issubclass(shape, enum.Enum)
                else None]
    return ["shape", type(shape).__qualname__, repr(shape)]


def _signature_fp(sig: wiring.Signature) -> Any:
    members = []
    for name, member in sig.members.items():
        if member.is_port:
            body = _shape_fp(member.shape), _fp(member.init, set())
        else:
            body = _signature_fp(member.signature)
        members.append([name, member.flow.name, list(member.dimensions), body])
    return ["signature", _qualname(type(sig)), members]


_SKIP = ("_MustUse__", "_Component__signature")
_CODE = (types.FunctionType, types.MethodType, types.BuiltinFunctionType, types.ModuleType,
         functools.partial)


def _fp(obj: Any, seen: set[int]) -> Any:  # noqa: C901 - one case per kind of state
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return [type(obj).__name__, obj]
    if isinstance(obj, enum.Enum):
        return ["enum", _qualname(type(obj)), _fp(obj.value, seen)]
    if isinstance(obj, (bytes, bytearray)):
        return ["bytes", hashlib.sha256(obj).hexdigest()]
    if isinstance(obj, Fraction):
        return ["fraction", str(obj)]
    if type(obj).__module__ == "numpy" or type(obj).__module__.startswith("numpy."):
        import numpy as np

        arr = np.asarray(obj)
        if arr.dtype == object:
            return _Unique(obj)
        return ["ndarray", arr.dtype.str, list(arr.shape),
                hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()]
    if isinstance(obj, (list, tuple)):
        return [type(obj).__name__, [_fp(x, seen) for x in obj]]
    if isinstance(obj, (set, frozenset)):
        return ["set", sorted(json.dumps(_jsonable(_fp(x, seen))) for x in obj)]
    if isinstance(obj, dict):
        items = [[_fp(k, seen), _fp(v, seen)] for k, v in obj.items()]
        return ["dict", sorted(items, key=lambda kv: json.dumps(_jsonable(kv[0])))]
    if isinstance(obj, type):
        return ["type", _qualname(obj)]
    if isinstance(obj, wiring.Signature):
        return _signature_fp(obj)
    if isinstance(obj, (Shape, ShapeCastable)):
        return _shape_fp(obj)
    if isinstance(obj, Signal):  # internal state: only its shape and reset behaviour matter
        return ["signal", _shape_fp(obj.shape()), obj.init, obj.reset_less]
    if isinstance(obj, Value):  # an expression over other signals: never the same leaf
        return _Unique(obj)
    if obj is add_leaf or isinstance(obj, LeafModules):
        return ["leaf"]  # how a leaf adds its own leaves does not change its circuit
    if id(obj) in seen:
        return _Unique(obj)
    if dataclasses.is_dataclass(obj):
        seen = seen | {id(obj)}
        return ["dataclass", _qualname(type(obj)),
                [[f.name, _fp(getattr(obj, f.name), seen)] for f in dataclasses.fields(obj)]]
    state = getattr(obj, "__dict__", None)
    if isinstance(state, dict) and not isinstance(obj, _CODE):
        seen = seen | {id(obj)}
        ports = set()
        head: Any = None
        if isinstance(obj, wiring.Component):
            head = _signature_fp(obj.signature)
            ports = set(obj.signature.members)
        body = [[k, _fp(v, seen)] for k, v in sorted(state.items())
                if k not in ports and not k.startswith(_SKIP)]
        return ["object", _qualname(type(obj)), head, body]
    return _Unique(obj)


def _jsonable(fp: Any) -> Any:
    if isinstance(fp, _Unique):
        raise _NotComparable(fp.what)
    if isinstance(fp, list):
        return [_jsonable(x) for x in fp]
    if isinstance(fp, float):
        return repr(fp)
    return fp


class _NotComparable(Exception):
    pass


def fingerprint(comp: Any) -> str | None:
    """A hash of everything that determines ``comp``'s circuit: its class, signature (member
    names, directions, shapes, initial values) and constructor state (numbers, strings,
    enums, tables, arrays, nested components...), or ``None`` when some state cannot be
    compared (an expression, a function, an unknown object): such a leaf is never shared."""
    try:
        text = json.dumps(_jsonable(_fp(comp, set())), separators=(",", ":"))
    except _NotComparable:
        return None
    return hashlib.sha256(text.encode()).hexdigest()


# ------------------------------------------------------------------------------ LeafModules


def _port_name(path: tuple) -> str:
    return "__".join(map(str, path))


def _leaf_ports(comp: Any) -> list[tuple[str, Value, bool]]:
    """(port name, value, is input) of every non-empty port member of ``comp``."""
    out = []
    for path, member, value in comp.signature.flatten(comp):
        v = Value.cast(value)
        if len(v):
            out.append((_port_name(path), v, member.flow == wiring.In))
    return out


class _LeafTop(Elaboratable):
    """``comp`` under explicit ``clk`` / ``rst`` inputs (so every leaf module has both)."""

    def __init__(self, comp: Any):
        self.comp = comp
        self.clk = Signal(name="clk")
        self.rst = Signal(name="rst")

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        m.domains.sync = cd = ClockDomain("sync")
        m.d.comb += [cd.clk.eq(self.clk), cd.rst.eq(self.rst)]
        m.submodules.leaf = self.comp
        return m


def leaf_verilog(comp: Any, name: str) -> str:
    """Verilog module ``name`` of the component ``comp`` with ports ``clk``, ``rst`` (the
    ``sync`` domain, always present) and each signature member as ``a__b__c``."""
    from amaranth.back import verilog

    from .cycle_check import fast_cycle_check

    top = _LeafTop(comp)
    ports: dict[str, tuple[Value, PortDirection]] = {
        "clk": (top.clk, PortDirection.Input), "rst": (top.rst, PortDirection.Input)}
    for pname, value, is_in in _leaf_ports(comp):
        if pname in ports:
            raise ValueError(f"{type(comp).__name__}: port {pname!r} clashes with clk/rst")
        ports[pname] = (value, PortDirection.Input if is_in else PortDirection.Output)
    with fast_cycle_check():
        return verilog.convert(top, name=name, ports=ports, emit_src=False)


class LeafModules:
    """A :data:`Leaf` that instantiates every leaf as a Verilog module of its own (module
    doc). Leaves with the same :func:`fingerprint` share one module, named
    ``<prefix>_<class>[_l<latency>][_<k>]``; a leaf without a fingerprint gets a module of its
    own. :meth:`verilog` converts each module once (from its first instance).
    """

    def __init__(self, prefix: str):
        if not isinstance(prefix, str) or not prefix.isidentifier():
            raise ValueError(f"prefix must be a Verilog identifier, not {prefix!r}")
        self._prefix = prefix
        self._by_key: dict[str, str] = {}
        self._modules: dict[str, Any] = {}  # module name -> first instance
        self._count: dict[str, int] = {}  # module name -> instances
        self._texts: dict[str, str] = {}

    def _kind(self, comp: Any) -> str:
        key = fingerprint(comp)
        if key is not None and key in self._by_key:
            return self._by_key[key]
        base = f"{self._prefix}_{type(comp).__name__.lower()}"
        lat = getattr(comp, "latency", None)
        if isinstance(lat, int) and not isinstance(lat, bool):
            base += f"_l{lat}"
        kind, k = base, 1
        while kind in self._modules:
            kind, k = f"{base}_{k}", k + 1
        self._modules[kind] = comp
        if key is not None:
            self._by_key[key] = kind
        return kind

    def __call__(self, m: Module, name: str, comp: Any) -> Any:
        if not isinstance(comp, wiring.Component):
            raise TypeError(f"leaf {name!r}: a LeafModules leaf must be a wiring.Component, "
                            f"not {comp!r}")
        kind = self._kind(comp)
        self._count[kind] = self._count.get(kind, 0) + 1
        ports: dict[str, Any] = {"i_clk": ClockSignal(), "i_rst": ResetSignal()}
        for pname, value, is_in in _leaf_ports(comp):
            ports[("i_" if is_in else "o_") + pname] = value
        m.submodules[name] = Instance(kind, **ports)
        if self._modules[kind] is not comp:
            comp._MustUse__used = True  # stands in for the module; never elaborated itself
        return comp

    @property
    def prefix(self) -> str:
        return self._prefix

    @property
    def modules(self) -> dict[str, Any]:
        """Module name -> the leaf it was (or will be) converted from, in first-use order."""
        return dict(self._modules)

    @property
    def instances(self) -> dict[str, int]:
        """Module name -> how many instances of it the design has."""
        return dict(self._count)

    def verilog(self) -> dict[str, str]:
        """Module name -> Verilog text of every module, each converted once (a leaf that adds
        leaves through this object adds their modules too)."""
        while len(self._texts) < len(self._modules):
            for kind, comp in list(self._modules.items()):
                if kind not in self._texts:
                    self._texts[kind] = leaf_verilog(comp, kind)
        return {k: self._texts[k] for k in self._modules}
