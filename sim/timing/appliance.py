"""The timing model of the whole appliance: N cards on a ring, simulated together.

Cards are handled one instruction at a time in any interleaving: an instruction's timing
depends only on the state its card's earlier instructions left and on ring traffic, which is
exchanged through the links with explicit times. A card that needs a time another card has
not produced yet (a ``recv`` whose vector was not sent, a ``send`` waiting for a FIFO slot
whose pop is not known) blocks, and the scheduler runs the others; the result does not depend
on the order (like a Kahn process network). If no card can move, the program deadlocks on the
hardware too and :class:`TimingError` says where each card waits.

Loop iterations are memoised exactly (:mod:`.memo`): every card stops at the head of each
iteration of an eligible loop; when all have arrived, the joint state is compared with earlier
heads and, on a repeat, the remaining iterations are replayed as a time shift.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from dfx.isa.container import Binary
from dfx.isa.encoding import decode_program
from dfx.isa.errors import IsaError
from dfx.sim.limits import default_instruction_budget

from . import memo
from .card import CLASSES, HALTED, HEAD, RUN, S_INSTR, CardSim
from .errors import TimingError
from .params import Params, derive
from .ring import Link

CFG_FIELDS = ("prompt_len", "gen_len", "write_logits", "card_id", "n_cards")
_MASK64 = (1 << 64) - 1


def _wrap(v: int) -> int:
    v &= _MASK64
    return v - (1 << 64) if v >> 63 else v


@dataclass
class SimResult:
    """Raw results of one timed run (cycles); :mod:`.report` turns them into a report."""

    params: Params
    end: list[int]  # per card: cycle its last work completed
    stats: list[list[int]]  # per card: the statistics vector (stats.py S_* layout)
    channels: list[dict[str, list[list[int]]]]  # per card and memory: [read, written] bytes
    snap: list[list[int] | None]  # per card: statistics when the prompt's last token finished
    token_times: list[list[int]]  # per card: completion cycle of each token's arg-max
    trace: list[list[tuple]] | None
    steps: int  # instructions handled one by one
    memo_jumps: int
    memo_iterations: int  # loop iterations replayed by memoisation
    wall_s: float
    annotations: list[Any] = field(default_factory=list)
    trace_truncated: bool = False  # the trace reached MAX_TRACE_EVENTS and stopped there

    @property
    def cycles(self) -> int:
        return max(self.end)


class _History:
    """States seen at the heads of one instance of a loop."""

    def __init__(self, loop_pc: int) -> None:
        self.loop_pc = loop_pc
        self.keys: dict[tuple, int] = {}
        self.records: dict[int, tuple] = {}
        self.last = 0


#: Trace events kept (all cards); a longer trace stops there (docs/limits.md).
MAX_TRACE_EVENTS = 4_000_000
_CHECK_EVERY = 4096  # steps between budget checks


class Words(dict):
    """A card's 32-bit words as ``lw`` sees them: what the host and ``sw`` wrote, else the
    card image's initial memory (its segments), else 0."""

    def __init__(self, image: Any) -> None:
        super().__init__()
        self._segments = [s for s in image.segments if s.space in ("hbm", "ddr")]

    def __missing__(self, key: tuple[str, int]) -> int:
        space, addr = key
        for s in self._segments:
            if s.space == space and s.addr <= addr and addr + 4 <= s.end:
                if s.fill is not None:
                    return int.from_bytes(bytes([s.fill]) * 4, "little")
                data = s.data
                if data is None:
                    return 0
                raw = np.asarray(data).view(np.uint8)
                o = addr - s.addr
                return int.from_bytes(raw[o:o + 4].tobytes(), "little")
        return 0

    def get(self, key: tuple[str, int], default: int = 0) -> int:  # type: ignore[override]
        return self[key]


class Appliance:
    """The timing model of ``binary``'s cards (a :class:`~dfx.isa.container.Binary`).

    ``max_instructions``: the run's instruction budget (all cards, memoised loop iterations
    included; None: :func:`dfx.sim.limits.default_instruction_budget` of the request set by
    :meth:`configure`, or of a program run), as in the functional simulator.
    ``stream_fifos``: the depths of the register FIFOs between each core's ring streams and
    its router (``Params.stream_fifos``; the board has none). The memo is off with any: its
    state key clamps arrivals to the receiver's issue cycle, which a FIFO the router fills
    before the ``recv`` issues would break.
    """

    def __init__(self, binary: Binary, *, memo_loops: bool = True,
                 max_instructions: int | None = None,
                 stream_fifos: tuple[int, ...] = ()) -> None:
        self.binary = binary
        self.p = derive(binary.core)
        if stream_fifos:
            self.p = replace(self.p, stream_fifos=tuple(stream_fifos))
            memo_loops = False
        n = binary.n_cards
        self.links: list[Link] = []
        if n > 1:
            self.links = [Link(binary.core, c, (c + 1) % n) for c in range(n)]
        self.words: list[dict[tuple[str, int], int]] = [Words(img) for img in binary.cards]
        self.cards = []
        for i, img in enumerate(binary.cards):
            try:
                prog = decode_program(bytes(img.program))
            except IsaError as e:
                raise TimingError(f"card {i}: {e}") from None
            self.cards.append(CardSim(
                i, self.p, prog, annotation=img.annotation,
                tx=self.links[i] if n > 1 else None,
                rx=self.links[i - 1] if n > 1 else None,
                words=self.words[i], n_cards=n))
        self.memo_loops = memo_loops
        self.max_instructions = max_instructions
        self._tokens: int | None = None
        self._eligible: dict[int, bool] = {}
        self._history: _History | None = None
        self.memo_jumps = 0
        self.memo_iterations = 0

    # -- host interface -----------------------------------------------------------------------
    def configure(self, prompt_len: int, gen_len: int, tokens: list[int] | None = None, *,
                  write_logits: bool = False) -> None:
        """Write the host configuration block and the prompt tokens (all 0 unless given) into
        every card's word store, as the host runtime does (symbols ``cfg`` and ``tokens``);
        ``write_logits``: the request also has the cards store every step's logits."""
        b = self.binary
        for c, img in enumerate(b.cards):
            cfg, tok = img.symbols.get("cfg"), img.symbols.get("tokens")
            if cfg is None or tok is None:
                raise TimingError("the binary has no 'cfg'/'tokens' symbols: it was not "
                                  "compiled for token generation")
            values = {"prompt_len": prompt_len, "gen_len": gen_len,
                      "write_logits": int(bool(write_logits)),
                      "card_id": c, "n_cards": b.n_cards}
            fields = list(cfg.get("fields", CFG_FIELDS))
            for k, f in enumerate(fields):
                if f not in values:
                    raise TimingError(f"the binary's cfg block has unknown field {f!r}")
                self.words[c][(cfg["space"], cfg["addr"] + 4 * k)] = values[f]
            for k, t in enumerate(tokens or [0] * prompt_len):
                self.words[c][(tok["space"], tok["addr"] + 4 * k)] = int(t)
            self.cards[c].snap_at = prompt_len
        self._tokens = prompt_len + gen_len

    def _instructions(self) -> int:
        """Instructions modelled so far, all cards (memoised iterations included)."""
        return sum(sum(cd.stats[S_INSTR:S_INSTR + len(CLASSES)]) for cd in self.cards)

    def _check_budget(self, budget: int, traces: list[list[tuple]]) -> bool:
        """Raise when the budget is used up; returns True once the trace is full."""
        if self._instructions() > budget:
            states = "; ".join(
                f"card {cd.index} has halted" if cd.halted
                else f"{cd.where()}: {cd.blocked or 'running'}" for cd in self.cards)
            raise TimingError(
                f"instruction budget of {budget:,} instructions used up before all cards "
                f"halted (a program that never halts? raise it with --max-instructions): "
                f"{states}")
        return sum(len(t) for t in traces) >= MAX_TRACE_EVENTS

    # -- running ------------------------------------------------------------------------------
    def run(self, trace_tokens: int = 0) -> SimResult:
        """Run every card to ``halt``. ``trace_tokens``: record unit events until each card has
        finished that many tokens (0: no trace)."""
        t0 = time.perf_counter()
        cards = self.cards
        tracing = trace_tokens > 0
        traces: list[list[tuple]] = [[] for _ in cards]
        if tracing:
            for c, cd in enumerate(cards):
                cd.trace = traces[c]
        steps = 0
        budget = self.max_instructions
        if budget is None:
            budget = default_instruction_budget(self.binary, self._tokens)
        check = _CHECK_EVERY
        truncated = False
        while True:
            moved = False
            for cd in cards:
                if cd.halted or cd.head_wait:
                    continue
                mark = self._progress(cd)
                while True:
                    st = cd.step()
                    steps += 1
                    if tracing and cd.trace is not None and len(cd.token_times) >= trace_tokens:
                        cd.trace = None
                    if st == RUN:
                        if steps >= check:
                            check = steps + _CHECK_EVERY
                            if self._check_budget(budget, traces) and tracing:
                                for c in cards:
                                    c.trace = None
                                truncated = True
                        continue
                    if st == HEAD:
                        if self._stop_at_head(cd):
                            # snapshot after the body's first instruction has issued: its
                            # issue cycle, not the loop's back-edge, anchors the state
                            st = cd.step()
                            steps += 1
                            if st == RUN:
                                cd.head_wait = True
                                break
                            self._eligible[cd.head[0]] = False
                            if st != HEAD:
                                break
                        continue
                    break  # BLOCKED or HALTED
                if self._progress(cd) != mark or st in (HALTED, HEAD):
                    moved = True
            active = [cd for cd in cards if not cd.halted]
            if not active:
                break
            waiting = [cd for cd in active if cd.head_wait]
            if waiting and len(waiting) == len(active):
                self._at_heads(active)
                self._check_budget(budget, traces)  # a memoised jump may use it up at once
                continue
            if not moved:
                if waiting:  # a card needs traffic from one stopped at a head: stop stopping
                    for cd in waiting:
                        self._eligible[cd.head[0]] = False
                        cd.head_wait = False
                    continue
                states = "; ".join(
                    f"card {cd.index} has halted" if cd.halted
                    else f"{cd.where()}: {cd.blocked or 'running'}" for cd in cards)
                raise TimingError(f"deadlock: no card can make progress: {states}")
        return SimResult(
            params=self.p,
            end=[cd.end for cd in cards],
            stats=[list(cd.stats) for cd in cards],
            channels=[{k: port.channel_bytes() for k, port in cd.ports.items()} for cd in cards],
            snap=[cd.snap for cd in cards],
            token_times=[list(cd.token_times) for cd in cards],
            trace=traces if tracing else None,
            steps=steps,
            memo_jumps=self.memo_jumps,
            memo_iterations=self.memo_iterations,
            wall_s=time.perf_counter() - t0,
            annotations=[img.annotation for img in self.binary.cards],
            trace_truncated=truncated,
        )

    def _progress(self, cd: CardSim) -> tuple[int, int, int, int]:
        tx, rx = cd.tx, cd.rx
        return (cd.pc, sum(cd.stats[S_INSTR:S_INSTR + len(CLASSES)]), tx.sent if tx else 0,
                rx.popped if rx else 0)

    # -- memoisation --------------------------------------------------------------------------
    def _stop_at_head(self, cd: CardSim) -> bool:
        if not self.memo_loops or any(c.trace is not None for c in self.cards):
            return False
        loop_pc = cd.head[0]
        ok = self._eligible.get(loop_pc)
        if ok is None:
            ok = all(loop_pc < c.n_prog and c.meta[loop_pc].op == "loop"
                     and c.meta[loop_pc].ins.body == cd.meta[loop_pc].ins.body
                     and memo.eligible(c, loop_pc) for c in self.cards)
            self._eligible[loop_pc] = ok
        return ok

    def _key(self, active: list[CardSim], ref: int) -> tuple:
        cards = tuple(cd.key(ref) for cd in active)
        links = tuple(lk.key(self.cards[lk.src].now, self.cards[lk.dst].now, ref)
                      for lk in self.links)
        return cards, links

    def _at_heads(self, active: list[CardSim]) -> None:
        heads = {cd.head for cd in active}
        for cd in active:
            cd.head_wait = False
        if len(heads) != 1 or len(active) != len(self.cards):
            for h in heads:
                self._eligible[h[0]] = False
            return
        ((loop_pc, it),) = heads
        h = self._history
        if h is None or h.loop_pc != loop_pc or it <= h.last:
            h = self._history = _History(loop_pc)
        h.last = it
        for cd in self.cards:
            cd.finalize(cd.now)
        ref = self.cards[0].now
        key = self._key(active, ref)
        record = (ref, [list(cd.r) for cd in self.cards], [cd.counters() for cd in self.cards],
                  [lk.sent for lk in self.links])
        h.records[it] = record
        j0 = h.keys.get(key)
        h.keys[key] = it
        if j0 is None:
            return
        self._jump(h, loop_pc, j0, it)

    def _jump(self, h: _History, loop_pc: int, j0: int, it: int) -> None:
        period = it - j0
        rem = {cd.loops[-1][2] for cd in self.cards}
        if len(rem) != 1:
            return
        m = (rem.pop() - 1) // period
        if m <= 0:
            return
        recs = [h.records.get(j) for j in range(j0, it + 1)]
        if any(r is None for r in recs):
            return
        deltas = []
        for c, cd in enumerate(self.cards):
            d1 = [_wrap(a - b) for a, b in zip(recs[1][1][c], recs[0][1][c], strict=True)]
            for k in range(1, len(recs)):
                dk = [_wrap(a - b) for a, b in zip(recs[k][1][c], recs[k - 1][1][c], strict=True)]
                if dk != d1:
                    return
            try:
                ok = memo.invariant(cd, loop_pc, cd.r, d1, m * period, period=period)
            except memo.PhaseError:
                return
            if not ok:
                self._eligible[loop_pc] = False
                return
            deltas.append(d1)
        ref0, _, stats0, sent0 = recs[0]
        ref1, _, stats1, sent1 = recs[-1]
        dt = m * (ref1 - ref0)
        iters = m * period
        for c, cd in enumerate(self.cards):
            cd.shift(dt)
            cd.r = [_wrap(v + iters * dv) for v, dv in zip(cd.r, deltas[c], strict=True)]
            cd.r[0] = 0
            top = cd.loops[-1]
            top[2] -= iters
            top[4] += iters
            cd.add_counters(m, stats0[c], stats1[c])
        for k, lk in enumerate(self.links):
            lk.shift(dt, m * (sent1[k] - sent0[k]))
        self.memo_jumps += 1
        self.memo_iterations += iters
        self._history = None
