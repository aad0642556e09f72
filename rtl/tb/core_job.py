"""One run of a card on the core testbench, as data: :class:`CoreJob` (what the testbench
:mod:`.core_tb` does) and :class:`CoreResult` (what it found). No cocotb, no Amaranth import.

A job directory holds ``job.json`` (:meth:`CoreJob.write`), the memory images it names
(``*.bin``: raw little-endian bytes) and, after the run, ``result.json`` + ``result.npz``
(:meth:`CoreResult.read`) and ``progress.jsonl`` (one JSON line per progress tick).

:func:`card_job` turns a :class:`~dfx.isa.container.CardImage` into a job: its segments (fill
segments expanded) as whole-word loads per back-door channel (HBM de-interleaved over the
pseudo-channels, docs/core.md "Memory system"), the program in DDR above everything the image
and its symbols use, and the kernel arguments (``prog_words``, ``prog``, ``ddr``, ``hbmNN`` =
the testbench's buffer addresses, ``cards`` = 1). The caller adds host writes (the ``cfg``
block, the tokens), reads, and how to wait for done.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dfx.isa.config import CoreConfig, core_from_dict, to_dict
from dfx.isa.spec import load_spec

from .mem_model import MemLayout

__all__ = ["CoreJob", "CoreResult", "HostAccess", "Load", "card_job", "layout_from_dict",
           "layout_to_dict"]

JOB_FILE = "job.json"
RESULT_FILE = "result.json"
RESULT_ARRAYS = "result.npz"
PROGRESS_FILE = "progress.jsonl"
#: A traced job's unit busy intervals: JSON list of [unit, pc, start, end] (cycles from
#: ap_start; unit: index into dfx.rtl.core.backend.TRACE_UNITS).
TRACE_FILE = "trace.json"
#: The testbench's ap_clk period (ns) unless a job says otherwise.
PERIOD_NS = 10
#: Where the program goes in DDR: above the image, aligned to this (a Vitis page).
PROG_ALIGN = 4096
WAITS = ("interrupt", "poll", "xrt")
#: The card tops of the testbench: the bare core (debug ports) or the Alveo kernel.
TOPS = ("core", "board")


@dataclass
class Load:
    """Whole words ``file`` (raw little-endian bytes) at word ``word`` of back-door
    ``channel`` (:class:`~.mem_model.MemLayout`: pseudo-channels, then DDR)."""

    channel: int
    word: int
    file: str


@dataclass
class HostAccess:
    """A host write (``file`` or ``hex`` data) or read (``bytes``) of a card's ``space``
    (``hbm``: the linear ISA address space; ``ddr``) at ISA address ``addr``; ``name`` keys a
    read's bytes in the result."""

    space: str
    addr: int
    name: str = ""
    bytes: int = 0
    hex: str = ""


@dataclass
class CoreJob:
    """Everything :mod:`.core_tb` does in one run (module doc).

    ``wait``: ``"interrupt"`` (enable the done interrupt, sleep until ``interrupt`` rises) or
    ``"poll"`` (read CTRL every ``poll_cycles``). ``max_cycles``: give up (result ``timeout``)
    after this many cycles from ap_start. ``stall``: the memories' stall input (0..15, of 16).
    ``vrf``: (first vector, count) to read back after done; ``srf``: read every scalar.
    ``watch``: (space, addr, count) of 32-bit words whose non-``sentinel`` count progress
    reports (the generated tokens), read every ``progress_cycles``. ``deadlock_cycles``: on a
    ring, the cards are declared deadlocked when for this many cycles every card still running
    waits on a ``send``/``recv`` with its other units idle and nothing moves on the ring
    (the live registers of ``rtl/control/regmap.py``, read every ``deadlock_cycles // 8``).
    ``trace``: record each unit's busy intervals from the ``dbg_trace`` port into
    :data:`TRACE_FILE`.
    ``top``: the card's top (:data:`TOPS`): ``"board"`` is the Alveo kernel
    (:class:`~.board_top.BoardTestTop`: no debug ports, so no ``vrf``/``srf``/``trace``), its
    link clock ``ap_clk_2`` of period ``link_period_ps``. ``wait="xrt"``: the control slave
    in XRT's order, ``starts`` runs in a row (:mod:`.core_tb`).
    """

    core: dict[str, Any]
    board: dict[str, Any]
    layout: dict[str, Any]
    args: dict[str, int]
    loads: list[Load] = field(default_factory=list)
    writes: list[HostAccess] = field(default_factory=list)
    reads: list[HostAccess] = field(default_factory=list)
    vrf: tuple[int, int] | None = None
    srf: bool = False
    wait: str = "interrupt"
    poll_cycles: int = 500
    max_cycles: int = 10_000_000
    stall: int = 0
    progress_cycles: int = 20_000
    watch: tuple[str, int, int] | None = None
    sentinel: int = 0xFFFF_FFFF
    period_ns: int = PERIOD_NS
    deadlock_cycles: int = 20_000
    trace: bool = False
    top: str = "core"
    link_period_ps: int = 0
    starts: int = 1

    def __post_init__(self) -> None:
        if self.wait not in WAITS:
            raise ValueError(f"wait must be one of {WAITS}, not {self.wait!r}")
        if self.top not in TOPS:
            raise ValueError(f"top must be one of {TOPS}, not {self.top!r}")
        if self.top == "board" and (self.vrf is not None or self.srf or self.trace):
            raise ValueError("the board top has no debug ports: no vrf, srf or trace")
        if self.top == "board" and self.link_period_ps < 2:
            raise ValueError(f"the board top needs link_period_ps >= 2, not "
                             f"{self.link_period_ps!r}")
        if self.starts < 1 or (self.starts > 1 and self.wait != "xrt"):
            raise ValueError(f"starts must be 1, or >= 1 with wait='xrt', not {self.starts!r}")
        if not 0 <= self.stall <= 15:
            raise ValueError(f"stall must be in 0..15, not {self.stall!r}")
        for name in ("poll_cycles", "max_cycles", "progress_cycles", "deadlock_cycles"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, not {getattr(self, name)!r}")

    def core_config(self) -> CoreConfig:
        return core_from_dict(self.core, self.board, "core job")

    def mem_layout(self) -> MemLayout:
        return layout_from_dict(self.layout)

    def write(self, directory: Path) -> Path:
        path = Path(directory) / JOB_FILE
        path.write_text(json.dumps(asdict(self), indent=1))
        return path

    @classmethod
    def read(cls, path: Path) -> CoreJob:
        d = json.loads(Path(path).read_text())
        d["loads"] = [Load(**x) for x in d["loads"]]
        d["writes"] = [HostAccess(**x) for x in d["writes"]]
        d["reads"] = [HostAccess(**x) for x in d["reads"]]
        for k in ("vrf", "watch"):
            if d[k] is not None:
                d[k] = tuple(d[k])
        return cls(**d)


@dataclass
class CoreResult:
    """What a run found. ``outcome``: ``"done"``, ``"timeout"`` or ``"deadlock"`` (a ring's
    cards wait on each other; ``pc``, ``busy``, ``tx_pc``, ``rx_pc``: the live registers then).
    ``status`` (0 or the fault code), ``error_pc``, ``error_word``, ``cycles``: the core's
    status registers.
    ``sim_cycles``: clock cycles from ap_start to done as the testbench saw them; ``wall_s``:
    their wall time, ``cpu_s`` the simulator process's CPU time in it (on a busy machine the
    wall time includes waiting for a CPU); ``mem_error``: the memories' sticky protocol error
    bits; ``ring_error``: a ring model's sticky error (a receive FIFO overflowed or a link
    model's queue filled: never); ``irq``: the interrupt was seen. ``reads``: name -> bytes;
    ``vrf``: uint16 [n, d]; ``srf``: uint32. ``starts`` (``wait="xrt"``): per run, what the
    host saw of the control registers (``mode``, ``ctrl_open``, ``isr``, ``irq_after_clear``,
    ``ctrl_done``, ``polls``, ``ctrl_running``) and its ``status``, ``cycles``,
    ``sim_cycles``."""

    outcome: str
    status: int = 0
    error_pc: int = 0
    error_word: int = 0
    cycles: int = 0
    sim_cycles: int = 0
    wall_s: float = 0.0
    cpu_s: float = 0.0
    load_s: float = 0.0
    mem_error: int = 0
    ring_error: int = 0
    irq: bool = False
    pc: int = 0
    busy: int = 0
    tx_pc: int = 0
    rx_pc: int = 0
    starts: list[dict[str, Any]] = field(default_factory=list)
    reads: dict[str, bytes] = field(default_factory=dict)
    vrf: np.ndarray | None = None
    srf: np.ndarray | None = None

    @property
    def cycles_per_s(self) -> float:
        return self.sim_cycles / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def cycles_per_cpu_s(self) -> float:
        return self.sim_cycles / self.cpu_s if self.cpu_s > 0 else 0.0

    def write(self, directory: Path) -> None:
        d = Path(directory)
        scalars = {k: v for k, v in asdict(self).items() if k not in ("reads", "vrf", "srf")}
        scalars["error_word"] = hex(self.error_word)
        arrays = {f"read_{k}": np.frombuffer(v, np.uint8) for k, v in self.reads.items()}
        if self.vrf is not None:
            arrays["vrf"] = self.vrf
        if self.srf is not None:
            arrays["srf"] = self.srf
        np.savez(d / RESULT_ARRAYS, **arrays)
        (d / RESULT_FILE).write_text(json.dumps(scalars, indent=1))

    @classmethod
    def read(cls, directory: Path) -> CoreResult:
        d = Path(directory)
        s = json.loads((d / RESULT_FILE).read_text())
        s["error_word"] = int(s["error_word"], 16)
        res = cls(**s)
        with np.load(d / RESULT_ARRAYS) as z:
            for k in z.files:
                if k.startswith("read_"):
                    res.reads[k[5:]] = z[k].tobytes()
            res.vrf = z["vrf"] if "vrf" in z.files else None
            res.srf = z["srf"] if "srf" in z.files else None
        return res


def layout_to_dict(layout: MemLayout) -> dict[str, Any]:
    return {"beat_bytes": layout.beat_bytes, "hbm_channels": layout.hbm_channels,
            "hbm_bytes": layout.hbm_bytes, "interleave": layout.interleave,
            "ddr_bytes": layout.ddr_bytes, "hbm_bases": list(layout.hbm_bases),
            "ddr_base": layout.ddr_base, "file": layout.file}


def layout_from_dict(d: dict[str, Any]) -> MemLayout:
    return MemLayout(d["beat_bytes"], d["hbm_channels"], d["hbm_bytes"], d["interleave"],
                     d["ddr_bytes"], tuple(d["hbm_bases"]), d["ddr_base"], file=d["file"])


def _image(segments: list[Any], space: str, size: int, extra_end: int = 0) -> np.ndarray:
    """The bytes of ``space`` from 0 to the end of its last segment (zeros between)."""
    segs = [s for s in segments if s.space == space]
    end = max([s.end for s in segs] + [extra_end, 0])
    if end > size:
        raise ValueError(f"the image's {space.upper()} reaches {end:#x}, past the "
                         f"{size:#x} bytes of the testbench's {space.upper()}")
    img = np.zeros(end, np.uint8)
    for s in segs:
        if s.fill is not None:
            img[s.addr:s.end] = s.fill
        else:
            img[s.addr:s.end] = np.frombuffer(s.to_bytes(), np.uint8)
    return img


def _pad(a: np.ndarray, multiple: int) -> np.ndarray:
    n = -(-a.size // multiple) * multiple
    return np.concatenate([a, np.zeros(n - a.size, np.uint8)]) if n != a.size else a


def card_job(image: Any, core: CoreConfig, layout: MemLayout, directory: Path, *,
             cards: int = 1, **options: Any) -> CoreJob:
    """The job that runs ``image`` (a :class:`~dfx.isa.container.CardImage`) on the core
    testbench (module doc); its image files are written to ``directory``. ``options`` go to
    :class:`CoreJob`. Raises ValueError for what the testbench cannot hold (weight-buffer
    segments: the weight buffer is on chip; memories past the testbench's sizes)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    wbuf = [s for s in image.segments if s.space not in ("hbm", "ddr")]
    if wbuf:
        raise ValueError(f"the binary initialises the on-chip {wbuf[0].space} memory, which the "
                         "RTL testbench cannot load yet (only HBM and DDR images)")
    b, n = layout.beat_bytes, layout.hbm_channels
    row = b * n
    loads: list[Load] = []
    hbm = _pad(_image(image.segments, "hbm", layout.hbm_bytes * n), row)
    if hbm.size:
        view = hbm.reshape(-1, n, b)
        for c in range(n):
            f = f"hbm{c:02d}.bin"
            (d / f).write_bytes(view[:, c, :].tobytes())
            loads.append(Load(c, 0, f))
    sym_end = max([int(s["addr"]) + int(s.get("bytes", 0)) for s in image.symbols.values()
                   if s.get("space") == "ddr"] + [0])
    ddr = _image(image.segments, "ddr", layout.ddr_bytes)
    prog_off = -(-max(ddr.size, sym_end) // PROG_ALIGN) * PROG_ALIGN
    prog = np.frombuffer(bytes(image.program), np.uint8)
    if prog_off + prog.size > layout.ddr_bytes:
        raise ValueError(f"the program ({prog.size} bytes at DDR {prog_off:#x}) does not fit "
                         f"the testbench's {layout.ddr_bytes:#x} bytes of DDR")
    if ddr.size:
        (d / "ddr.bin").write_bytes(_pad(ddr, b).tobytes())
        loads.append(Load(layout.ddr_channel, 0, "ddr.bin"))
    if prog.size:
        (d / "prog.bin").write_bytes(_pad(prog, b).tobytes())
        loads.append(Load(layout.ddr_channel, prog_off // b, "prog.bin"))
    word_bytes = load_spec().word_bytes
    if prog.size % word_bytes:
        raise ValueError(f"the program is {prog.size} bytes, not whole {word_bytes}-byte words")
    args = {"prog_words": prog.size // word_bytes, "prog": layout.ddr_base + prog_off,
            "ddr": layout.ddr_base,
            **{f"hbm{i:02d}": base for i, base in enumerate(layout.hbm_bases)},
            "cards": cards}
    return CoreJob(core=to_dict(core), board=to_dict(core.b), layout=layout_to_dict(layout),
                   args=args, loads=loads, **options)
