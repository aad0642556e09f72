#!/usr/bin/env python3
"""How many VRF ports the core really uses at once, and what banking would cost (issue 12,
VRF budget study).

    .venv/bin/python bench/vrf_ports.py                 # gpt2-medium x1 32:4, gpt2-xl-24h x4 16:4
    .venv/bin/python bench/vrf_ports.py --quick         # gpt2-mini x1 8:4 only (seconds)
    .venv/bin/python bench/vrf_ports.py --run gpt2-medium:1:64:8 --all-cards --check

The VRF (``rtl/vrf/vrf.py``) is one memory with a read port per client (VPU a, VPU b, MPU x,
LUT x, DMA store, router tx) and a write port per client (VPU, MPU, LUT, DMA load, router rx);
``rtl/core/backend.py`` wires them. Block RAM and UltraRAM have two ports, so a real design
banks, replicates or time-shares it. This bench measures the port use that decides how.

**Where the accesses come from.** The timing model (``dfx.sim.timing``, docs/timing.md: cycle
for cycle with the core RTL where checked) computes, per instruction, the cycle each unit reads
and writes each vector. It keeps only what later instructions need (per-vector availability of
writes, the last read of a reader), so this script records the per-vector cycles from outside:

* writes: every ``_write(lo, avail)`` of the model, vector ``lo + i`` written in
  ``avail[i] - 1`` (docs/timing.md "Time"), charged to the port of the instruction's unit;
* reads: a recording line inserted, by source patch in this process only, after the line of
  the model that fixes each vector's read cycle (VPU operand stream ``_vpu_stream``, DMA store,
  router send, LUT x reads), so the recorded cycle is the model's own variable;
* MPU x reads: the model keeps only the row's last x read in closed form; the MPU port reads
  one x per weight tile in tile order (``rtl/core/mpu_port.py``, ``X_SLOTS`` ahead of the
  tiles), so read i = max(read i-1 + 1, tile i - slots taken + 1, x available), from the row's
  first read and the model's own tile times (``row_steps``).

The patched card is used for this process's run only (``Appliance`` builds it); ``--check``
also runs the stock model and asserts identical cycles. Runs use ``memo=False``: the exact loop
memo (``sim/timing/memo.py``) jumps over repeated iterations, whose accesses would be missing.

**What it prints** (card 0 unless ``--all-cards``; window = the decode passes, i.e. after the
prompt's last token until the last token; with ``--with-prompt`` the prompt passes too):

1. per port: accesses, busy % of the window's cycles, address pattern (the most common
   differences between consecutive addresses, run length of +1 streams);
2. histogram of active read ports and write ports per cycle;
3. pairs of ports active in the same cycle (% of cycles);
4. VPU two-operand streams whose a and b addresses are congruent mod B (they collide in every
   cycle under address-interleaved banking);
5. replay of the recorded accesses on candidate organisations (:func:`orgs`): extra cycles per
   decode token and %, URAM/BRAM36 count, crossbar LUT estimate.

**Replay model ("freeze").** Each cycle's accesses go to their banks (vector address mod B); a
bank serves per cycle one read and one write (1R1W, simple dual port) or two accesses of any
kind (2RW, true dual port); a time-shared physical port serves one of its clients per cycle.
A cycle that needs k > 1 rounds on some bank or shared port stalls the whole core k - 1 cycles
(the accesses, in their recorded order, are served over k cycles while everything else waits).
This is pessimistic where the units have slack (queues ahead of the port, reads ahead of the
consumer), so the figures are a ceiling for a design that stalls only the losing port.

**Resources.** Storage from ``bench/resources_geometry.py`` (URAM288 4K x 72, BRAM36 512 x 72
simple dual port): per copy, B banks of (vectors / B) x (16 d) bits. Crossbar: a LUT6 is a 4:1
multiplexer, so an n:1 multiplexer is ceil((n - 1) / 3) LUT per bit; each physical read port
selects its data from the B banks of its copy, each bank port selects write data and address
from the write ports (and its read address from the read ports) that reach it; a time-shared
read port broadcasts its data and multiplexes its address only. Arbiters and stall logic are
not counted. An estimate from geometry, not a synthesis.
"""

from __future__ import annotations
import __future__

import argparse
import contextlib
import inspect
import math
import sys
import tempfile
import textwrap
import time
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from resources_geometry import bram36_count, uram_count  # noqa: E402

# The VRF's clients as rtl/core/backend.py names them (Vrf(read_ports=..., write_ports=...)).
READ_PORTS = ("vpu_a", "vpu_b", "mpu", "lut", "dma", "tx")
WRITE_PORTS = ("vpu", "mpu", "lut", "dma", "rx")
PORTS = tuple(f"r.{p}" for p in READ_PORTS) + tuple(f"w.{p}" for p in WRITE_PORTS)

# the unit whose VRF write port an instruction uses, by its timing-model handler
WRITER = {"_op_vector": "vpu", "_op_matrix": "mpu", "_op_lutmv": "lut", "_op_load": "dma",
          "_op_recv": "rx"}
VPU_READERS = ("_op_vector", "_op_reduce")

DEFAULT_RUNS = ("gpt2-medium:1:32:4", "gpt2-xl-24h:4:16:4")
QUICK_RUNS = ("gpt2-mini:1:8:4",)


# --------------------------------------------------------------------------- recording


def _patch(cls: type, name: str, edits: list[tuple[str, str, str]]) -> Any:
    """``cls.name`` recompiled with lines inserted: per edit (anchor, code, "after"|"before"),
    ``code`` goes after (or before) the unique ``anchor`` block, at the indentation of the
    anchor's first line. Raises if an anchor is missing (the model changed: update here)."""
    src = textwrap.dedent(inspect.getsource(getattr(cls, name)))
    for anchor, code, where in edits:
        block = textwrap.dedent(anchor).strip("\n")
        lines = src.splitlines(keepends=True)
        hits = [i for i in range(len(lines)) if "".join(
            x.strip() + "\n" for x in lines[i:i + block.count("\n") + 1]) == "".join(
            x.strip() + "\n" for x in block.splitlines())]
        if len(hits) != 1:
            raise RuntimeError(f"{cls.__name__}.{name}: anchor {block!r} found {len(hits)} "
                               "times; the timing model changed, update bench/vrf_ports.py")
        i = hits[0]
        indent = lines[i][:len(lines[i]) - len(lines[i].lstrip())]
        at = i + block.count("\n") + 1 if where == "after" else i
        lines.insert(at, indent + code + "\n")
        src = "".join(lines)
    ns = dict(sys.modules[cls.__module__].__dict__)
    code_obj = compile(src, f"<bench/vrf_ports.py patch of {cls.__name__}.{name}>", "exec",
                       flags=__future__.annotations.compiler_flag, dont_inherit=True)
    exec(code_obj, ns)
    return ns[name]


@dataclass
class Recording:
    """Per card: per port (:data:`PORTS`), the cycles and vector addresses of its accesses in
    the order the model produced them; the token completion cycles; the run's end."""

    label: str
    prompt: int
    gen: int
    cards: list[int]
    access: list[dict[str, tuple[array, array]]] = field(default_factory=list)
    token_times: list[list[int]] = field(default_factory=list)
    end: list[int] = field(default_factory=list)
    vpu_pairs: list[list[tuple[int, int, int, int]]] = field(default_factory=list)  # t, a, b, n
    mpu_checks: list[int] = field(default_factory=list)  # rows whose last read != model's
    sim_s: float = 0.0


def recording_card(base: type) -> type:
    """A subclass of the timing model's ``CardSim`` that records every VRF access."""
    from dfx.sim.timing.dma import Dma
    from dfx.sim.timing.lutgemm import LutUnit
    from dfx.sim.timing.mpu import MpuUnit
    from dfx.sim.timing.router import Router
    from dfx.sim.timing.vpu import VpuUnit

    stream = _patch(VpuUnit, "_vpu_stream", [(
        """x = fires[0] + 1
           if x > r:
               r = x""", "self._vrf_stream.append(r)", "after")])
    matrix = _patch(MpuUnit, "_op_matrix", [(
        """for i in range(max(0, tiles - ns), tiles):
               self.mu_tiles.append(p_at(i))""",
        "self._vrf_mpu_row(b, kt, blocks, xb, xfirst, row_steps, tiles, ns, av_x, last_read)",
        "before")])
    store = _patch(Dma, "_op_store", [(
        """if av is not None and av[v] > r:
               r = av[v]""", "self._vrf_read('r.dma', r, a0 + v)", "after")])
    send = _patch(Router, "_send_run", [(
        """if av is not None and av[i] > read:
               read = av[i]""", "self._vrf_read('r.tx', read, v + i)", "after")])
    lut = _patch(LutUnit, "_op_lutmv", [(
        """if av_x is not None:
               read = max(read, av_x[b * kv + v_read])""",
        "self._vrf_read('r.lut', read, xb + b * kv + v_read)", "after")])

    class RecordingCard(base):  # type: ignore[misc, valid-type]
        _vpu_stream_patched = stream
        _op_matrix = matrix
        _op_store = store
        _send_run = send
        _op_lutmv = lut

        def reset(self) -> None:
            super().reset()
            self.vrf_log = {p: (array("q"), array("q")) for p in PORTS}
            self.vrf_pairs: list[tuple[int, int, int, int]] = []
            self.vrf_mpu_mismatch = 0
            self._vrf_handler = ""
            self._vrf_reads = 0
            self._vrf_stream: list[int] = []

        def step(self) -> int:
            if 0 <= self.pc < self.n_prog and self.pending is None:
                self._vrf_handler = self.meta[self.pc].run.__name__
                self._vrf_reads = 0
            return super().step()

        def _vrf_read(self, port: str, t: int, addr: int) -> None:
            ts, ad = self.vrf_log[port]
            ts.append(t)
            ad.append(addr)

        def _vpu_stream(self, *args: Any) -> Any:
            self._vrf_stream = []
            return self._vpu_stream_patched(*args)

        def _vrf_mpu_row(self, b: int, kt: int, blocks: list, xb: int, xfirst: int,
                         row_steps: list, tiles: int, ns: int, av_x: list | None,
                         last_read: int) -> None:
            """The x reads of one row (module doc): one per tile in tile order."""
            def tile_times() -> Iterator[int]:
                for k, (s0, x0, rows, i0) in enumerate(row_steps):
                    s1 = row_steps[k + 1][0] if k + 1 < len(row_steps) else tiles
                    for i in range(s0, s1):
                        yield max(x0 + i - s0, rows.at(i0 + i - s0))

            ts, ad = self.vrf_log["r.mpu"]
            earlier = list(self.mu_tiles)  # the tiles before this row (oldest first)
            ahead = tile_times()
            r = xfirst - 1
            i = 0
            for _q0, gb in blocks:
                for k in range(kt):
                    v = b * kt + k
                    a = av_x[v] if av_x is not None else r
                    for _ in range(gb):
                        slot = earlier[i] if i < ns else next(ahead)
                        r = max(r + 1, slot + 1, a)
                        ts.append(r)
                        ad.append(xb + v)
                        i += 1
            if r != last_read:
                self.vrf_mpu_mismatch += 1

        def _read(self, lo: int, n: int, last: int, cat: int, entries: int = 1) -> None:
            if self._vrf_handler in VPU_READERS and n > 0:
                port = "r.vpu_a" if self._vrf_reads == 0 else "r.vpu_b"
                st = self._vrf_stream
                if len(st) != n or st[-1] != last:
                    raise RuntimeError(f"{self.where()}: VPU stream record {len(st)} reads, "
                                       f"last {st[-1] if st else None}, model {n}, {last}")
                ts, ad = self.vrf_log[port]
                ts.extend(st)
                ad.extend(range(lo, lo + n))
                if self._vrf_reads == 0:
                    self._vrf_a = lo
                else:
                    self.vrf_pairs.append((st[0], self._vrf_a, lo, n))
                self._vrf_reads += 1
            super()._read(lo, n, last, cat, entries)

        def _write(self, lo: int, av: list[int], cat: int) -> None:
            unit = WRITER.get(self._vrf_handler)
            if unit is None:
                raise RuntimeError(f"{self.where()}: VRF write by {self._vrf_handler}")
            ts, ad = self.vrf_log[f"w.{unit}"]
            ts.extend(x - 1 for x in av)
            ad.extend(range(lo, lo + len(av)))
            super()._write(lo, av, cat)

    return RecordingCard


@contextlib.contextmanager
def recording_appliance() -> Iterator[list[Any]]:
    """Inside the block, ``dfx.sim.timing.appliance`` builds recording cards; the yielded list
    collects them as they are built."""
    from dfx.sim.timing import appliance

    base = appliance.CardSim
    made: list[Any] = []
    rec_cls = recording_card(base)

    class Collected(rec_cls):  # type: ignore[misc, valid-type]
        def __init__(self, *a: Any, **k: Any) -> None:
            super().__init__(*a, **k)
            made.append(self)

    appliance.CardSim = Collected
    try:
        yield made
    finally:
        appliance.CardSim = base


def record(path: str, label: str, prompt: int, gen: int, cards: list[int] | None,
           check: bool) -> Recording:
    """Run the timing model on ``path`` (memo off) and keep the VRF accesses of ``cards``
    (None: all)."""
    from dfx.sim.timing import simulate

    t0 = time.perf_counter()
    with recording_appliance() as made:
        res = simulate(path, prompt, gen, memo=False)
    sim_s = time.perf_counter() - t0
    if check:
        stock = simulate(path, prompt, gen)
        if stock.end != res.end:
            raise RuntimeError(f"{label}: the recording run ends at {res.end}, the stock model "
                               f"at {stock.end}")
    keep = list(range(len(made))) if cards is None else cards
    rec = Recording(label, prompt, gen, keep, sim_s=sim_s)
    for c in keep:
        cd = made[c]
        rec.access.append(cd.vrf_log)
        rec.token_times.append(list(res.token_times[c]))
        rec.end.append(res.end[c])
        rec.vpu_pairs.append(cd.vrf_pairs)
        rec.mpu_checks.append(cd.vrf_mpu_mismatch)
    return rec


def compile_binary(model: str, cards: int, workdir: Path) -> str:
    """A timing-only binary (``compile_model(..., weights=False)``, as bench/paper_compare.py)."""
    from dfx.compiler.driver import compile_model
    from dfx.isa.container import write_binary

    comp = compile_model(model, cards=cards, weights=False)
    return str(write_binary(workdir / f"{model}-{cards}.dfx", comp.binary))


# --------------------------------------------------------------------------- analysis


@dataclass
class Window:
    """Cycles [lo, hi) of one card and the number of token passes in them."""

    name: str
    lo: int
    hi: int
    passes: int


def windows(rec: Recording, k: int) -> list[Window]:
    """The prompt passes and the decode passes of card ``k`` (token_times: each pass's arg-max
    completion; pass ``prompt - 1`` produces the first new token)."""
    tt, p = rec.token_times[k], rec.prompt
    out = [Window("prompt", 0, tt[p - 1] + 1, p)]
    if len(tt) > p:
        out.append(Window("decode", tt[p - 1] + 1, tt[-1] + 1, len(tt) - p))
    return out


def accesses(rec: Recording, k: int, w: Window) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per port: (cycles relative to the window, addresses), in time order."""
    out = {}
    for p in PORTS:
        t = np.frombuffer(rec.access[k][p][0], dtype=np.int64)
        a = np.frombuffer(rec.access[k][p][1], dtype=np.int64)
        sel = (t >= w.lo) & (t < w.hi)
        t, a = t[sel] - w.lo, a[sel]
        order = np.argsort(t, kind="stable")
        out[p] = (t[order], a[order])
    return out


def pct(x: float, total: float) -> str:
    return f"{100.0 * x / total:.1f} %" if total else "-"


def table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |",
             "|" + "|".join("---" if i == 0 else "---:" for i in range(len(head))) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def pattern(a: np.ndarray) -> tuple[str, str]:
    """The three most common address differences between consecutive accesses (share) and
    the mean length of +1 runs."""
    if len(a) < 2:
        return "-", "-"
    d = np.diff(a)
    vals, cnt = np.unique(d, return_counts=True)
    top = np.argsort(-cnt)[:3]
    desc = ", ".join(f"{int(vals[i]):+d}: {100.0 * cnt[i] / len(d):.0f} %" for i in top)
    breaks = np.count_nonzero(d != 1)
    return desc, f"{len(a) / (breaks + 1):.1f}"


def port_table(acc: dict[str, tuple[np.ndarray, np.ndarray]], w: Window) -> str:
    n = w.hi - w.lo
    rows = []
    for p in PORTS:
        t, a = acc[p]
        if not len(t):
            rows.append([p, "0", "0.0 %", "-", "-", "-"])
            continue
        dup = int(np.count_nonzero(np.diff(t) == 0))
        desc, run = pattern(a)
        rows.append([p, f"{len(t):,}", pct(len(t), n), desc, run, str(dup)])
    return table(["port", "accesses", "busy", "address steps (top 3)", "mean +1 run",
                  "same-cycle repeats"], rows)


def activity(acc: dict[str, tuple[np.ndarray, np.ndarray]], n: int) -> dict[str, np.ndarray]:
    """Per port, a bool per cycle of the window: the port accessed the VRF."""
    out = {}
    for p in PORTS:
        b = np.zeros(n, dtype=bool)
        b[acc[p][0]] = True
        out[p] = b
    return out


def histogram_table(act: dict[str, np.ndarray], n: int) -> str:
    nr = sum(act[p].astype(np.int8) for p in PORTS if p.startswith("r."))
    nw = sum(act[p].astype(np.int8) for p in PORTS if p.startswith("w."))
    hr, hw = np.bincount(nr, minlength=7), np.bincount(nw, minlength=6)
    both = np.bincount(nr + nw, minlength=12)
    rows = []
    for k in range(max(len(hr), len(hw), len(both))):
        cells = [pct(h[k], n) if k < len(h) and h[k] else "" for h in (hr, hw, both)]
        if any(cells):
            rows.append([str(k), *cells])
    return table(["active ports", "read ports", "write ports", "all ports"], rows)


def pairs_table(act: dict[str, np.ndarray], n: int) -> str:
    rows = []
    for i, p in enumerate(PORTS):
        row = [p]
        for j, q in enumerate(PORTS):
            if j < i:
                row.append("")
                continue
            c = int(np.count_nonzero(act[p] & act[q]))
            row.append(f"{100.0 * c / n:.1f}" if c else ".")
        rows.append(row)
    return table(["% of cycles", *PORTS], rows)


def congruent(pairs: list[tuple[int, int, int, int]], w: Window, banks: tuple[int, ...]
              ) -> str:
    pairs = [(a, c, n) for t, a, c, n in pairs if w.lo <= t < w.hi]
    tot = sum(n for _, _, n in pairs)
    if not tot:
        return "no two-operand VPU streams"
    parts = [f"B = {b}: {pct(sum(n for a, c, n in pairs if (a - c) % b == 0), tot)}"
             for b in banks if b > 1]
    return (f"{len(pairs):,} two-operand VPU streams, {tot:,} vectors; vectors whose a and b "
            "addresses are congruent mod B (same bank every cycle): " + ", ".join(parts))


# --------------------------------------------------------------------------- organisations


@dataclass(frozen=True)
class Org:
    """A VRF organisation: ``copies`` x ``banks`` banks, each bank ``mode`` "1r1w" (a read and a
    write per cycle) or "2rw" (two accesses); a vector's bank is its address mod ``banks``
    (``xor``: the XOR of the address's log2(banks)-bit digits, so that streams whose bases
    differ by a multiple of ``banks`` still spread); read ports served by copy
    ``read_copy[port]`` (writes go to every copy); ``shared``: groups of ports (names of
    :data:`PORTS`) time-sharing one physical port; ``mpu_reuse``: the MPU port reads each x
    once per k-round instead of once per tile (an RTL change: the x buffer keeps it)."""

    name: str
    banks: int
    mode: str = "1r1w"
    xor: bool = False
    copies: int = 1
    read_copy: tuple[tuple[str, int], ...] = ()
    shared: tuple[tuple[str, ...], ...] = ()
    mpu_reuse: bool = False

    def copy_of(self, port: str) -> int:
        return dict(self.read_copy).get(port, 0)

    def bank(self, a: np.ndarray) -> np.ndarray:
        b = self.banks
        if not self.xor or b == 1:
            return a % b
        k = b.bit_length() - 1
        out = np.zeros_like(a)
        x = a.copy()
        while np.any(x):
            out ^= x & (b - 1)
            x >>= k
        return out


LOW_RATE_R = ("r.lut", "r.dma", "r.tx")
LOW_RATE_W = ("w.lut", "w.dma", "w.rx")
SPLIT = (("r.vpu_b", 1), ("r.mpu", 1))  # copy 1: VPU b and MPU x; copy 0 the rest


def orgs(banks: tuple[int, ...]) -> list[Org]:
    """The organisations replayed (module doc); B = 1 is one memory with one read and one
    write port (1R1W) or two ports (2RW) that every client time-shares."""
    out = []
    for b in banks:
        out.append(Org(f"{b} x 1R1W", b))
    for b in banks:
        if b > 1:
            out.append(Org(f"{b} x 1R1W, xor-fold", b, xor=True))
    for b in banks:
        out.append(Org(f"{b} x 2RW", b, mode="2rw"))
    for b in banks:
        if b > 1:
            out.append(Org(f"{b} x 2RW, xor-fold", b, mode="2rw", xor=True))
    for b in banks:
        out.append(Org(f"{b} x 1R1W, MPU x once per round", b, mpu_reuse=True))
    for b in banks:
        out.append(Org(f"2 copies x {b} x 1R1W (VPU b + MPU x / rest), lut/dma/tx, lut/dma/rx "
                       "shared", b, copies=2, read_copy=SPLIT, shared=(LOW_RATE_R, LOW_RATE_W)))
    return out


def reuse_mpu(t: np.ndarray, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """MPU x reads with consecutive repeats of one address dropped."""
    keep = np.ones(len(a), dtype=bool)
    keep[1:] = a[1:] != a[:-1]
    return t[keep], a[keep]


def stalls(acc: dict[str, tuple[np.ndarray, np.ndarray]], org: Org) -> tuple[int, int]:
    """(extra cycles, cycles with a conflict) of the window's accesses on ``org`` (the freeze
    replay of the module doc)."""
    keys = []
    # resources: per copy and bank, its read side and write side (1R1W) or both (2RW); then
    # one per shared group
    per_copy = 2 * org.banks
    n_bank_res = org.copies * per_copy
    group_of = {p: g for g, grp in enumerate(org.shared) for p in grp}
    for p in PORTS:
        t, a = acc[p]
        if org.mpu_reuse and p == "r.mpu":
            t, a = reuse_mpu(t, a)
        if not len(t):
            continue
        write = p.startswith("w.")
        side = 0 if org.mode == "2rw" else (1 if write else 0)
        copies = range(org.copies) if write else (org.copy_of(p),)
        for c in copies:
            keys.append(t * (n_bank_res + len(org.shared)) + c * per_copy + 2 * org.bank(a)
                        + side)
        if p in group_of:
            keys.append(t * (n_bank_res + len(org.shared)) + n_bank_res + group_of[p])
    if not keys:
        return 0, 0
    nres = n_bank_res + len(org.shared)
    cap = np.ones(nres, dtype=np.int64)
    if org.mode == "2rw":
        cap[:n_bank_res] = 2
    k = np.concatenate(keys)
    uniq, cnt = np.unique(k, return_counts=True)
    need = -(-cnt // cap[uniq % nres])
    t = uniq // nres
    starts = np.flatnonzero(np.r_[True, t[1:] != t[:-1]])
    worst = np.maximum.reduceat(need, starts)
    extra = worst - 1
    return int(extra.sum()), int(np.count_nonzero(extra))


def mux_luts(n: int) -> int:
    """LUT6 per bit of an n:1 multiplexer (a LUT6 is a 4:1 multiplexer)."""
    return math.ceil((n - 1) / 3) if n > 1 else 0


def resources(org: Org, vectors: int, d: int) -> dict[str, int]:
    """URAM and BRAM36 (either) and the crossbar LUT estimate of ``org`` (module doc)."""
    width = 16 * d
    depth = -(-vectors // org.banks)
    addr_bits = max(1, math.ceil(math.log2(depth)))
    uram = org.copies * org.banks * uram_count(depth, width)
    bram = org.copies * org.banks * bram36_count(depth, width, simple_dual=org.mode == "1r1w")
    shared = {p for grp in org.shared for p in grp}
    reads = [p for p in PORTS if p.startswith("r.")]
    writes = [p for p in PORTS if p.startswith("w.")]
    phys_w = len([p for p in writes if p not in shared]) + sum(
        1 for grp in org.shared if grp[0].startswith("w."))
    lut = 0
    bank_ports = 2 if org.mode == "2rw" else 1
    for c in range(org.copies):
        rc = [p for p in reads if org.copy_of(p) == c]
        phys_r = len([p for p in rc if p not in shared]) + sum(
            1 for grp in org.shared if grp[0].startswith("r.") and org.copy_of(grp[0]) == c)
        # read data: each physical read port selects one of the copy's bank ports
        lut += phys_r * mux_luts(org.banks * bank_ports) * width
        if org.mode == "2rw":  # each bank port: address from any client, data from writers
            lut += org.banks * bank_ports * (mux_luts(phys_r + phys_w) * addr_bits
                                             + mux_luts(phys_w) * width)
        else:
            lut += org.banks * (mux_luts(phys_r) * addr_bits
                                + mux_luts(phys_w) * (width + addr_bits))
    for grp in org.shared:
        if grp[0].startswith("w."):
            lut += mux_luts(len(grp)) * (width + addr_bits)
        else:
            lut += mux_luts(len(grp)) * addr_bits
    return {"uram": uram, "bram36": bram, "lut": lut}


# --------------------------------------------------------------------------- report


def report_card(rec: Recording, k: int, banks: tuple[int, ...], vectors: int, d: int,
                board: Any, prompt: bool) -> str:
    card = rec.cards[k]
    out = [f"### {rec.label}, card {card}",
           f"Run end {rec.end[k]:,} cycles; MPU rows whose recorded last x read differs from "
           f"the model's: {rec.mpu_checks[k]}."]
    for w in windows(rec, k):
        if w.name == "prompt" and not prompt:
            continue
        n = w.hi - w.lo
        acc = accesses(rec, k, w)
        act = activity(acc, n)
        out.append(f"\n#### {w.name}: cycles {w.lo:,}..{w.hi:,} ({n:,} cycles, {w.passes} "
                   f"passes, {n / w.passes:,.0f} cycles per pass)")
        out.append("\nPer port:\n\n" + port_table(acc, w))
        out.append("\nActive ports per cycle (share of cycles):\n\n" + histogram_table(act, n))
        out.append("\nPorts active in the same cycle (% of cycles; diagonal: busy):\n\n"
                   + pairs_table(act, n))
        out.append("\n" + congruent(rec.vpu_pairs[k], w, banks))
        rows = []
        for org in orgs(banks):
            extra, conf = stalls(acc, org)
            res = resources(org, vectors, d)
            rows.append([org.name, f"{extra / w.passes:,.0f}", pct(extra, n), pct(conf, n),
                         f"{res['uram']} ({pct(res['uram'], board.uram)})",
                         f"{res['bram36']} ({pct(res['bram36'], board.bram36)})",
                         f"{res['lut']:,} ({pct(res['lut'], board.lut)})"])
        out.append("\nReplay (freeze model) and resources (either URAM or BRAM36):\n\n" + table(
            ["organisation", "extra cycles / pass", "extra %", "conflict cycles",
             "URAM", "or BRAM36", "crossbar LUT"], rows))
    return "\n".join(out)


def parse_run(s: str) -> tuple[str, int, int, int]:
    try:
        model, cards, p, g = s.split(":")
        return model, int(cards), int(p), int(g)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--run wants MODEL:CARDS:PROMPT:GEN, not {s!r}"
                                         ) from None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--run", action="append", type=parse_run, metavar="MODEL:CARDS:P:G",
                    help=f"a request to record (repeatable; default {', '.join(DEFAULT_RUNS)})")
    ap.add_argument("--quick", action="store_true", help=f"only {QUICK_RUNS[0]}")
    ap.add_argument("--all-cards", action="store_true", help="report every card, not card 0")
    ap.add_argument("--banks", default="1,2,4,8,16",
                    help="bank counts to replay (powers of two; default 1,2,4,8,16)")
    ap.add_argument("--with-prompt", action="store_true",
                    help="also report the prompt passes (one token each, like decode passes)")
    ap.add_argument("--check", action="store_true",
                    help="also run the stock model and assert the same cycles")
    args = ap.parse_args(argv)
    runs = args.run or [parse_run(s) for s in (QUICK_RUNS if args.quick else DEFAULT_RUNS)]
    banks = tuple(int(x) for x in args.banks.split(","))
    if any(b < 1 or b & (b - 1) for b in banks):
        ap.error(f"--banks must be powers of two, not {args.banks}")
    print("# VRF port use (bench/vrf_ports.py)\n")
    with tempfile.TemporaryDirectory() as tmp:
        for model, cards, p, g in runs:
            from dfx.isa.container import read_binary

            path = compile_binary(model, cards, Path(tmp))
            core = read_binary(path, lazy=True).core
            rec = record(path, f"{model} x{cards} {p}:{g}", p, g,
                         None if args.all_cards else [0], args.check)
            print(f"[{rec.label}: simulated with recording in {rec.sim_s:.1f} s]",
                  file=sys.stderr)
            for k in range(len(rec.cards)):
                print(report_card(rec, k, banks, core.buffers.vrf_vectors, core.d,
                                  core.b.resources, args.with_prompt))
                print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
