"""Launch the core testbench (:mod:`.core_tb`) on a built model for one job, with progress.

:func:`run_job` writes the job, starts the Verilator executable the way cocotb's runner does
(the same environment: ``GPI_USERS``, ``COCOTB_TOPLEVEL``, ``COCOTB_TEST_MODULES`` ...) but as
a child process whose output goes to ``sim.log`` in the job directory, relays
``progress.jsonl`` lines to a callback while it runs, kills it after ``timeout_s`` (or on
Ctrl-C), and returns the :class:`~.core_job.CoreResult`. With ``waves`` (a model built with
tracing) the run's waveform is written to ``waves`` (FST, or VCD without ``lz4.h``).
``$DFX_SIM_PREFIX`` is put in front of the simulator command (profilers, debuggers).

:func:`run_jobs` runs several jobs in one simulator process (the testbench resets the core
before each): the process start-up (Python, cocotb, the model's construction: seconds) is
paid once instead of per job, which is most of a short program's time.

:func:`run_ring` runs one job per card on a ring model (several cards, one simulator process,
started together).
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .core_build import TOP
from .core_job import PROGRESS_FILE, RESULT_FILE, CoreJob, CoreResult

__all__ = ["TB_MODULE", "CoreRunError", "run_job", "run_jobs", "run_ring"]

TB_MODULE = "dfx.rtl.tb.core_tb"
LOG_FILE = "sim.log"
#: A batch's list of job files (:func:`run_jobs`).
JOBS_FILE = "jobs.txt"
#: A ring's list of job files, card 0 first (:func:`run_ring`).
RING_FILE = "ring.txt"
#: A ring's link settings: JSON list of [latency, stall threshold] per link (:func:`run_ring`).
LINKS_FILE = "links.json"
#: A command put in front of the simulator (like cocotb's SIM_CMD_PREFIX), e.g.
#: ``perf record -o /tmp/perf.data`` or ``valgrind``.
PREFIX_ENV = "DFX_SIM_PREFIX"


class CoreRunError(RuntimeError):
    """The simulation did not produce a result (crash, timeout, testbench failure); the
    message ends with the tail of its log."""


def _sim_env(job_path: Path, results: Path, *, batch: bool = False,
             ring: bool = False, toplevel: str = TOP) -> dict[str, str]:
    import cocotb_tools.config
    import find_libpython

    from dfx.rtl.toolchain.verilator import verilator_env

    env = verilator_env()
    libpython = env.get("LIBPYTHON_LOC") or find_libpython.find_libpython()
    if libpython is None:
        raise CoreRunError("cannot find libpython for the cocotb simulator")
    env["PATH"] += os.pathsep + str(cocotb_tools.config.libs_dir)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    env["PYGPI_PYTHON_BIN"] = sys.executable
    env.setdefault("GPI_USERS", f"{libpython};{cocotb_tools.config.pygpi_entry_point()}")
    # as cocotb's Verilator runner: Verilator applies writes inertially, which also lets the
    # clock run in C++ (cocotb.clock.Clock's "gpi" implementation) instead of in Python
    env.setdefault("COCOTB_TRUST_INERTIAL_WRITES", "1")
    var = "DFX_RING_JOB" if ring else "DFX_CORE_JOBS" if batch else "DFX_CORE_JOB"
    env.update({
        "COCOTB_TOPLEVEL": toplevel,
        "COCOTB_TEST_MODULES": TB_MODULE,
        "TOPLEVEL_LANG": "verilog",
        "COCOTB_RESULTS_FILE": str(results),
        var: str(job_path),
    })
    return env


def _tail(path: Path, n: int = 3000) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return text[-n:]


def run_job(model: Any, job: CoreJob, directory: Path, *, waves: Path | None = None,
            progress: Callable[[dict[str, Any]], None] | None = None,
            timeout_s: float = 3600.0) -> CoreResult:
    """Run ``job`` (its image files already in ``directory``) on ``model`` (a
    :class:`~dfx.rtl.toolchain.model.VerilatorModel` of the core testbench).

    ``progress(line)`` gets each progress record (``cycles``, ``wall_s``, ``cycles_per_s``,
    ``watched``/``watch_total``). Raises :class:`CoreRunError` when no result comes out.
    """
    d = Path(directory).resolve()
    d.mkdir(parents=True, exist_ok=True)
    if waves is not None and not model.waves:
        raise ValueError("waves need a model built with waves=True")
    for stale in (RESULT_FILE, PROGRESS_FILE):
        with contextlib.suppress(FileNotFoundError):
            (d / stale).unlink()
    job_path = job.write(d)
    log = _launch(model, job_path, d, batch=False, waves=waves, progress=progress,
                  timeout_s=timeout_s)
    if not (d / RESULT_FILE).is_file():
        raise CoreRunError(f"the core simulation ended without a result; log ({log}): "
                           f"{_tail(log)}")
    return CoreResult.read(d)


def run_jobs(model: Any, jobs: Sequence[tuple[CoreJob, Path]], directory: Path, *,
             timeout_s: float = 3600.0) -> list[CoreResult | CoreRunError]:
    """Run every ``(job, job directory)`` in one simulator process, in order (module doc);
    ``directory`` gets the batch's log. Each job's result, or the :class:`CoreRunError` saying
    why it has none (a crash ends the batch: the jobs after it have none either).

    Memory outside a job's loads keeps what the jobs before it left there, as do the VRF and
    the weight buffer (the core's registers and queues are reset): compare only what a job
    loads or writes."""
    if not jobs:
        return []
    d = Path(directory).resolve()
    d.mkdir(parents=True, exist_ok=True)
    paths = []
    for job, jd in jobs:
        jd = Path(jd).resolve()
        jd.mkdir(parents=True, exist_ok=True)
        for stale in (RESULT_FILE, PROGRESS_FILE):
            with contextlib.suppress(FileNotFoundError):
                (jd / stale).unlink()
        paths.append(job.write(jd))
    listing = d / JOBS_FILE
    listing.write_text("".join(f"{p}\n" for p in paths))
    try:
        log = _launch(model, listing, d, batch=True, waves=None, progress=None,
                      timeout_s=timeout_s)
    except CoreRunError as e:
        return [e] * len(jobs)
    out: list[CoreResult | CoreRunError] = []
    for p in paths:
        if (p.parent / RESULT_FILE).is_file():
            out.append(CoreResult.read(p.parent))
        else:
            out.append(CoreRunError(f"the core simulation ended without a result for "
                                    f"{p.parent.name}; log ({log}): {_tail(log)}"))
    return out


def run_ring(model: Any, jobs: Sequence[tuple[CoreJob, Path]], directory: Path, *,
             links: Sequence[tuple[int, int]], waves: Path | None = None,
             progress: Callable[[dict[str, Any]], None] | None = None,
             timeout_s: float = 3600.0) -> list[CoreResult]:
    """Run card ``c``'s ``jobs[c]`` (job, job directory) on a ring model
    (:func:`~.core_build.ring_model` of ``len(jobs)`` cards), all cards at once; ``links``:
    (latency, stall threshold) per link (:func:`~.ring_top.link_settings`); progress and the
    log in ``directory``. Raises :class:`CoreRunError` when a card has no result."""
    d = Path(directory).resolve()
    d.mkdir(parents=True, exist_ok=True)
    if waves is not None and not model.waves:
        raise ValueError("waves need a model built with waves=True")
    with contextlib.suppress(FileNotFoundError):
        (d / PROGRESS_FILE).unlink()
    paths = []
    for job, jd in jobs:
        jd = Path(jd).resolve()
        jd.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            (jd / RESULT_FILE).unlink()
        paths.append(job.write(jd))
    if len(links) != 2 * len(jobs):
        raise ValueError(f"links: {len(links)} settings for {len(jobs)} cards (two links each)")
    (d / LINKS_FILE).write_text(json.dumps([list(lk) for lk in links]))
    listing = d / RING_FILE
    listing.write_text("".join(f"{p}\n" for p in paths))
    log = _launch(model, listing, d, batch=False, waves=waves, progress=progress,
                  timeout_s=timeout_s, ring=True)
    out = []
    for c, p in enumerate(paths):
        if not (p.parent / RESULT_FILE).is_file():
            raise CoreRunError(f"the ring simulation ended without a result for card {c}; "
                               f"log ({log}): {_tail(log)}")
        out.append(CoreResult.read(p.parent))
    return out


def _launch(model: Any, job_path: Path, d: Path, *, batch: bool, waves: Path | None,
            progress: Callable[[dict[str, Any]], None] | None, timeout_s: float,
            ring: bool = False) -> Path:
    """Start the simulator on ``job_path`` (a job, or a batch's list) in ``d``, relay progress,
    wait; the log's path."""
    results = d / "results.xml"
    cmd = [*shlex.split(os.environ.get(PREFIX_ENV, "")), str(model.executable)]
    if waves is not None:
        cmd += ["--trace", "--trace-file", str(Path(waves).resolve())]
    env = _sim_env(job_path, results, batch=batch, ring=ring, toplevel=model.toplevel)
    log = d / LOG_FILE
    seen = 0
    t0 = time.monotonic()
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=d, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            while True:
                try:
                    proc.wait(timeout=0.5)
                    break
                except subprocess.TimeoutExpired:
                    pass
                seen = _relay(d / PROGRESS_FILE, seen, progress)
                if time.monotonic() - t0 > timeout_s:
                    _kill(proc)
                    raise CoreRunError(f"the core simulation was stopped after {timeout_s:g} s "
                                       f"of wall time; log: {_tail(log)}")
        except BaseException:
            _kill(proc)
            raise
    _relay(d / PROGRESS_FILE, seen, progress)
    return log


def _relay(path: Path, seen: int, progress: Callable[[dict[str, Any]], None] | None) -> int:
    if progress is None:
        return seen
    try:
        lines = path.read_text().split("\n")[:-1]  # whole lines only
    except OSError:
        return seen
    for line in lines[seen:]:
        with contextlib.suppress(ValueError):
            progress(json.loads(line))
    return len(lines)


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
