"""Memories "from geometry" for ``bench/resources.py --budget`` (issue 12, item 1).

Where Yosys cannot synthesise a block at full size, its memories are still counted: every
``amaranth.lib.memory.Memory`` under the block (:func:`find_memories`, found by elaborating
the hierarchy as the core builds it) is mapped by a written rule (:func:`map_memory`) on the
U280's block RAMs (AMD UG573, commonly quoted figures):

* BRAM36 = 36 Kbit, true dual port, as 32K x 1, 16K x 2, 8K x 4, 4K x 9, 2K x 18, 1K x 36, or
  512 x 72 in simple dual port (1 read + 1 write);
* URAM288 = 288 Kbit = 4K x 72, two ports (1 read + 1 write here).

Rule, per memory of ``depth`` x ``width`` with R read and W write ports:

0. depth <= 64 and W <= 1: LUT-RAM, width LUTs per read port (a FIFO or queue; Yosys and
   Vivado put these in LUT-RAM, not in a block RAM).
1. every read port synchronous and R + W <= 2: block RAM. The BRAM36 count is the cheapest
   aspect ratio, ceil(width / w) x ceil(depth / d); the URAM count is ceil(width / 72) x
   ceil(depth / 4096); the one that uses fewer bits of the device is taken (ties: URAM, the
   larger pool: 960 x 288 Kbit = 270 Mbit against 2,016 x 36 Kbit = 72.6 Mbit). A memory
   marked ``ram_style = "ultra"`` (the Vivado attribute, ``Memory(attrs=...)``:
   ``dfx.rtl.uram_init.ultra()``, the VRF's copies and the weight and instruction buffers) is
   URAM.
2. synchronous reads, W = 1 and R > 1: R copies of rule 1 (one per read port, every write
   goes to all copies). Flagged "replicated".
3. an asynchronous (``comb``) read port and W <= 1: LUT-RAM, ceil(depth / 64) x width LUTs
   per read port (one LUT6 holds 64 x 1 bits) plus a 4:1-per-LUT read multiplexer over the
   64-deep pieces. Flagged "LUT-RAM".
4. otherwise (W > 1 with R + W > 2): flip-flops, depth x width FF; the write decoders and
   read multiplexers are not counted. Flagged "FF".

The bits of block RAM + UltraRAM a memory takes are what the budget's "BRAM+URAM %" adds up
(:data:`BRAM_BITS`, :data:`URAM_BITS`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

SHALLOW = 64
"""Memories at most this deep (and one write port) go to LUT-RAM (rule 0)."""
BRAM_BITS = 36 * 1024
URAM_BITS = 288 * 1024
BRAM_MODES = ((1, 32768), (2, 16384), (4, 8192), (9, 4096), (18, 2048), (36, 1024))
BRAM_SDP_MODE = (72, 512)
URAM_MODE = (72, 4096)


@dataclass
class MemoryGeometry:
    """One memory: ``path`` in its block, ``depth`` x ``width``, ``reads`` (of which
    ``async_reads``), ``writes``; ``count``: how many such memories the row has."""

    path: str
    depth: int
    width: int
    reads: int
    async_reads: int
    writes: int
    count: float = 1
    style: str = ""  # the memory's ram_style attribute, if any

    @property
    def bits(self) -> int:
        return self.depth * self.width


def bram36_count(depth: int, width: int, simple_dual: bool) -> int:
    """Fewest BRAM36 holding depth x width in one aspect ratio (72 wide only in SDP)."""
    modes = BRAM_MODES + ((BRAM_SDP_MODE,) if simple_dual else ())
    return min(math.ceil(width / w) * math.ceil(depth / d) for w, d in modes)


def uram_count(depth: int, width: int) -> int:
    return math.ceil(width / URAM_MODE[0]) * math.ceil(depth / URAM_MODE[1])


def map_memory(g: MemoryGeometry) -> dict[str, Any]:
    """LUT, LUT-RAM, FF, BRAM36, URAM of one memory by the module doc's rule, with ``kind``
    (the rule applied) and ``flag`` (empty for plain block RAM)."""
    out: dict[str, Any] = {"lut": 0, "lut_mem": 0, "ff": 0, "bram36": 0, "uram": 0, "dsp": 0}
    sync = g.async_reads == 0
    if g.depth <= SHALLOW and g.writes <= 1:
        store = g.width * max(1, g.reads)
        out.update(lut=store, lut_mem=store, kind="LUT-RAM (shallow)", flag="")
    elif sync and g.reads + g.writes <= 2 or sync and g.writes <= 1:
        copies = max(1, g.reads) if g.reads + g.writes > 2 else 1
        simple = g.reads <= 1 and g.writes <= 1
        b = bram36_count(g.depth, g.width, simple) * copies
        u = uram_count(g.depth, g.width) * copies
        if u * URAM_BITS <= b * BRAM_BITS or g.style == "ultra":
            out.update(uram=u, kind=f"URAM {copies} x {u // copies}")
        else:
            out.update(bram36=b, kind=f"BRAM36 {copies} x {b // copies}")
        out["flag"] = "replicated" if copies > 1 else ""
    elif g.writes <= 1:
        pieces = math.ceil(g.depth / 64)
        store = pieces * g.width * max(1, g.reads)
        mux = math.ceil((pieces - 1) / 3) * g.width * max(1, g.reads)
        out.update(lut=store + mux, lut_mem=store, kind="LUT-RAM", flag="LUT-RAM")
    else:
        out.update(ff=g.bits, kind="flip-flops", flag="FF")
    return out


def _width(shape: Any) -> int:
    from amaranth.hdl import Shape

    return Shape.cast(shape).width


def find_memories(comp: Any, path: str = "", *, stop: tuple[type, ...] = ()
                  ) -> list[MemoryGeometry]:
    """Every ``Memory`` under ``comp`` (elaborating each level once, not descending into
    instances of ``stop``)."""
    from amaranth.hdl import Elaboratable, Module
    from amaranth.lib.memory import Memory

    out: list[MemoryGeometry] = []
    todo = [(path or type(comp).__name__, comp)]
    while todo:
        here, obj = todo.pop()
        if isinstance(obj, Memory):
            reads = obj.read_ports
            out.append(MemoryGeometry(here, obj.depth, _width(obj.shape), len(reads),
                                      sum(p.domain == "comb" for p in reads),
                                      len(obj.write_ports),
                                      style=str(obj.attrs.get("ram_style", ""))))
            continue
        if stop and isinstance(obj, stop) or not isinstance(obj, Elaboratable):
            continue
        frag = obj.elaborate(None)
        while isinstance(frag, Elaboratable) and not isinstance(frag, Module) \
                and not isinstance(frag, Memory):
            frag._MustUse__used = True  # elaborated only to look inside
            frag = frag.elaborate(None)
        if isinstance(frag, Elaboratable):
            frag._MustUse__used = True
        if isinstance(frag, Memory):
            todo.append((here, frag))
            continue
        if not isinstance(frag, Module):
            continue
        subs = [(f"{here}.{name}", sub) for name, sub in frag._named_submodules.items()]
        subs += [(f"{here}.<{k}>", sub) for k, sub in enumerate(frag._anon_submodules)]
        for sub_path, sub in subs:
            sub = sub[0] if isinstance(sub, tuple) else sub
            if isinstance(sub, Elaboratable):
                sub._MustUse__used = True
            todo.append((sub_path, sub))
    return out
