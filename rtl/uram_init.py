"""UltraRAM memories (issue 12): :func:`ultra`, the attributes that put an
``amaranth.lib.memory.Memory`` in URAM, and no initialiser for them.

The VRF's copies (:mod:`dfx.rtl.vrf`), the weight buffer (:mod:`dfx.rtl.dma.wbuf`) and the
instruction buffer (:mod:`dfx.rtl.frontend.fetch`) are URAM: the datapath units take most of
the U280's 2,016 BRAM36, and no other unit uses its 960 URAM288 (docs/BENCHMARKS.md,
"Whole-core resource budget").

An UltraScale+ URAM288 takes no initial contents from the design (only Versal's UltraRAM
accepts INIT values, AMD UG1273), and Amaranth 0.5 emits an initialiser (``$meminit_v2``, an
``initial`` block in Verilog) for every ``Memory``, all-zero ones included. For the VRF's 30
copies at dfx-u280 that is 126 Mbit of zeros in the RTLIL and 120 K ``initial`` assignments
in the Verilog, which Verilator compiles into one huge function.

:func:`install` (run by :func:`ultra`) makes conversions skip the
initialiser of a memory marked ``ram_style = "ultra"`` whose initial contents are all zero, so
its Verilog declares the array without an ``initial`` block. Verilator starts such arrays at
zero (``+verilator+rand+reset`` 0, the default); a program the functional simulator accepts
never reads a vector before writing it (docs/core.md, "The vector register file"). Every other
memory is emitted unchanged. Outside Amaranth 0.5 it does nothing.
"""

from __future__ import annotations

from typing import Any

import amaranth

__all__ = ["install", "ultra"]

_installed = False


def install() -> None:
    """Patch Amaranth 0.5's RTLIL emitter once (module doc)."""
    global _installed
    if _installed or not amaranth.__version__.startswith("0.5."):
        return
    from amaranth.back import rtlil

    original = rtlil.ModuleEmitter.emit_memory

    def emit_memory(self: Any, cell_idx: int, cell: Any) -> None:
        if cell.attributes.get("ram_style") == "ultra" and not any(cell.init):
            return
        original(self, cell_idx, cell)

    rtlil.ModuleEmitter.emit_memory = emit_memory
    _installed = True


def ultra() -> dict[str, str]:
    """``Memory(attrs=...)`` of a memory to place in URAM: ``ram_style = "ultra"`` (Vivado's
    attribute, honoured by the resource budget's geometry rule); installs the initialiser
    skip (module doc)."""
    install()
    return {"ram_style": "ultra"}
