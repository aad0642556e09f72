"""The core testbench's Verilog and Verilator model, built once per core configuration.

:func:`core_model` gives the cocotb-capable Verilator model of :class:`~.core_top.CoreTestTop`
(module :data:`TOP`) for a core configuration, in two cached steps:

1. **Verilog** (:func:`core_verilog`): :func:`dfx.rtl.core.generate.core_verilog` of
   :class:`~.core_top.CoreTestTop` (the core's repeated blocks as deduplicated leaf modules:
   under a minute for the tiny core; cached per configuration and content of the hardware
   sources) plus the back-door RAM (:func:`~.axi_mem.with_ram`), written to a
   content-addressed file (:func:`dfx.rtl.toolchain.verilator.cached_source`).
2. **Model** (:func:`dfx.rtl.toolchain.model.build_model`, itself cached by content): no
   ``--public-flat-rw``; only the top's ports are public (the back doors are ports; an internal
   wire of the top made public, such as the reset, would be re-evaluated on every clock edge
   with all the logic that reads it).

Both steps are guarded by file locks, so parallel test workers build once. ``progress(text)``
receives a line when a step starts (unless cached), every :data:`HEARTBEAT_S` seconds while
it runs, and when it ends (with its wall time).

:func:`core_layout` fixes the testbench memories: the board's sizes, HBM pseudo-channel ``i``
at AXI address ``(i + 1) << 32`` and DDR at ``DDR_BASE``, so the core's base-address adders
are exercised (Vitis buffers are never at 0).

:func:`card_model` is the general entry: the card's top (``top``: ``"core"``, the bare core's
:class:`~.core_top.CoreTestTop`, or ``"board"``, the Alveo kernel's
:class:`~.board_top.BoardTestTop`) and the number of cards (several: the card's Verilog
instantiated in a ring top, :mod:`.ring_top` / :mod:`.board_ring`). :func:`core_model` and
:func:`ring_model` are its bare-core cases.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from dfx.isa.config import CoreConfig

from .mem_model import MemLayout

__all__ = [
    "CORE_VERILATOR_ARGS",
    "DDR_BASE",
    "TOP",
    "build_times",
    "card_model",
    "card_verilog",
    "core_layout",
    "core_model",
    "core_verilog",
    "ring_model",
    "top_ports",
]

#: The testbench's top module.
TOP = "dfx_core_tb"
#: AXI address of the DDR buffer in the testbench (a multiple of any DDR size modelled).
DDR_BASE = 0x40_0000_0000
#: Verilator options of the core testbench besides the Vitis ones: Yosys writes the unused
#: zero-width address wires of depth-1 FIFOs (and a few zero-width slices) as ``wire [-1:0]``,
#: which Verilator reports as an ascending range (ASCRANGE); nothing reads them.
CORE_VERILATOR_ARGS = ("-Wno-ASCRANGE",)
#: Written next to the Verilog file: the generation's wall time.
GENERATE_FILE = "generate.json"
#: Seconds between "still building" progress messages.
HEARTBEAT_S = 30.0

Progress = Callable[[str], None]


def core_layout(core: CoreConfig) -> MemLayout:
    """The testbench memories of ``core`` (module doc)."""
    n = core.b.hbm.pseudo_channels
    return MemLayout.from_core(core, hbm_bases=tuple((i + 1) << 32 for i in range(n)),
                               ddr_base=DDR_BASE)


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


def _card_top(top: str) -> tuple[str, Any, str]:
    """(card module, card component, ring top module) of a card top (module doc)."""
    if top == "core":
        from .core_top import CoreTestTop
        from .ring_top import RING_TOP

        return TOP, CoreTestTop, RING_TOP
    if top == "board":
        from .board_ring import BOARD_RING_TOP, BOARD_TOP
        from .board_top import BoardTestTop

        return BOARD_TOP, BoardTestTop, BOARD_RING_TOP
    raise ValueError(f"top must be 'core' or 'board', not {top!r}")


def core_verilog(core: CoreConfig, *, progress: Progress | None = None,
                 ring_fifos: bool = True) -> Path:
    """The testbench Verilog of ``core`` as a file (module doc; generated once per RTL
    change); ``ring_fifos=False``: the ring model's card (:class:`~.core_top.CoreTestTop`)."""
    return card_verilog(core, progress=progress, ring_fifos=ring_fifos)


def card_verilog(core: CoreConfig, *, top: str = "core", progress: Progress | None = None,
                 ring_fifos: bool = True) -> Path:
    """The Verilog of the card top ``top`` of ``core`` (module doc) as a file, with the
    memories' RAM; ``ring_fifos``: :func:`core_verilog`'s (bare core only)."""
    from dfx.rtl.core.generate import core_verilog as generate
    from dfx.rtl.toolchain.verilator import cached_source

    from .axi_mem import with_ram

    module, component, _ring = _card_top(top)
    t0 = time.perf_counter()
    what = f"core {core.name!r}" + (" on the board top" if top == "board" else "")
    with _heartbeat(progress, f"generating the Verilog of {what} (once per RTL change)",
                    first=2.0):
        params: dict[str, Any] = {"layout": core_layout(core)}
        if not ring_fifos and top == "core":
            params["ring_fifos"] = False
        text = generate(core, top=module, component=component, params=params)
    path = cached_source(with_ram(text), f"{module}.v")
    dt = time.perf_counter() - t0
    if dt > 2.0:
        (path.parent / GENERATE_FILE).write_text(json.dumps({"seconds": round(dt, 1)}))
        _say(progress, f"generated {len(text) / 1e6:.1f} MB of Verilog in {dt:.0f} s")
    return path


def build_times(model: Any) -> dict[str, float | None]:
    """The recorded wall times of the Verilog generation and the Verilator build behind a
    model from :func:`core_model` (None where not recorded)."""
    out: dict[str, float | None] = {"generate_s": None, "verilator_s": None}
    d = Path(model.build_dir)
    try:
        stamp = json.loads((d / ".dfx-model.json").read_text())
        out["verilator_s"] = float(stamp["build_s"])
        cards = (f"{TOP}.v", f"{_card_top('board')[0]}.v")
        src = Path(next(a for a in stamp["command"] if a.endswith(cards)))
        out["generate_s"] = float(json.loads((src.parent / GENERATE_FILE).read_text())["seconds"])
    except (OSError, ValueError, KeyError, StopIteration):
        pass
    return out


def top_ports(verilog: Path) -> list[str]:
    """The port names of module :data:`TOP` in a generated Verilog file (its header)."""
    return _header_ports(verilog, TOP)


def _header_ports(verilog: Path, module: str) -> list[str]:
    head = ""
    with open(verilog) as f:
        for line in f:
            head += line
            if ");" in line and f"module {module}(" in head:
                break
    m = re.search(rf"module {module}\((.*?)\);", head, re.S)
    if m is None:
        raise RuntimeError(f"{verilog}: no module {module} header")
    return [p.strip() for p in m.group(1).split(",") if p.strip()]


def core_model(core: CoreConfig, *, waves: bool = False,
               progress: Progress | None = None):  # -> VerilatorModel
    """The Verilator model of ``core``'s testbench (cached; ``waves``: with tracing, a
    separate build)."""
    return card_model(core, 1, waves=waves, progress=progress)


def ring_model(core: CoreConfig, cards: int, *, waves: bool = False,
               progress: Progress | None = None):  # -> VerilatorModel
    """The Verilator model of ``cards`` cards of ``core`` in a ring
    (:class:`~.ring_top.RingTestTop`, module :data:`~.ring_top.RING_TOP`): the one-card
    testbench's Verilog (:func:`core_verilog`) instantiated ``cards`` times, joined by routers
    and link models (their latencies and stalls set at run time), cached per configuration.
    One card: :func:`core_model`."""
    return card_model(core, cards, waves=waves, progress=progress)


def card_model(core: CoreConfig, cards: int = 1, *, top: str = "core", waves: bool = False,
               progress: Progress | None = None):  # -> VerilatorModel
    """The Verilator model of ``cards`` cards of ``core`` with the card top ``top`` (module
    doc): one card, the card's module (:func:`card_verilog`); several, the ring top around as
    many instances of it (:func:`~.ring_top.ring_verilog`,
    :func:`~.board_ring.board_ring_verilog`); cached per configuration."""
    from dfx.rtl.bus.vitis import VERILATOR_ARGS
    from dfx.rtl.toolchain.model import build_model
    from dfx.rtl.toolchain.verilator import cached_source

    if not isinstance(cards, int) or isinstance(cards, bool) or cards < 1:
        raise ValueError(f"cards must be a positive integer, not {cards!r}")
    module, _component, ring_module = _card_top(top)
    card_src = card_verilog(core, top=top, progress=progress, ring_fifos=cards == 1)
    if cards == 1:
        sources, toplevel, what = [card_src], module, "the Verilator model"
    else:
        card_text = card_src.read_text()
        if top == "core":
            from .ring_top import ring_verilog

            text = ring_verilog(core, cards, card_text, module)
        else:
            from .board_ring import board_ring_verilog

            text = board_ring_verilog(core, cards, card_text)
        sources = [cached_source(text, f"{ring_module}.v"), card_src]
        toplevel, what = ring_module, f"the Verilator model of {cards} cards"
    with _heartbeat(progress, f"building {what} (once per RTL change; takes minutes)",
                    first=2.0):
        model = build_model(sources, toplevel,
                            extra_args=[*VERILATOR_ARGS, *CORE_VERILATOR_ARGS], waves=waves,
                            top_signals=_header_ports(sources[0], toplevel))
    if not model.cached:
        _say(progress, f"built the Verilator model in {model.build_s:.0f} s")
    return model
