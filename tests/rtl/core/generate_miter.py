"""A random-simulation miter on Verilator: two modules with the same ports (a "gold" and a
"gate" conversion of one design) driven by the same random inputs every cycle, every output
compared every cycle. Used to check that the deduplicated Verilog of :mod:`dfx.rtl.core.generate`
and :class:`dfx.rtl.leaves.LeafModules` describes the same circuit as the flat conversion."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from dfx.rtl.toolchain.verilator import verilator_env, waiver_args

Port = tuple[str, str, int]  # name, "in" / "out", width


def _rand(width: int) -> str:
    words = -(-width // 32)
    return "{" + ", ".join(["$urandom"] * words) + "}" if words > 1 else "$urandom"


def miter_verilog(gold: str, gate: str, ports: Sequence[Port], *, clock: str, reset: str,
                  reset_active: int, cycles: int, reset_cycles: int = 4,
                  drive: Mapping[str, str] | None = None, count: Sequence[str] = (),
                  decls: str = "") -> str:
    """The miter top ``miter``: ``clock`` toggles every 5 time units; ``reset`` is active for
    ``reset_cycles`` cycles; every other input takes a random value (or the Verilog expression
    ``drive[name]``) after each falling edge; every output of the two instances is compared at
    each falling edge. ``count``: outputs whose non-zero cycles are counted (activity);
    ``decls``: Verilog declarations (functions) the ``drive`` expressions use."""
    drive = dict(drive or {})
    ins = [p for p in ports if p[1] == "in" and p[0] not in (clock, reset)]
    outs = [p for p in ports if p[1] == "out"]
    lines = ["module miter;", f"  reg {clock} = 0;", f"  reg {reset} = {reset_active};"]
    for name, _d, w in ins:
        lines.append(f"  reg [{w - 1}:0] i_{name} = 0;")
    for name, _d, w in outs:
        lines.append(f"  wire [{w - 1}:0] g_{name}, t_{name};")
    lines += ["  integer cycle = 0;", "  integer errors = 0;", decls]
    lines += [f"  integer n_{name} = 0;" for name in count]
    for inst, pre in ((gold, "g"), (gate, "t")):
        conns = [f".{clock}({clock})", f".{reset}({reset})"]
        conns += [f".{n}(i_{n})" for n, _d, _w in ins]
        conns += [f".{n}({pre}_{n})" for n, _d, _w in outs]
        lines.append(f"  {inst} u_{pre} (" + ", ".join(conns) + ");")
    lines.append("  task new_inputs;")
    lines.append("    begin")
    for name, _d, w in ins:
        lines.append(f"      i_{name} = {drive.get(name, _rand(w))};")
    lines.append("    end")
    lines.append("  endtask")
    lines.append(f"  always #5 {clock} = ~{clock};")
    lines.append("  initial begin")
    lines.append("    new_inputs;")
    lines.append(f"    repeat ({cycles}) begin")
    lines.append(f"      @(negedge {clock});")
    for name, _d, _w in outs:
        lines.append(f"      if (g_{name} !== t_{name}) begin")
        lines.append(f'        if (errors < 20) $display("MISMATCH cycle %0d {name}: %h %h", '
                     f"cycle, g_{name}, t_{name});")
        lines.append("        errors = errors + 1;")
        lines.append("      end")
    for name in count:
        lines.append(f"      if (g_{name} != 0) n_{name} = n_{name} + 1;")
    lines.append("      cycle = cycle + 1;")
    lines.append(f"      if (cycle == {reset_cycles}) {reset} = {1 - reset_active};")
    lines.append("      new_inputs;")
    lines.append("    end")
    stats = " ".join(f"{n}=%0d" for n in count)
    args = "".join(f", n_{n}" for n in count)
    lines.append(f'    $display("MITER cycles=%0d errors=%0d {stats}", cycle, errors{args});')
    lines.append("    $finish;")
    lines.append("  end")
    lines.append("endmodule")
    return "\n".join(lines) + "\n"


def run_miter(build: Path, sources: Mapping[str, str], top_text: str, *, seed: int = 1,
              extra_args: Sequence[str] = (), timeout: float = 7200) -> dict[str, int]:
    """Build ``sources`` (file name -> text) and the miter with ``verilator --binary``, run it
    and return its counters (``cycles``, ``errors`` and the activity counts)."""
    build.mkdir(parents=True, exist_ok=True)
    files = []
    for name, text in {**sources, "miter.v": top_text}.items():
        (build / name).write_text(text)
        files.append(str(build / name))
    cmd = ["verilator", "--binary", "--timing", "-CFLAGS", "-std=c++20", "-j", "1",
           *waiver_args(), "-Wno-SYMRSVDWORD",
           "-Wno-ASCRANGE", "-Wno-UNOPTFLAT", "-Wno-STMTDLY", *extra_args,
           "--top-module", "miter", "-Mdir", str(build / "obj"), "-o", "miter", *files]
    res = subprocess.run(cmd, env=verilator_env(), capture_output=True, text=True,
                         timeout=timeout)
    if res.returncode:
        raise RuntimeError(f"verilator failed:\n{res.stderr[-4000:]}")
    run = subprocess.run([str(build / "obj" / "miter"), f"+verilator+seed+{seed}"],
                         capture_output=True, text=True, timeout=timeout)
    out = run.stdout + run.stderr
    found = re.search(r"MITER (.*)", out)
    if run.returncode or not found:
        raise RuntimeError(f"miter run failed ({run.returncode}):\n{out[-4000:]}")
    counters = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", found.group(1))}
    counters["mismatches"] = out.count("MISMATCH")
    return counters
