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
``card 0, pc p (annotation): <instruction>: <message>``. Binaries for several cards are
refused (the ring between cards is issue 11).
"""

from __future__ import annotations

import contextlib
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


def _one_card(b: Binary) -> None:
    if b.n_cards != 1:
        raise DfxError(f"the RTL backend runs one-card binaries; this one is for {b.n_cards} "
                       "cards (the ring between cards comes with issue 11)")


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


def _model(b: Binary, waves: bool, status: Status | None) -> Any:
    from dfx.rtl.tb.core_build import core_model

    return core_model(b.core, waves=waves, progress=status)


def _model_cycles(b: Binary, p: int | None, g: int | None) -> list[int] | None:
    from dfx.sim.timing import simulate

    try:
        return [int(c) for c in simulate(b, p, g).end]
    except Exception:  # noqa: BLE001 - the estimate is an extra; the run does not need it
        return None


def _run(b: Binary, options: dict[str, Any], *, reads: list[Any], writes: list[Any],
         watch: tuple[str, int, int] | None, model_cycles: list[int] | None,
         waves: str | os.PathLike[str] | None, status: Status | None,
         progress: Callable[[dict[str, Any]], None] | None, workdir: str | None,
         keep: bool, max_cycles: int | None, timeout_s: float) -> tuple[Any, RtlRun]:
    from dfx.rtl.tb.core_build import core_layout
    from dfx.rtl.tb.core_job import card_job
    from dfx.rtl.tb.core_run import CoreRunError, run_job

    _one_card(b)
    if waves is not None:
        from dfx.isa.outputs import check_output

        check_output(waves, option="--waves", inputs=[b.path])
    if b.model.get("weights") is False:
        raise DfxError("this binary was compiled without weights (--no-weights): it cannot "
                       "run; recompile it with weights")
    model = _model(b, waves is not None, status)
    layout = core_layout(b.core)
    if max_cycles is None:
        max_cycles = (max(MAX_CYCLES_FACTOR * max(model_cycles), MIN_MAX_CYCLES)
                      if model_cycles else DEFAULT_MAX_CYCLES)
    d = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="dfx-rtl-"))
    debug = False  # keep the job directory: an error message names it
    try:
        try:
            job = card_job(b.cards[0], b.core, layout, d, reads=reads, writes=writes,
                           watch=watch, sentinel=SENTINEL, max_cycles=max_cycles, **options)
        except ValueError as e:
            raise DfxError(f"the RTL backend cannot run this binary: {e}") from None
        dump = d / "waves.fst" if waves is not None else None
        if status is not None:
            status(f"simulating the core RTL (Verilator; up to {max_cycles:,} cycles)")
        try:
            try:
                res = run_job(model, job, d, waves=dump, progress=progress,
                              timeout_s=timeout_s)
            finally:
                if dump is not None and dump.is_file():
                    _write_waves(dump, waves)
        except CoreRunError as e:
            debug = True
            raise RtlError(f"{e} (job directory {d})") from None
        if res.mem_error:
            debug = True
            raise RtlError(f"card 0: the core broke the AXI protocol of the memories (error "
                           f"bits {res.mem_error:#x}: see dfx.rtl.tb.mem_model ERR_*); job "
                           f"directory {d}")
        if res.outcome != "done":
            from dfx.sim.functional.errors import BudgetExceededError

            debug = True
            raise BudgetExceededError(
                f"card 0: the core did not signal done within {max_cycles:,} cycles (a hang "
                f"in the RTL, or a program that never halts); job directory {d}")
        if res.status:
            raise fault_error(res.status, res.error_pc, res.error_word, b.cards[0])
        run = RtlRun([res.cycles], model_cycles, res.sim_cycles, res.wall_s, res.cycles_per_s,
                     res.cycles_per_cpu_s, res.load_s, model.build_s, d if keep else None,
                     Path(waves) if waves is not None else None, res)
        return res, run
    finally:
        if not (debug or keep or workdir):
            shutil.rmtree(d, ignore_errors=True)


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


def _hex_u32(values: Sequence[int]) -> str:
    return np.asarray(values, dtype="<u4").tobytes().hex()


def generate(binary: Binary | str | os.PathLike[str], tokens: Sequence[int],
             max_new_tokens: int, write_logits: bool = False, *,
             progress: Callable[[int, int], None] | None = None,
             status: Status | None = None, waves: str | os.PathLike[str] | None = None,
             stall: int = 0, wait: str = "interrupt", max_cycles: int | None = None,
             workdir: str | None = None, keep: bool = False, timeout_s: float = 6 * 3600.0,
             vrf: tuple[int, int] | None = None, srf: bool = False,
             ) -> tuple[list[int], np.ndarray | None, RtlRun]:
    """One greedy generation request of a one-card ``binary`` on the core RTL (module doc).

    Returns ``(prompt + generated tokens, logits, run)``; ``logits`` is
    ``float16[P+G-1, vocab]`` when ``write_logits``. ``progress(done, total)``: generated
    tokens; ``status(text)``: build and simulation messages (progress lines every 20k cycles).
    ``waves``: write the run's waveform (FST) there (a second, traced model build).
    ``stall``: the memories' random stall probability (0..15 sixteenths; results must not
    change). ``wait``: ``"interrupt"`` or ``"poll"``. ``vrf``/``srf``: also read the VRF
    vectors (first, count) / the SRF after the run (``run.result.vrf`` / ``.srf``).
    """
    from dfx.rtl.tb.core_job import HostAccess
    from dfx.sim.functional.errors import HostError

    b = binary if isinstance(binary, Binary) else read_binary(binary, lazy=True)
    _one_card(b)
    syms = b.cards[0].symbols
    for name in ("cfg", "tokens") + (("logits",) if write_logits else ()):
        if name not in syms:
            raise HostError(f"the binary has no {name!r} symbol: it was not compiled for "
                            "token generation")
    cfg, tok = syms["cfg"], syms["tokens"]
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
    fields = list(cfg.get("fields", ("prompt_len", "gen_len", "write_logits", "card_id",
                                     "n_cards")))
    values = {"prompt_len": p, "gen_len": g, "write_logits": int(bool(write_logits)),
              "card_id": 0, "n_cards": 1}
    unknown = [f for f in fields if f not in values]
    if unknown:
        raise HostError(f"the binary's cfg block has unknown field {unknown[0]!r}")
    writes = [HostAccess(cfg["space"], int(cfg["addr"]), hex=_hex_u32([values[f] for f in
                                                                       fields])),
              HostAccess(tok["space"], int(tok["addr"]),
                         hex=_hex_u32(prompt + [SENTINEL] * g))]
    reads = [HostAccess(tok["space"], int(tok["addr"]), name="tokens", bytes=4 * (p + g))]
    row = nv = 0
    if write_logits:
        lg = syms["logits"]
        row = int(lg["row_elements"])
        nv = int(lg.get("vocab", vocab or row))
        reads.append(HostAccess(lg["space"], int(lg["addr"]), name="logits",
                                bytes=2 * (p + g - 1) * row))
    watch = (tok["space"], int(tok["addr"]) + 4 * p, g)

    def on_progress(line: dict[str, Any]) -> None:
        if status is not None:
            status(f"{line['cycles']:,} cycles, {line['cycles_per_s']:,} cycles/s, "
                   f"{line.get('watched', 0)}/{g} tokens")
        if progress is not None and "watched" in line:
            progress(int(line["watched"]), g)

    model_cycles = _model_cycles(b, p, g)
    res, run = _run(b, {"stall": stall, "wait": wait, "vrf": vrf, "srf": srf}, reads=reads,
                    writes=writes, watch=watch, model_cycles=model_cycles, waves=waves,
                    status=status, progress=on_progress, workdir=workdir, keep=keep,
                    max_cycles=max_cycles, timeout_s=timeout_s)
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
                ) -> RtlRun:
    """Run a one-card program (no host request) until it halts; ``reads``: (space, addr,
    bytes) ranges to read back (``run.result.reads["space:addr"]``). A fault raises the
    functional simulator's error (module doc)."""
    from dfx.rtl.tb.core_job import HostAccess

    b = binary if isinstance(binary, Binary) else read_binary(binary, lazy=True)
    rd = [HostAccess(s, int(a), name=f"{s}:{int(a)}", bytes=int(n)) for s, a, n in reads]
    _res, run = _run(b, {"stall": stall, "wait": wait, "vrf": vrf, "srf": srf}, reads=rd,
                     writes=[], watch=None, model_cycles=_model_cycles(b, None, None),
                     waves=waves, status=status, progress=None, workdir=workdir, keep=keep,
                     max_cycles=max_cycles, timeout_s=timeout_s)
    return run


# -- dfx run --backend rtl ---------------------------------------------------------------------
def rtl_run_options(args: Any, inputs: list[Any]) -> dict[str, Any]:
    """``rtl_options`` of :func:`dfx.host.runtime.generate` for ``dfx run --backend rtl``:
    ``--waves`` (checked before the work), progress lines on stderr unless ``--quiet``."""
    import sys

    opts: dict[str, Any] = {}
    waves = getattr(args, "waves", None)
    if waves is not None:
        from dfx.isa.outputs import check_output

        check_output(waves, option="--waves", inputs=inputs)
        opts["waves"] = waves
    if not getattr(args, "quiet", False):
        def status(text: str) -> None:
            print(f"dfx run: rtl: {text}", file=sys.stderr, flush=True)

        opts["status"] = status
    return opts


def rtl_summary(res: Any, wall: float) -> str:
    """The closing stderr line of ``dfx run --backend rtl``."""
    run: RtlRun = res.stats["rtl"]
    model = (f" (timing model {run.model_cycles[0]:,})" if run.model_cycles else "")
    return (f"dfx run: {len(res.new_ids)} new tokens; RTL simulation {wall:.2f} s: "
            f"{run.cycles[0]:,} core cycles{model}, {run.cycles_per_s:,.0f} cycles/s")
