"""The core testbench's Verilog and Verilator model, built once per core configuration.

:func:`core_model` gives the cocotb-capable Verilator model of :class:`~.core_top.CoreTestTop`
(module :data:`TOP`) for a core configuration, in two cached steps:

1. **Verilog** (:func:`core_verilog`): ``vitis_verilog(CoreTestTop(core, core_layout(core)),
   TOP, emit_src=False, registered_reset=True)`` (no top-level input reaches logic
   combinationally, which keeps Verilator's per-edge input evaluation small) plus the back-door
   RAM (:func:`~.axi_mem.with_ram`); minutes and several MB for the tiny core. It runs in a
   child process, which records every source file of ``dfx.rtl`` / ``dfx.isa`` it imported (and
   the ISA's YAML) in ``sources.json``. Entries live under :func:`core_cache_dir` in
   ``<core>-<core_key>/<sources_key>/``: :func:`core_key` hashes the core and board
   configurations, the memory layout and the Amaranth version; :func:`sources_key` the contents
   of the recorded files. A lookup reuses an entry whose recorded files are unchanged, so only
   edits of code that reaches the hardware regenerate it (never the testbench or host modules,
   :data:`HOST_ONLY`); the :data:`KEEP_VERILOG` most recently used entries per configuration are
   kept.
2. **Model** (:func:`dfx.rtl.toolchain.model.build_model`, itself cached by content): no
   ``--public-flat-rw``; only the top's ports are public (the back doors are ports; an internal
   wire of the top made public, such as the reset, would be re-evaluated on every clock edge
   with all the logic that reads it).

Both steps are guarded by file locks, so parallel test workers build once. ``progress(text)``
receives a line when a step starts and when it ends (with its wall time).

:func:`core_layout` fixes the testbench memories: the board's sizes, HBM pseudo-channel ``i``
at AXI address ``(i + 1) << 32`` and DDR at ``DDR_BASE``, so the core's base-address adders
are exercised (Vitis buffers are never at 0).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from dfx.isa.config import CoreConfig, to_dict

from .mem_model import MemLayout

__all__ = [
    "CORE_VERILATOR_ARGS",
    "DDR_BASE",
    "HOST_ONLY",
    "TOP",
    "core_cache_dir",
    "core_key",
    "core_layout",
    "core_model",
    "core_verilog",
]

#: The testbench's top module.
TOP = "dfx_core_tb"
#: AXI address of the DDR buffer in the testbench (a multiple of any DDR size modelled).
DDR_BASE = 0x40_0000_0000
#: Files of ``dfx.rtl`` (relative paths) that never reach the hardware: the cocotb testbench,
#: its launcher, the Verilator toolchain and the regression driver.
HOST_ONLY = frozenset({
    "tb/core_build.py", "tb/core_job.py", "tb/core_run.py", "tb/core_tb.py",
    "tb/core_check.py", "tb/core_directed.py", "tb/core_faults.py", "tb/core_programs.py",
    "tb/core_random.py", "regress.py", "generate.py",
})
_HOST_ONLY_DIRS = ("toolchain/",)
#: Verilator options of the core testbench besides the Vitis ones: Yosys writes the unused
#: zero-width address wires of depth-1 FIFOs (and a few zero-width slices) as ``wire [-1:0]``,
#: which Verilator reports as an ascending range (ASCRANGE); nothing reads them.
CORE_VERILATOR_ARGS = ("-Wno-ASCRANGE",)
SOURCES_FILE = "sources.json"
#: Written next to the Verilog: the generation's wall time and size.
GENERATE_FILE = "generate.json"
#: The version of :func:`_generate` (this module is not a recorded source): bump it when the
#: way the Verilog is generated changes.
GENERATION = 2
#: Seconds between "still building" progress messages.
HEARTBEAT_S = 30.0
#: Generated Verilog kept per configuration (the most recently used).
KEEP_VERILOG = 3

Progress = Callable[[str], None]


def core_cache_dir() -> Path:
    """Where generated core Verilog lives: ``$DFX_CORE_CACHE``, else
    ``$XDG_CACHE_HOME/dfx/core`` (``~/.cache/dfx/core``)."""
    env = os.environ.get("DFX_CORE_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "dfx" / "core"


def core_layout(core: CoreConfig) -> MemLayout:
    """The testbench memories of ``core`` (module doc)."""
    n = core.b.hbm.pseudo_channels
    return MemLayout.from_core(core, hbm_bases=tuple((i + 1) << 32 for i in range(n)),
                               ddr_base=DDR_BASE)


def _package_roots() -> dict[str, Path]:
    import dfx.isa
    import dfx.rtl

    return {"rtl": Path(next(iter(dfx.rtl.__path__))).resolve(),
            "isa": Path(next(iter(dfx.isa.__path__))).resolve()}


def _relative(path: str | Path, roots: dict[str, Path]) -> str | None:
    """``rtl/...`` / ``isa/...`` of a file of those packages that can shape the hardware;
    None for any other file (and for :data:`HOST_ONLY`)."""
    p = Path(path).resolve()
    for pkg, root in roots.items():
        if p.is_relative_to(root):
            rel = p.relative_to(root).as_posix()
            if pkg == "rtl" and (rel in HOST_ONLY or rel.startswith(_HOST_ONLY_DIRS)):
                return None
            return f"{pkg}/{rel}"
    return None


def sources_key(files: list[str]) -> str | None:
    """Hash of the current contents of ``files`` (``rtl/...``, ``isa/...``); None if one
    is missing."""
    roots = _package_roots()
    h = hashlib.sha256()
    for rel in sorted(files):
        pkg, _, sub = rel.partition("/")
        try:
            data = (roots[pkg] / sub).read_bytes()
        except (KeyError, OSError):
            return None
        h.update(rel.encode() + b"\0" + data + b"\0")
    return h.hexdigest()[:20]


def core_key(core: CoreConfig) -> str:
    """The configuration part of the cache key: :data:`GENERATION`, the core and board
    configurations, the testbench memory layout, the Amaranth version."""
    import importlib.metadata

    h = hashlib.sha256()
    h.update(json.dumps([TOP, GENERATION, to_dict(core), to_dict(core.b),
                         repr(core_layout(core)), importlib.metadata.version("amaranth")],
                        sort_keys=True, default=str).encode())
    return h.hexdigest()[:20]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _say(progress: Progress | None, text: str) -> None:
    if progress is not None:
        progress(text)


@contextlib.contextmanager
def _heartbeat(progress: Progress | None, what: str, first: float = 0.0,
               every: float = HEARTBEAT_S) -> Iterator[None]:
    """Say ``what`` after ``first`` seconds, then ``still <what> (N s)`` every ``every``
    seconds, until the block ends (a block that ends sooner says nothing)."""
    if progress is None:
        yield
        return
    stop = threading.Event()
    t0 = time.perf_counter()

    def beat() -> None:
        if stop.wait(first):
            return
        progress(what)
        while not stop.wait(every):
            progress(f"still {what.split(' (')[0]} ({time.perf_counter() - t0:.0f} s)")

    th = threading.Thread(target=beat, daemon=True)
    th.start()
    try:
        yield
    finally:
        stop.set()
        th.join()


def _lookup(root: Path) -> Path | None:
    """The generated Verilog of ``root`` whose recorded sources are unchanged, if any."""
    if not root.is_dir():
        return None
    entries = sorted((e for e in root.iterdir() if (e / SOURCES_FILE).is_file()),
                     key=lambda e: e.stat().st_mtime, reverse=True)
    for e in entries:
        try:
            files = json.loads((e / SOURCES_FILE).read_text())["files"]
        except (OSError, ValueError, KeyError):
            continue
        if sources_key(files) == e.name and (e / f"{TOP}.v").is_file():
            os.utime(e)
            return e / f"{TOP}.v"
    return None


def _prune(root: Path, keep: int = KEEP_VERILOG) -> None:
    entries = sorted((e for e in root.iterdir() if e.is_dir()),
                     key=lambda e: e.stat().st_mtime, reverse=True)
    for e in entries[keep:]:
        shutil.rmtree(e, ignore_errors=True)


def core_verilog(core: CoreConfig, *, progress: Progress | None = None) -> Path:
    """The testbench Verilog of ``core``: generated (in a child process, which records the
    source files it imported) once per configuration and content of those files."""
    root = core_cache_dir() / f"{core.name}-{core_key(core)}"
    with _locked(root.parent / f"{root.name}.lock"):
        hit = _lookup(root)
        if hit is not None:
            return hit
        t0 = time.perf_counter()
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".new-", dir=root))
        try:
            (tmp / "config.json").write_text(json.dumps({"core": to_dict(core),
                                                         "board": to_dict(core.b)}))
            with _heartbeat(progress, f"generating the Verilog of core {core.name!r} (once "
                            "per RTL change; takes minutes)"):
                r = subprocess.run([sys.executable, "-c", _CHILD, str(tmp)],
                                   capture_output=True, text=True, check=False)
            if r.returncode != 0:
                raise RuntimeError(f"generating the core Verilog failed: "
                                   f"{(r.stdout + r.stderr)[-4000:]}")
            files = json.loads((tmp / SOURCES_FILE).read_text())["files"]
            key = sources_key(files)
            if key is None:
                raise RuntimeError("a source file vanished while the core Verilog was generated")
            final = root / key
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        _prune(root)
        dt = time.perf_counter() - t0
        size = (final / f"{TOP}.v").stat().st_size
        (final / GENERATE_FILE).write_text(json.dumps({"seconds": round(dt, 1), "bytes": size,
                                                       "core": core.name}))
        _say(progress, f"generated {size / 1e6:.1f} MB of Verilog in {dt:.0f} s")
    return final / f"{TOP}.v"


_CHILD = "import sys; from dfx.rtl.tb.core_build import _generate; _generate(sys.argv[1])"


def _generate(directory: str) -> None:
    """The child process of :func:`core_verilog`: ``config.json`` in ``directory`` -> the
    Verilog and :data:`SOURCES_FILE` (every imported file of ``dfx.rtl`` / ``dfx.isa`` that
    can shape the hardware, and the ISA's YAML)."""
    import warnings

    from amaranth.hdl import UnusedElaboratable

    from dfx.isa.config import core_from_dict
    from dfx.rtl.bus.vitis import vitis_verilog

    from .axi_mem import with_ram
    from .core_top import CoreTestTop

    d = Path(directory)
    cfg = json.loads((d / "config.json").read_text())
    core = core_from_dict(cfg["core"], cfg["board"], "core build")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnusedElaboratable)
        text = with_ram(vitis_verilog(CoreTestTop(core, core_layout(core)), TOP,
                                      emit_src=False, registered_reset=True))
    (d / f"{TOP}.v").write_text(text)
    roots = _package_roots()
    files = {r for m in list(sys.modules.values())
             if (f := getattr(m, "__file__", None)) and (r := _relative(f, roots))}
    files |= {f"isa/{p.name}" for p in roots["isa"].glob("*.yaml")}
    (d / SOURCES_FILE).write_text(json.dumps({"files": sorted(files)}, indent=0))


def build_times(model: Any) -> dict[str, float | None]:
    """The recorded wall times of the Verilog generation and the Verilator build behind a
    model from :func:`core_model` (None where not recorded)."""
    out: dict[str, float | None] = {"generate_s": None, "verilator_s": None}
    d = Path(model.build_dir)
    try:
        stamp = json.loads((d / ".dfx-model.json").read_text())
        out["verilator_s"] = float(stamp["build_s"])
        src = Path(next(a for a in stamp["command"] if a.endswith(f"{TOP}.v")))
        out["generate_s"] = float(json.loads((src.parent / GENERATE_FILE).read_text())["seconds"])
    except (OSError, ValueError, KeyError, StopIteration):
        pass
    return out


def top_ports(verilog: Path) -> list[str]:
    """The port names of module :data:`TOP` in a generated Verilog file (its header)."""
    head = ""
    with open(verilog) as f:
        for line in f:
            head += line
            if ");" in line and f"module {TOP}(" in head:
                break
    m = re.search(rf"module {TOP}\((.*?)\);", head, re.S)
    if m is None:
        raise RuntimeError(f"{verilog}: no module {TOP} header")
    return [p.strip() for p in m.group(1).split(",") if p.strip()]


def core_model(core: CoreConfig, *, waves: bool = False,
               progress: Progress | None = None):  # -> VerilatorModel
    """The Verilator model of ``core``'s testbench (cached; ``waves``: with tracing, a
    separate build)."""
    from dfx.rtl.bus.vitis import VERILATOR_ARGS
    from dfx.rtl.toolchain.model import build_model

    src = core_verilog(core, progress=progress)
    # a cache hit returns at once; say what is happening only when it does not
    with _heartbeat(progress, "building the Verilator model (once per RTL change; takes "
                    "minutes)", first=2.0):
        model = build_model([src], TOP, extra_args=[*VERILATOR_ARGS, *CORE_VERILATOR_ARGS],
                            waves=waves, top_signals=top_ports(src))
    if not model.cached:
        _say(progress, f"built the Verilator model in {model.build_s:.0f} s")
    return model
