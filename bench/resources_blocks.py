"""The core's blocks that are not datapath units, for ``bench/resources.py --blocks``.

Each block is the object :class:`dfx.rtl.core.core.DfxCore` (the Vitis kernel, ``debug=False``)
builds: the core and its backend are constructed and elaborated once, and their submodules
are taken as they are (:func:`core_blocks`), so every constructor argument comes from the core
configuration the way the core passes it.

Hierarchical synthesis (:func:`plan`): while a block is converted, the classes of
:data:`UNITS` (the MPU, VPU and LUT-GEMM unit, estimated elsewhere) and of ``split`` (big
repeated sub-blocks: an HBM port, the arithmetic blocks of the LUT port's epilogue) elaborate
as black-box ``Instance``\\ s. Each distinct split sub-block (:func:`dfx.rtl.leaves.fingerprint`)
is then synthesised once and counted as many times as it is instantiated; the units count 0.
The sum is the flat figure up to the optimisation Yosys could have done across the boundary.

The VRF (:func:`vrf_jobs`) is its live-value table synthesised whole, and the rest of it (the
read multiplexers) with the table and the block-RAM copies black boxes; the copies are counted
by the geometry rule.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from amaranth.hdl import ClockSignal, Instance, Module, ResetSignal
from amaranth.lib import wiring

UNITS = ("dfx.rtl.mpu.mpu.Mpu", "dfx.rtl.vpu.vpu.Vpu", "dfx.rtl.lutgemm.top.LutGemm")
"""Datapath units: black boxes counted 0 here (their estimate is the units table's)."""

ARITH = ("dfx.rtl.arith.fp32_add.Fp32Add", "dfx.rtl.arith.fp32_mul.Fp32Mul",
         "dfx.rtl.arith.fp16_mul.Fp16Mul", "dfx.rtl.arith.fp32_to_fp16.Fp32ToFp16",
         "dfx.rtl.arith.int_to_fp32.IntToFp32", "dfx.rtl.arith.pwl_table.PwlTable",
         "dfx.rtl.arith.pwl_table.PwlLanes",
         "dfx.rtl.arith.block_dot.BlockDot")
"""Arithmetic blocks (split out of the LUT port's SFU_M epilogue)."""

MEMORY = ("dfx.rtl.dma.channel.AxiChannel", "dfx.rtl.dma.hbm.HbmSpace",
          "dfx.rtl.dma.ddr.DdrSpace", "dfx.rtl.dma.wbuf.WbufSpace",
          "dfx.rtl.dma.dma_engine.DmaEngine", "dfx.rtl.dma.weights.WeightStreamer",
          "dfx.rtl.dma.lutstream.LutStream", "dfx.rtl.dma.word.WordPort",
          "dfx.rtl.dma.loader.ProgramLoader")
"""The memory system's blocks, split out (one AXI4 port per HBM pseudo-channel: 32 at
dfx-u280); what remains of :class:`~dfx.rtl.dma.system.MemorySystem` is the fabric's routing."""

DMA_PARTS = ("dfx.rtl.dma.extract.Extractor", "dfx.rtl.dma.place.Placer",
             "dfx.rtl.dma.place.ScatterPlacer", "dfx.rtl.dma.dma_ops.DmaOpGen",
             "dfx.rtl.dma.gearbox.Gearbox")
"""The row-wide shifters and address generators of the DMA engine, LUT-GEMM stream reader and
weight streamer, split out (each synthesised once)."""


def _cls(path: str) -> type:
    import importlib

    mod, name = path.rsplit(".", 1)
    return getattr(importlib.import_module(mod), name)


def memory_ports(mem: Any) -> list[tuple[str, Any, bool]]:
    """(name, signal, is input) of every read port (``r<k>__en/addr/data``) and write port
    (``w<k>__en/addr/data``) of an ``amaranth.lib.memory.Memory``: its ports as a black box."""
    from amaranth.hdl import Value

    out = []
    for tag, ports in (("r", mem.read_ports), ("w", mem.write_ports)):
        for k, port in enumerate(ports):
            for path, member, value in port.signature.flatten(port):
                v = Value.cast(value)
                if len(v):
                    out.append((f"{tag}{k}__{'__'.join(map(str, path))}", v,
                                member.flow == wiring.In))
    return out


def _ports(comp: Any) -> list[tuple[str, Any, bool]]:
    """(name, signal, is input) of ``comp``'s ports, without constant members (a stream's
    ``ready`` when it is always ready); a ``Memory``'s are its read and write ports."""
    from amaranth.hdl import Const
    from amaranth.lib.memory import Memory

    from dfx.rtl.leaves import _leaf_ports

    ports = memory_ports(comp) if isinstance(comp, Memory) else _leaf_ports(comp)
    return [p for p in ports if not isinstance(p[1], Const)]


def convert(comp: Any) -> str:
    """Verilog module ``top`` of ``comp`` (its non-constant ports)."""
    from amaranth.back import verilog

    from dfx.rtl.cycle_check import fast_cycle_check

    with fast_cycle_check():
        return verilog.convert(comp, name="top", ports=[v for _, v, _ in _ports(comp)],
                               emit_src=False)


MAX_OUT = 60_000
"""Output bits per black-box Instance (Amaranth's netlist allows 2^16 per cell): a box with
more outputs is several Instances, ``<name>``, ``<name>_o1``..."""


def box_parts(name: str, comp: Any) -> list[tuple[str, list[tuple[str, Any, bool]]]]:
    """(module name, ports) of each Instance of the black box ``name``: the first has clk,
    rst and every input, each has outputs of at most :data:`MAX_OUT` bits."""
    ports = _ports(comp)
    parts: list[list[tuple[str, Any, bool]]] = [[p for p in ports if p[2]]]
    width = 0
    for p in (p for p in ports if not p[2]):
        if width + len(p[1]) > MAX_OUT and width:
            parts.append([])
            width = 0
        parts[-1].append(p)
        width += len(p[1])
    return [(name if k == 0 else f"{name}_o{k}", ps) for k, ps in enumerate(parts)]


def blackbox_decl(name: str, comp: Any) -> str:
    """Verilog ``(* blackbox *)`` modules of :func:`box_parts` (the first with clk, rst)."""
    out = []
    for k, (mod, ps) in enumerate(box_parts(name, comp)):
        ports = ([("clk", 1, True), ("rst", 1, True)] if k == 0 else [])
        ports += [(p, len(v), i) for p, v, i in ps]
        lines = [f"(* blackbox *)\nmodule {mod} ({', '.join(p for p, _, _ in ports)});"]
        for p, w, i in ports:
            rng = f"[{w - 1}:0] " if w > 1 else ""
            lines.append(f"  {'input' if i else 'output'} {rng}{p};")
        lines.append("endmodule\n")
        out.append("\n".join(lines))
    return "".join(out)


@dataclass
class Boxes:
    """The black boxes met while converting one design: module name -> (first instance,
    instances, whether it is a unit)."""

    modules: dict[str, list[Any]] = field(default_factory=dict)
    by_key: dict[Any, str] = field(default_factory=dict)

    def add(self, comp: Any, unit: bool) -> str:
        from dfx.rtl.leaves import fingerprint

        fp = fingerprint(comp)
        key = fp if fp is not None else id(comp)
        if key not in self.by_key:
            base = f"bb_{type(comp).__name__.lower()}"
            name, k = base, 1
            while name in self.modules:
                name, k = f"{base}_{k}", k + 1
            self.by_key[key] = name
            self.modules[name] = [comp, 0, unit]
        name = self.by_key[key]
        self.modules[name][1] += 1
        return name

    def decls(self) -> str:
        return "".join(blackbox_decl(n, c) for n, (c, _, _) in self.modules.items())


@contextlib.contextmanager
def boxed(classes: dict[type, bool], top: Any) -> Iterator[Boxes]:
    """While active, instances of ``classes`` (value: is a unit) other than ``top`` elaborate
    as black-box Instances recorded in the yielded :class:`Boxes`."""
    boxes = Boxes()
    saved = {c: c.__dict__.get("elaborate") for c in classes}

    def make(cls: type, unit: bool) -> Any:
        real = cls.elaborate

        def elaborate(self: Any, platform: Any) -> Module:
            if self is top:
                return real(self, platform)
            self._MustUse__used = True
            name = boxes.add(self, unit)
            m = Module()
            for k, (mod, ps) in enumerate(box_parts(name, self)):
                kw: dict[str, Any] = ({"i_clk": ClockSignal(), "i_rst": ResetSignal()}
                                      if k == 0 else {})
                for p, v, is_in in ps:
                    kw[("i_" if is_in else "o_") + p] = v
                m.submodules[f"bb{k}"] = Instance(mod, **kw)
            return m
        return elaborate

    try:
        for c, unit in classes.items():
            c.elaborate = make(c, unit)
        yield boxes
    finally:
        for c, f in saved.items():
            if f is None:
                del c.elaborate
            else:
                c.elaborate = f


@dataclass
class Job:
    """One synthesis: ``comp`` converted with the black boxes ``boxes``; ``count``: how many
    times it counts in its block."""

    label: str
    comp: Any
    count: int
    verilog: str = ""
    boxes: Boxes | None = None


def plan(label: str, comp: Any, *, split: tuple[str, ...] = (),
         exclude: tuple[type, ...] = (), count: int = 1, memories: bool = False) -> list[Job]:
    """The jobs of one block (module doc): ``comp`` with the units, ``exclude`` (counted
    elsewhere) and ``split`` classes black-boxed, then, recursively, each distinct split
    sub-block with its instance count (times ``count``). ``memories``: every
    ``amaranth.lib.memory.Memory`` is a black box too (not synthesised; :func:`boxed_memories`
    lists them for the geometry rule)."""
    from amaranth.lib.memory import Memory

    classes = ({_cls(p): True for p in UNITS} | {c: True for c in exclude}
               | {_cls(p): False for p in split} | ({Memory: True} if memories else {}))
    with boxed(classes, comp) as boxes:
        text = convert(comp)
    jobs = [Job(label, comp, count, text + boxes.decls(), boxes)]
    for name, (sub, n, unit) in boxes.modules.items():
        if not unit:
            jobs += plan(f"{label}/{name[3:]}", sub, split=split, count=count * n,
                         memories=memories)
    return jobs


def boxed_memories(jobs: list[Job]) -> list[Any]:
    """The ``Memory`` black boxes of ``jobs`` (:func:`plan` with ``memories``), each a
    :class:`resources_geometry.MemoryGeometry` counted as often as the jobs instantiate it."""
    import resources_geometry as geo
    from amaranth.lib.memory import Memory

    out = []
    for job in jobs:
        for name, (mem, n, _) in (job.boxes.modules.items() if job.boxes else ()):
            if isinstance(mem, Memory):
                (g,) = geo.find_memories(mem, f"{job.label}/{name[3:]}")
                g.count = n * job.count
                out.append(g)
    return out


def _subs(m: Module) -> dict[str, Any]:
    return {k: v[0] if isinstance(v, tuple) else v for k, v in m._named_submodules.items()}


def core_blocks(core: Any) -> dict[str, Any]:
    """Name -> the object :class:`DfxCore` (``debug=False``) builds for each block, plus
    ``core``/``backend`` (their own wiring, every child a black box)."""
    from dfx.rtl.core.core import DfxCore
    from dfx.rtl.leaves import mark_used

    top = DfxCore(core, debug=False)
    cm = _subs(top.elaborate(None))
    bm = _subs(cm["be"].elaborate(None))
    mm = _subs(cm["mem"].elaborate(None))
    out = {"core": top, "ctrl": cm["ctrl"], "control_unit": cm["cu"], "memfront": cm["front"],
           "memory": cm["mem"], "backend": cm["be"], **{f"be.{k}": v for k, v in bm.items()},
           **{f"mem.{k}": v for k, v in mm.items()},
           **{f"mem.{k}": v for k, v in mm["fabric"].spaces.items()}}
    mark_used(top)
    return out


VRF_METHOD = ("synthesised: the live-value table whole, the read multiplexers with the "
              "table and copies black boxes; copies from geometry")


def vrf_jobs(vrf: Any) -> tuple[list[Job], str]:
    """(jobs, method note) of the VRF (``dfx.rtl.vrf``): the :class:`LiveValueTable` whole, and
    the :class:`Vrf` with its table and its copies (``Memory``) black boxes; the copies are the
    ``boxes`` of the first job (:func:`boxed_memories`)."""
    from amaranth.lib.memory import Memory

    from dfx.rtl.vrf.lvt import LiveValueTable

    with boxed({Memory: True, LiveValueTable: True}, vrf) as boxes:
        text = convert(vrf)
    lvt = LiveValueTable(vrf.vectors, len(vrf.write_ports), len(vrf.read_ports))
    jobs = [Job("vrf", vrf, 1, text + boxes.decls(), boxes), Job("vrf/lvt", lvt, 1)]
    return jobs, (f"{VRF_METHOD} ({len(vrf.write_ports)} write x {len(vrf.read_ports)} read "
                  f"ports: {vrf.copies} copies)")
