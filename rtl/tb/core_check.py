"""The whole-core regression's two sides and their comparison (docs/verification.md "Core
regression").

* :func:`reference`: a :class:`~.core_programs.Program` on the functional simulator
  (:class:`dfx.sim.functional.Appliance`): how it ended (``halt`` or the simulator's error
  class and pc) and the final state: the arena's HBM and DDR bytes (with the integer registers
  the epilogue stored and the weight-buffer window it copied), the VRF window (valid vectors
  only) and the SRF.
* :func:`rtl_job`: the same program as a job of the core testbench (:mod:`.core_job` /
  :mod:`.core_run`: the card image into the memory models, start, done) reading back the
  same arena ranges, the VRF window and the SRF (debug ports).
* :func:`compare`: every difference, named (``r5 (dumped, byte 2)``, ``hbm scratch+0x40``,
  ``v[12] lane 3``, ``s7``; faults: status -> the simulator's error class, and ``error_pc``).

:func:`check_batch` runs programs on both (each optionally under memory stalls; all RTL runs
in one simulator process, :func:`.core_run.run_jobs`) and returns a :class:`Verdict` per
program.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dfx.isa.config import CoreConfig

from .core_programs import Program

__all__ = ["BATCH", "State", "Verdict", "check_batch", "compare", "reference", "rtl_job"]

#: Instructions the functional simulator may run per program (regression programs are small).
MAX_INSTRUCTIONS = 200_000
#: Cycles the RTL may take per program before the run counts as a hang.
MAX_CYCLES = 400_000
#: Programs per simulator process in ``dfx regress --bench core`` (the start-up is paid once
#: each).
BATCH = 16
_PC_RE = re.compile(r"at pc (\d+)")


@dataclass
class State:
    """How a program ended and what it left. ``outcome``: ``"halt"`` or the functional
    simulator's error class name; ``pc``: where (None if unknown); ``mem``: space -> arena
    bytes; ``vrf``: uint16 [window, d] with ``valid`` rows; ``srf``: uint32 bits."""

    outcome: str
    pc: int | None
    message: str
    mem: dict[str, bytes]
    vrf: np.ndarray | None
    valid: np.ndarray | None
    srf: np.ndarray | None
    regs: list[int] = field(default_factory=list)
    instructions: int = 0


def _initial(prog: Program) -> dict[str, bytes]:
    out = {}
    for space, size in (("hbm", prog.arena.hbm_bytes), ("ddr", prog.arena.ddr_bytes)):
        img = np.zeros(size, np.uint8)
        for s in prog.segments:
            if s.space == space:
                img[s.addr:s.end] = np.frombuffer(s.to_bytes(), np.uint8)[:size - s.addr]
        out[space] = img.tobytes()
    return out


def reference(core: CoreConfig, prog: Program,
              max_instructions: int = MAX_INSTRUCTIONS) -> State:
    """``prog`` on the functional simulator (module doc). A program beyond the instruction
    buffer (the simulator has none; binaries holding one are refused) ends as ``HostError``
    at pc 0, like the core's ``PROGRAM_SIZE``."""
    from dfx.sim.functional import Appliance
    from dfx.sim.functional.errors import SimError

    ar = prog.arena
    if prog.words > core.buffers.instruction_words:
        return State("HostError", 0, "the program does not fit the instruction buffer",
                     _initial(prog), None, None, None)
    try:
        app = Appliance(prog.binary(core))
    except SimError as e:  # load-time decode of the whole program
        m = _PC_RE.search(str(e))
        return State(type(e).__name__, int(m.group(1)) if m else e.pc, str(e), _initial(prog),
                     None, None, None)
    outcome, pc, msg = "halt", None, ""
    try:
        app.run(max_instructions=max_instructions)
    except SimError as e:
        outcome, pc, msg = type(e).__name__, e.pc, str(e)
    card = app.cards[0]
    if outcome == "halt":
        pc = card.pc
    mem = {space: app.read(0, space, 0, size)
           for space, size in (("hbm", ar.hbm_bytes), ("ddr", ar.ddr_bytes))}
    return State(outcome, pc, msg, mem, card.vrf[:ar.vrf].view(np.uint16).copy(),
                 card.valid[:ar.vrf].copy(), card.srf.view(np.uint32).copy(), list(card.r),
                 sum(card.op_counts))


def rtl_job(core: CoreConfig, prog: Program, directory: Path, *, stall: int = 0,
            max_cycles: int = MAX_CYCLES) -> Any:
    """The :class:`~.core_job.CoreJob` of ``prog`` (its images written into ``directory``):
    reads ``hbm`` and ``ddr`` (the arena), the VRF window and the SRF."""
    from .core_build import core_layout
    from .core_job import HostAccess, card_job

    ar = prog.arena
    reads = [HostAccess("hbm", 0, name="hbm", bytes=ar.hbm_bytes),
             HostAccess("ddr", 0, name="ddr", bytes=ar.ddr_bytes)]
    return card_job(prog.image(), core, core_layout(core), directory, reads=reads,
                    vrf=(0, ar.vrf), srf=True, stall=stall, max_cycles=max_cycles)


def _mem_diffs(prog: Program, space: str, want: bytes, got: bytes, limit: int) -> list[str]:
    a = np.frombuffer(want, np.uint8)
    b = np.frombuffer(got, np.uint8)
    if a.size != b.size:
        return [f"{space}: read {b.size} bytes, expected {a.size}"]
    bad = np.flatnonzero(a != b)
    out = []
    for i in bad[:limit]:
        out.append(f"{prog.arena.where(space, int(i))}: {b[i]:#04x}, expected {a[i]:#04x}")
    if bad.size > limit:
        out.append(f"... {bad.size} bytes of {space} differ")
    return out


def compare(ref: State, res: Any, prog: Program, limit: int = 8) -> list[str]:
    """Every difference between the reference and an RTL result (module doc)."""
    from dfx.rtl.core.faults import ERROR_CLASS, Fault

    if res.outcome != "done":
        return [f"no done within {res.sim_cycles:,} cycles (expected {ref.outcome} at pc "
                f"{ref.pc})"]
    out = []
    if res.mem_error:
        out.append(f"AXI protocol error bits {res.mem_error:#x}")
    try:
        fault = Fault(res.status)
    except ValueError:
        return out + [f"unknown status {res.status}"]
    got = "halt" if fault == Fault.OK else ERROR_CLASS[fault]
    if got != ref.outcome:
        out.append(f"ended with {fault.name} ({got}) at pc {res.error_pc}, expected "
                   f"{ref.outcome} at pc {ref.pc}: {ref.message}")
        return out
    if fault != Fault.OK and res.error_pc != ref.pc:
        out.append(f"{fault.name} at pc {res.error_pc}, expected pc {ref.pc}: {ref.message}")
    for space in ("hbm", "ddr"):
        out += _mem_diffs(prog, space, ref.mem[space], res.reads[space], limit)
    if ref.vrf is not None and ref.valid is not None and res.vrf is not None:
        rows = np.flatnonzero(ref.valid)
        bad = [int(v) for v in rows if not np.array_equal(ref.vrf[v], res.vrf[v])]
        for v in bad[:limit]:
            lanes = np.flatnonzero(ref.vrf[v] != res.vrf[v])
            out.append(f"v[{v}] lanes {lanes.tolist()}: {[hex(x) for x in res.vrf[v][lanes]]}, "
                       f"expected {[hex(x) for x in ref.vrf[v][lanes]]}")
        if len(bad) > limit:
            out.append(f"... {len(bad)} vectors differ")
    if ref.srf is not None and res.srf is not None:
        bad = np.flatnonzero(ref.srf != res.srf[:ref.srf.size])
        for s in bad[:limit]:
            out.append(f"s{s}: {int(res.srf[s]):#010x}, expected {int(ref.srf[s]):#010x}")
        if bad.size > limit:
            out.append(f"... {bad.size} scalars differ")
    return out


@dataclass
class Verdict:
    """One program's result: ``mismatches`` empty when the RTL equals the reference;
    ``cycles`` (the core's, per stall setting), ``sim_cycles`` (ap_start to done, summed),
    ``wall_s`` (the RTL runs, simulator start-up included), ``run_s`` (of which simulating
    from ap_start to done), ``instructions`` (executed, the simulator's count)."""

    name: str
    kind: str
    outcome: str
    mismatches: list[str]
    instructions: int = 0
    cycles: list[int] = field(default_factory=list)
    sim_cycles: int = 0
    wall_s: float = 0.0
    run_s: float = 0.0
    workdir: Path | None = None

    @property
    def passed(self) -> bool:
        return not self.mismatches


def check_batch(model: Any, core: CoreConfig, items: Sequence[tuple[Program, Iterable[int]]],
                workdir: Path, *, keep: bool = False, timeout_s: float = 600.0) -> list[Verdict]:
    """Every ``(program, stalls)`` on the reference and on the RTL once per stall setting, the
    RTL's state compared with the reference each time, all the RTL runs in one simulator
    process (:func:`.core_run.run_jobs`, its log in ``workdir``; each program's jobs in
    ``workdir/<name>``, removed when it passed unless ``keep``); ``timeout_s`` is per run."""
    from .core_faults import expected_class
    from .core_run import JOBS_FILE, LOG_FILE, CoreRunError, run_jobs

    items = [(p, tuple(s)) for p, s in items]
    verdicts, jobs, owner = [], [], []
    for k, (prog, stalls) in enumerate(items):
        d = Path(workdir) / prog.name
        ref = reference(core, prog)
        v = Verdict(prog.name, prog.kind, ref.outcome, [], ref.instructions, workdir=d)
        if prog.expect != "OK":
            want = expected_class(prog.expect)
            if ref.outcome != want:
                v.mismatches.append(f"the reference ended with {ref.outcome} ({ref.message}), "
                                    f"but the program was made for {prog.expect} ({want})")
        elif ref.outcome != "halt":
            v.mismatches.append(f"the reference did not halt: {ref.message}")
        verdicts.append((v, ref, prog))
        for stall in stalls:
            jd = d / f"stall{stall}"
            jobs.append((rtl_job(core, prog, jd, stall=stall), jd))
            owner.append((k, stall))
    t0 = time.perf_counter()
    results = run_jobs(model, jobs, Path(workdir),
                       timeout_s=timeout_s * max(1, len(jobs))) if jobs else []
    wall = (time.perf_counter() - t0) / max(1, len(jobs))  # the batch's wall time, shared
    for (k, stall), res in zip(owner, results, strict=True):
        v, ref, prog = verdicts[k]
        if isinstance(res, CoreRunError):
            v.mismatches.append(f"stall {stall}: {' '.join(str(res).split())[:400]}")
            continue
        v.wall_s += wall
        v.cycles.append(res.cycles)
        v.sim_cycles += res.sim_cycles
        v.run_s += res.wall_s
        v.mismatches += [f"stall {stall}: {m}" for m in compare(ref, res, prog)]
    out = []
    for v, _, _ in verdicts:
        if v.passed and not keep:
            shutil.rmtree(v.workdir, ignore_errors=True)
            v.workdir = None
        out.append(v)
    if not keep and all(v.passed for v in out):
        for name in (LOG_FILE, JOBS_FILE, "results.xml"):
            (Path(workdir) / name).unlink(missing_ok=True)
    return out
