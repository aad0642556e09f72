"""The RTL backend of the host runtime: one request of a compiled model on the core's RTL.

:func:`generate` has the shape of :func:`dfx.sim.functional.generate` — ``(binary, tokens,
max_new_tokens, write_logits) -> (prompt + generated tokens, logits)`` — plus an
:class:`RtlRun` with the cycles. It does what the host does on the appliance (DFX §IV-A), on
the Verilator model of the core testbench (:mod:`dfx.rtl.tb.core_tb`, built once per core
configuration and RTL change, :func:`dfx.rtl.tb.core_build.core_model`): the card image into
HBM/DDR, the ``cfg`` block and the prompt tokens through the binary's symbols, the kernel
arguments and ap_start over ``s_axi_control``, wait for done, then the tokens (and logits).

A fault of the core (``status`` non-zero) is raised as the functional simulator's error class
(:data:`dfx.rtl.core.faults.ERROR_CLASS`) with the simulator's location form, one line:
``card c, pc p (annotation): <instruction>: <message>``. A binary for several cards runs on
the ring model (:func:`dfx.rtl.tb.core_build.ring_model`: every card's core and memories,
the routers and QSFP link models between them, in one simulation; all cards start together).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dfx.isa.container import Binary, CardImage, read_binary
from dfx.isa.errors import DfxError, indices

__all__ = ["RtlError", "RtlRun", "fault_error", "generate", "run_card", "run_program"]

#: Cycle limit when the timing model cannot estimate the run.
DEFAULT_MAX_CYCLES = 50_000_000
#: The cycle limit is this many times the timing model's cycles (at least MIN_MAX_CYCLES).
MAX_CYCLES_FACTOR = 20
MIN_MAX_CYCLES = 1_000_000
SENTINEL = 0xFFFF_FFFF

Status = Callable[[str], None]


class RtlError(DfxError):
    """The RTL run went wrong outside the program (no result, a memory protocol error, no
    done within the cycle limit)."""


@dataclass
class RtlRun:
    """One RTL run: ``cycles`` per card (the core's ``cycles`` register: first fetch to done),
    ``model_cycles`` per card (:func:`dfx.sim.timing.simulate`, None if it cannot time the
    binary), the simulation's cycles from ap_start to done, wall time and speed (per wall
    second and per CPU second of the simulator), the memory
    load time, the model's build time (0 when cached), the job directory (kept on failure or
    with ``keep``) and the waveform file."""

    cycles: list[int]
    model_cycles: list[int] | None
    sim_cycles: int
    wall_s: float
    cycles_per_s: float
    cycles_per_cpu_s: float
    load_s: float
    build_s: float
    workdir: Path | None = None
    waves: Path | None = None
    result: Any = field(default=None, repr=False)
    results: list[Any] = field(default_factory=list, repr=False)


def fault_error(status: int, pc: int, word: int, image: CardImage, card: int = 0) -> Exception:
    """The functional simulator's error for a core fault (module doc)."""
    from dfx.isa.asm import format_instruction
    from dfx.isa.encoding import decode, decode_program
    from dfx.rtl.core.faults import ERROR_CLASS, MESSAGE, Fault
    from dfx.sim.functional import errors

    try:
        fault = Fault(status)
    except ValueError:
        return RtlError(f"card {card}: the core stopped with unknown status {status} at pc "
                        f"{pc} (word {word:#066x})")
    cls = getattr(errors, ERROR_CLASS[fault])
    if fault == Fault.PROGRAM_SIZE:
        return cls(MESSAGE[fault], card=card)
    text = None
    program = decode_program(bytes(image.program))
    if 0 <= pc < len(program):
        text = format_instruction(program[pc])
    else:
        with contextlib.suppress(Exception):
            text = format_instruction(decode(word.to_bytes(32, "little")))
        if text is None and word:
            text = f"word {word:#x}"
    return cls(MESSAGE[fault], card=card, pc=pc, instruction=text,
               annotation=image.annotation(pc) if pc >= 0 else None)


def deadlock_error(results: list[Any], images: list[CardImage]) -> Exception:
    """The functional simulator's :class:`~dfx.sim.functional.errors.DeadlockError` for a
    ring the testbench found deadlocked: each card's waiting ``send``/``recv`` (the live
    registers ``tx_pc``/``rx_pc``), or that it halted."""
    from dfx.isa.asm import format_instruction
    from dfx.isa.encoding import decode_program
    from dfx.rtl.control.regmap import BUSY_UNITS, MOVER_ACTIVE
    from dfx.sim.functional.errors import DeadlockError

    n = len(results)
    parts = []
    for c, (res, image) in enumerate(zip(results, images, strict=True)):
        if res.outcome != "deadlock":
            parts.append(f"card {c} has halted")
            continue
        program = decode_program(bytes(image.program))
        waits = []
        for unit, reg, what in (("tx", res.tx_pc, f"waits for room in card {(c + 1) % n}'s "
                                 "receive FIFO"),
                                ("rx", res.rx_pc, f"waits for vectors from card {(c - 1) % n}")):
            if not res.busy >> BUSY_UNITS.index(unit) & 1:
                continue
            pc = reg & (MOVER_ACTIVE - 1)
            text = f"card {c}, pc {pc}"
            ann = image.annotation(pc)
            if ann:
                text += f" ({ann})"
            if 0 <= pc < len(program):
                text += f": {format_instruction(program[pc])}"
            waits.append(f"{text}: {what}")
        parts.append("; ".join(waits) or f"card {c}, pc {res.pc}: waits")
    return DeadlockError(f"deadlock: no card can make progress: {'; '.join(parts)}")


def _model_cycles(b: Binary, p: int | None, g: int | None,
                  write_logits: bool = False) -> list[int] | None:
    """The timing model's cycles per card for the same request (or program) as the run."""
    from dfx.sim.timing import simulate

    try:
        return [int(c) for c in simulate(b, p, g, write_logits=write_logits).end]
    except Exception:  # noqa: BLE001 - the estimate is an extra; the run does not need it
        return None


def _run(b: Binary, options: dict[str, Any], *, reads: list[Any], writes: list[Any],
         watch: tuple[str, int, int] | None, model_cycles: list[int] | None,
         waves: str | os.PathLike[str] | None, status: Status | None,
         progress: Callable[[dict[str, Any]], None] | None, workdir: str | None,
         keep: bool, max_cycles: int | None, timeout_s: float,
         links: dict[str, Any] | None = None,
         trace: str | os.PathLike[str] | None = None, top: str = "core") -> tuple[Any, RtlRun]:
    """Run every card of ``b`` (one card: the core testbench; several: the ring model, its
    links the board's unless ``links``: ``latencies``/``stall_prob`` of
    :func:`~dfx.rtl.tb.ring_top.link_settings`). ``writes``: one card's host writes, or a list
    per card; ``reads``: card 0's, or a list per card; ``watch`` is card 0's. ``trace``: write
    every card's unit busy intervals there (:func:`write_rtl_trace`). ``top``: the card's top,
    ``"core"`` (the bare core with its debug ports) or ``"board"`` (the Alveo kernel
    ``dfx_core`` of ``dfx build`` with its router, clock-domain crossings and QSFP streams on
    a second clock; several cards joined by QSFP link models; no VRF/SRF reads or trace).
    Returns card 0's result (every card's in ``run.results``) and the run."""
    from dfx.rtl.tb.core_build import card_model, core_layout
    from dfx.rtl.tb.core_job import PERIOD_NS, TOPS, TRACE_FILE, card_job
    from dfx.rtl.tb.core_run import CoreRunError, run_job, run_ring
    from dfx.rtl.tb.ring_top import link_settings

    n = b.n_cards
    per_card = writes if writes and isinstance(writes[0], list) else [writes] * n
    if len(per_card) != n:
        raise ValueError(f"writes for {len(per_card)} cards, the binary has {n}")
    card_reads = reads if reads and isinstance(reads[0], list) else [reads] + [[]] * (n - 1)
    if len(card_reads) != n:
        raise ValueError(f"reads for {len(card_reads)} cards, the binary has {n}")
    if waves is not None:
        from dfx.isa.outputs import check_output

        check_output(waves, option="--waves", inputs=[b.path])
    if trace is not None:
        from dfx.isa.outputs import check_output

        check_output(trace, option="--trace", inputs=[b.path])
        options = {**options, "trace": True}
    if top not in TOPS:
        raise DfxError(f"the RTL backend's top must be one of {', '.join(TOPS)}, not {top!r}")
    if top == "board":
        from dfx.rtl.tb.board_ring import board_link_settings, link_period_ps

        wanted = [o for o, on in (("trace", trace is not None), ("vrf", options.get("vrf")),
                                  ("srf", options.get("srf"))) if on]
        if wanted:
            raise DfxError(f"the board top has no debug ports: {wanted[0]} needs the core top "
                           "(top='core')")
        options = {**options, "top": top, "link_period_ps": link_period_ps(b.core, PERIOD_NS)}
    if options.get("wait") == "xrt" and n != 1:
        raise DfxError("wait='xrt' (XRT's register order) runs one card")
    if b.model.get("weights") is False:
        raise DfxError("this binary was compiled without weights (--no-weights): it cannot "
                       "run; recompile it with weights")
    model = card_model(b.core, n, top=top, waves=waves is not None, progress=status)
    layout = core_layout(b.core)
    if max_cycles is None:
        max_cycles = (max(MAX_CYCLES_FACTOR * max(model_cycles), MIN_MAX_CYCLES)
                      if model_cycles else DEFAULT_MAX_CYCLES)
    d = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="dfx-rtl-"))
    debug = False  # keep the job directory: an error message names it
    try:
        jobs = []
        for c in range(n):
            try:
                jd = d if n == 1 else d / f"card{c:02d}"
                jobs.append((card_job(b.cards[c], b.core, layout, jd, cards=n,
                                      reads=card_reads[c], writes=per_card[c],
                                      watch=watch if c == 0 else None, sentinel=SENTINEL,
                                      max_cycles=max_cycles, **options), jd))
            except ValueError as e:
                raise DfxError(f"the RTL backend cannot run this binary: {e}") from None
        dump = d / "waves.fst" if waves is not None else None
        if status is not None:
            what = "the core RTL" if top == "core" else "the Alveo kernel top"
            what = what if n == 1 else f"{n} cards of {what} in a ring"
            status(f"simulating {what} (Verilator; up to {max_cycles:,} cycles)")
        try:
            try:
                if n == 1:
                    results = [run_job(model, jobs[0][0], d, waves=dump, progress=progress,
                                       timeout_s=timeout_s)]
                else:
                    settings = (board_link_settings if top == "board" else link_settings)(
                        b.core, n, **(links or {}))
                    results = run_ring(model, jobs, d, links=settings, waves=dump,
                                       progress=progress, timeout_s=timeout_s)
            finally:
                if dump is not None and dump.is_file():
                    _write_waves(dump, waves)
        except CoreRunError as e:
            debug = True
            raise RtlError(f"{e} (job directory {d})") from None
        for c, res in enumerate(results):
            if res.mem_error:
                debug = True
                raise RtlError(f"card {c}: the core broke the AXI protocol of the memories "
                               f"(error bits {res.mem_error:#x}: see dfx.rtl.tb.mem_model "
                               f"ERR_*); job directory {d}")
            if res.ring_error:
                debug = True
                raise RtlError(f"the ring lost a vector (a receive FIFO overflowed or a link "
                               f"model's queue filled); job directory {d}")
        if any(res.outcome == "deadlock" for res in results):
            debug = True
            raise deadlock_error(results, b.cards)
        late = [c for c, res in enumerate(results) if res.outcome != "done"]
        if late:
            from dfx.sim.functional.errors import BudgetExceededError

            debug = True
            who = f"card {late[0]}" if n == 1 else f"card(s) {', '.join(map(str, late))}"
            raise BudgetExceededError(
                f"{who}: the core did not signal done within {max_cycles:,} cycles (a hang "
                f"in the RTL, or a program that never halts); job directory {d}")
        for c, res in enumerate(results):
            if res.status:
                raise fault_error(res.status, res.error_pc, res.error_word, b.cards[c], c)
        if trace is not None:
            write_rtl_trace(b, [json.loads(((d if n == 1 else d / f"card{c:02d}")
                                            / TRACE_FILE).read_text()) for c in range(n)],
                            trace)
        res = results[0]
        run = RtlRun([r.cycles for r in results], model_cycles,
                     max(r.sim_cycles for r in results), res.wall_s, res.cycles_per_s,
                     res.cycles_per_cpu_s, res.load_s, model.build_s, d if keep else None,
                     Path(waves) if waves is not None else None, res, results)
        return res, run
    finally:
        if not (debug or keep or workdir):
            shutil.rmtree(d, ignore_errors=True)


def write_rtl_trace(b: Binary, cards: list[list[list[int]]],
                    path: str | os.PathLike[str]) -> int:
    """Write an RTL run's unit busy intervals (per card ``[unit, pc, start, end]``, unit an
    index into :data:`dfx.rtl.core.backend.TRACE_UNITS`) in ``dfx perf --trace``'s format: the
    same tracks (the RTL's units are the timing model's, in its order), each interval named by
    its instruction's mnemonic and the compiler's annotation. Returns the event count."""
    from dfx.isa.encoding import decode_program
    from dfx.rtl.core.backend import TRACE_UNITS
    from dfx.sim.timing import write_unit_trace
    from dfx.sim.timing.stats import UNITS

    if [u.removeprefix("router_") for u in UNITS] != list(TRACE_UNITS):
        raise AssertionError(f"the RTL's trace units {TRACE_UNITS} are not the timing "
                             f"model's {UNITS}")
    events = []
    for c, intervals in enumerate(cards):
        program = decode_program(bytes(b.cards[c].program))
        events.append([(u, program[pc].op if 0 <= pc < len(program) else f"pc {pc}", start,
                        end, pc) for u, pc, start, end in intervals])
    return write_unit_trace(events, path, clock_mhz=b.core.clock_mhz,
                            annotations=[im.annotation for im in b.cards], inputs=[b.path])


#: One card's run with host writes and reads, for :class:`dfx.host.device.RtlDevice`.
run_card = _run


def _write_waves(dump: Path, target: str | os.PathLike[str]) -> None:
    """The simulation's waveform to ``target``, through the one output writer (atomic)."""
    from dfx.isa.outputs import write_output

    def copy(f: Any) -> None:
        with open(dump, "rb") as src:
            shutil.copyfileobj(src, f, 1 << 20)

    write_output(target, copy, option="--waves")
    dump.unlink()


def generate(binary: Binary | str | os.PathLike[str], tokens: Sequence[int],
             max_new_tokens: int, write_logits: bool = False, *,
             progress: Callable[[int, int], None] | None = None,
             status: Status | None = None, waves: str | os.PathLike[str] | None = None,
             stall: int = 0, wait: str = "interrupt", max_cycles: int | None = None,
             workdir: str | None = None, keep: bool = False, timeout_s: float = 6 * 3600.0,
             vrf: tuple[int, int] | None = None, srf: bool = False,
             links: dict[str, Any] | None = None,
             trace: str | os.PathLike[str] | None = None, top: str = "core",
             starts: int = 1) -> tuple[list[int], np.ndarray | None, RtlRun]:
    """One greedy generation request of ``binary`` on the core RTL (module doc; several
    cards: the ring model, tokens and logits from card 0).

    Returns ``(prompt + generated tokens, logits, run)``; ``logits`` is
    ``float16[P+G-1, vocab]`` when ``write_logits``. ``progress(done, total)``: generated
    tokens; ``status(text)``: build and simulation messages (progress lines every 20k cycles).
    ``waves``: write the run's waveform (FST) there (a second, traced model build).
    ``stall``: the memories' random stall probability (0..15 sixteenths; results must not
    change). ``wait``: ``"interrupt"`` or ``"poll"``. ``vrf``/``srf``: also read the VRF
    vectors (first, count) / the SRF after the run (``run.result.vrf`` / ``.srf``).
    ``links``: the ring's link models (several cards; :func:`_run`). ``trace``: write each
    card's unit busy intervals there (Chrome/Perfetto JSON, as ``dfx perf --trace``).
    ``top``: ``"core"`` or ``"board"`` (:func:`_run`). ``wait="xrt"``: the control slave in
    XRT's order, ``starts`` runs in a row (:mod:`dfx.rtl.tb.core_tb`; the tokens of run i
    before the last in ``run.result.reads["tokens@i"]``, the control registers in
    ``run.result.starts``).
    """
    from dfx.host.device import request_writes
    from dfx.rtl.tb.core_job import HostAccess
    from dfx.sim.functional.errors import HostError

    b = binary if isinstance(binary, Binary) else read_binary(binary, lazy=True)
    syms = b.cards[0].symbols
    for name in ("cfg", "tokens") + (("logits",) if write_logits else ()):
        if name not in syms:
            raise HostError(f"the binary has no {name!r} symbol: it was not compiled for "
                            "token generation")
    tok = syms["tokens"]
    prompt = [int(t) for t in tokens]
    p, g = len(prompt), int(max_new_tokens)
    capacity = int(tok.get("capacity", tok["bytes"] // 4))
    vocab = int(b.model.get("vocab_size", 0)) or None
    if not prompt:
        raise HostError("empty prompt: give at least one token")
    if g < 1:
        raise HostError(f"max_new_tokens must be at least 1, got {max_new_tokens!r}")
    for i, t in enumerate(prompt):
        if (vocab is not None and not 0 <= t < vocab) or not 0 <= t <= 0xFFFF_FFFF:
            raise HostError(f"token id {t} at prompt position {i} is outside the vocabulary"
                            + (f" ({indices(vocab)})" if vocab else ""))
    if p + g > capacity:
        raise HostError(f"prompt of {p} tokens + {g} new tokens = {p + g} exceeds the model's "
                        f"context of {capacity} tokens")
    req = request_writes(b, prompt, g, write_logits)
    writes = [[HostAccess(space, addr, hex=data.hex()) for space, addr, data in card]
              for card in req.writes]
    reads = [HostAccess(req.tokens.space, req.tokens.addr, name="tokens",
                        bytes=req.tokens.nbytes)]
    row, nv = req.row, req.vocab
    if req.logits is not None:
        reads.append(HostAccess(req.logits.space, req.logits.addr, name="logits",
                                bytes=req.logits.nbytes))
    watch = (tok["space"], int(tok["addr"]) + 4 * p, g)

    def on_progress(line: dict[str, Any]) -> None:
        if status is not None:
            status(f"{line['cycles']:,} cycles, {line['cycles_per_s']:,} cycles/s, "
                   f"{line.get('watched', 0)}/{g} tokens")
        if progress is not None and "watched" in line:
            progress(int(line["watched"]), g)

    model_cycles = _model_cycles(b, p, g, write_logits)
    opts: dict[str, Any] = {"stall": stall, "wait": wait, "vrf": vrf, "srf": srf}
    if starts != 1:
        opts["starts"] = starts
    res, run = _run(b, opts, reads=reads,
                    writes=writes, watch=watch, model_cycles=model_cycles, waves=waves,
                    status=status, progress=on_progress, workdir=workdir, keep=keep,
                    max_cycles=max_cycles, timeout_s=timeout_s, links=links, trace=trace,
                    top=top)
    out = np.frombuffer(res.reads["tokens"], "<u4")
    if progress is not None:
        progress(g, g)
    logits = None
    if write_logits:
        flat = np.frombuffer(res.reads["logits"], "<f2")
        logits = flat.reshape(p + g - 1, row)[:, :nv].copy()
    return [int(t) for t in out], logits, run


def run_program(binary: Binary | str | os.PathLike[str], *, status: Status | None = None,
                waves: str | os.PathLike[str] | None = None, stall: int = 0,
                wait: str = "interrupt", max_cycles: int | None = None,
                workdir: str | None = None, keep: bool = False,
                vrf: tuple[int, int] | None = None, srf: bool = False,
                reads: Sequence[tuple[str, int, int]] = (), timeout_s: float = 3600.0,
                links: dict[str, Any] | None = None, top: str = "core") -> RtlRun:
    """Run a program (no host request; several cards: the ring, ``links`` as in
    :func:`_run`) until it halts; ``reads``: (space, addr, bytes) ranges to read back from
    every card (``run.results[c].reads["space:addr"]``); ``top`` as in :func:`_run`. A fault
    raises the functional simulator's error (module doc)."""
    from dfx.rtl.tb.core_job import HostAccess

    b = binary if isinstance(binary, Binary) else read_binary(binary, lazy=True)
    rd = [HostAccess(s, int(a), name=f"{s}:{int(a)}", bytes=int(n)) for s, a, n in reads]
    _res, run = _run(b, {"stall": stall, "wait": wait, "vrf": vrf, "srf": srf},
                     reads=[rd] * b.n_cards, writes=[], watch=None,
                     model_cycles=_model_cycles(b, None, None), waves=waves, status=status,
                     progress=None, workdir=workdir, keep=keep, max_cycles=max_cycles,
                     timeout_s=timeout_s, links=links, top=top)
    return run


# -- dfx run --backend rtl ---------------------------------------------------------------------
def rtl_run_options(args: Any, inputs: list[Any]) -> dict[str, Any]:
    """``rtl_options`` of :func:`dfx.host.runtime.generate` for ``dfx run --backend rtl``:
    ``--waves`` and ``--trace`` (checked before the work), progress lines on stderr unless
    ``--quiet``."""
    import sys

    from dfx.isa.outputs import check_output

    opts: dict[str, Any] = {}
    if getattr(args, "top", None) is not None:
        opts["top"] = args.top
    for option in ("waves", "trace"):
        path = getattr(args, option, None)
        if path is not None:
            check_output(path, option=f"--{option}", inputs=inputs)
            opts[option] = path
    if not getattr(args, "quiet", False):
        def status(text: str) -> None:
            print(f"dfx run: rtl: {text}", file=sys.stderr, flush=True)

        opts["status"] = status
    return opts


def rtl_summary(res: Any, wall: float) -> str:
    """The closing stderr line of ``dfx run --backend rtl``."""
    run: RtlRun = res.stats["rtl"]
    if len(run.cycles) == 1:
        model = (f" (timing model {run.model_cycles[0]:,})" if run.model_cycles else "")
        cycles = f"{run.cycles[0]:,} core cycles{model}"
    else:
        per = [f"{c:,}" + (f" (model {m:,})" if run.model_cycles else "")
               for c, m in zip(run.cycles, run.model_cycles or run.cycles, strict=True)]
        cycles = f"core cycles per card {', '.join(per)}"
    return (f"dfx run: {len(res.new_ids)} new tokens; RTL simulation {wall:.2f} s: "
            f"{cycles}, {run.cycles_per_s:,.0f} cycles/s")
