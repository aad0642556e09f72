"""In-order issue and the scoreboard of one card (docs/timing.md, "Issue and scoreboard").

Mirrors ``rtl/issue`` (and the controller's firing rule, ``rtl/controller``): one instruction
fires per ``issue_cycles`` in program order; a non-control instruction fires in the cycle issue
accepts it, the first cycle at which

* its integer registers are not pending (the controller) and its scalar sources and
  destinations are not pending (RAW, WAW: a scalar written in cycle w is available in w + 1;
  scalars are read at issue and travel with the command, so there is no WAR on them);
* its VRF destination overlaps no in-flight writer (until the writer's *last* vector is
  written) and no in-flight reader (until it has read its last vector), and the scoreboard
  has a writer entry (and two reader entries for an instruction with sources);
* its unit's command queue (``timing.unit_queue`` deep; a push in cycle t is visible to the
  unit port in t + 1, which pops it when it takes the command) has room, and the memory system
  takes its memory command.

VRF *sources* are not checked at issue: the unit ports read each source vector no earlier than
it is available (chaining), so the scoreboard keeps, per in-flight writer, the availability of
every vector it writes. "Available at ``t``" means a reader may use it in cycle ``t``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from itertools import accumulate
from operator import add, sub
from typing import TYPE_CHECKING, Any

from .stats import CONTROL, NEG, S_CRIT, UNITS, VECTOR

if TYPE_CHECKING:
    from .controller import Meta
    from .params import Params


class Issue:
    """Mixin of :class:`~.card.CardSim`: the firing slot, the unit queues and the scoreboard."""

    p: Params
    stats: list[int]
    occ: list[tuple[int, int, int]]
    finalize: Callable[[int], None]
    error: Callable[[str], Exception]

    def _reset_issue(self) -> None:
        p = self.p
        self.now = p.first_fire  # earliest cycle the next instruction can fire
        # per unit: the cycles the port took its last `queue` commands
        self.takes: list[deque[int]] = [deque([NEG] * p.queue, maxlen=p.queue) for _ in UNITS]
        self.vw: list[list[Any]] = []  # VRF writers [lo, hi, avail list, category, retire]
        self.vr: list[list[int]] = []  # VRF readers [lo, hi, retire (last read), category]
        self.sbw: list[int] = []  # scoreboard writer entries: retire cycles
        self.sbr: list[int] = []  # scoreboard reader entries: retire cycles
        self.int_av = [NEG] * 32
        self.int_cat = [CONTROL] * 32
        self.s_av = [NEG] * p.srf
        self.s_cat = [VECTOR] * p.srf
        self.horizon = [0, CONTROL]  # latest completion so far (+1) and its category
        self.fire_log: list[tuple[int, int]] | None = None  # (cycle, pc) of every firing

    def _start_issue(self) -> None:
        """The cycles before instruction 0 can fire count as control."""
        self.stats[S_CRIT + CONTROL] += self.p.first_fire

    def _key_issue(self, f: Callable[..., int], ref: int) -> tuple:
        now = self.now
        takes = tuple(tuple(f(x, now - 1) for x in q) for q in self.takes)
        vw = tuple((w[0], w[1], tuple(f(x) for x in w[2]), w[3])
                   for w in self.vw if w[4] >= now)
        vr = tuple((r[0], r[1], f(r[2], now - 1), r[3]) for r in self.vr if r[2] >= now)
        sbw = tuple(sorted(f(x, now - 1) for x in self.sbw if x >= now))
        sbr = tuple(sorted(f(x, now - 1) for x in self.sbr if x >= now))
        ints = tuple((i, f(x), self.int_cat[i]) for i, x in enumerate(self.int_av) if x > now)
        sav = tuple((i, f(x), self.s_cat[i]) for i, x in enumerate(self.s_av) if x > now)
        h = self.horizon
        return (now - ref, takes, vw, vr, sbw, sbr, ints, sav,
                (f(h[0]), h[1] if h[0] > now else -1))

    def _shift_issue(self, dt: int, sh: Callable[[int], int]) -> None:
        self.now += dt
        self.takes = [deque((sh(x) for x in q), maxlen=q.maxlen) for q in self.takes]
        for w in self.vw:
            w[2] = [sh(x) for x in w[2]]
            w[4] = sh(w[4])
        for r in self.vr:
            r[2] = sh(r[2])
        self.sbw = [sh(x) for x in self.sbw]
        self.sbr = [sh(x) for x in self.sbr]
        self.int_av = [sh(x) for x in self.int_av]
        self.s_av = [sh(x) for x in self.s_av]
        self.horizon[0] = sh(self.horizon[0])

    # -- registers and units --------------------------------------------------------------------
    def _pre(self, m: Meta) -> tuple[int, int]:
        """Earliest firing allowed by the pending bits (integer and scalar registers)."""
        t, c = self.now, CONTROL
        av = self.int_av
        for r in m.rregs:
            if av[r] > t:
                t, c = av[r], self.int_cat[r]
        if m.wreg and av[m.wreg] > t:
            t, c = av[m.wreg], self.int_cat[m.wreg]
        if m.sall:
            sav, n = self.s_av, self.p.srf
            if max(m.sall) >= n:
                raise self.error(f"s{max(m.sall)} is beyond the {n} scalar registers")
            for s in m.sall:
                if sav[s] > t:
                    t, c = sav[s], self.s_cat[s]
        return t, c

    def _unit(self, u: int, cat: int) -> tuple[int, int]:
        """Issue constraint of unit ``u``'s command queue: the command ``queue`` places back
        has been taken by the port (the cycle before); blamed on ``cat``."""
        return self.takes[u][0] + 1, cat

    def _took(self, u: int, take: int) -> None:
        """Unit ``u``'s port took its next command in cycle ``take``."""
        self.takes[u].append(take)

    def _issue(self, t: int, c: int) -> int:
        """Fire at ``t`` (>= now): blame the stall on ``c``, advance the firing slot."""
        if len(self.occ) > 32:
            self.finalize(t)
        st = self.stats
        st[S_CRIT + c] += t - self.now
        st[S_CRIT + CONTROL] += self.p.issue
        self.now = t + self.p.issue
        if self.fire_log is not None:
            self.fire_log.append((t, self.pc))
        return t

    def _taken(self) -> None:
        self.now += self.p.branch_penalty
        self.stats[S_CRIT + CONTROL] += self.p.branch_penalty

    def _done(self, t: int, c: int) -> None:
        """Something of the card is busy until cycle ``t`` - 1 (done can be signalled in t)."""
        h = self.horizon
        if t > h[0]:
            h[0], h[1] = t, c

    # -- the VRF scoreboard ---------------------------------------------------------------------
    def _vcheck(self, lo: int, n: int, what: str) -> None:
        if lo < 0 or lo + n > self.p.vrf:
            raise self.error(f"VRF {what} of v[{lo}..{lo + n}) is outside the {self.p.vrf} "
                             "vectors of the VRF")

    def _src(self, lo: int, n: int) -> list[int] | None:
        """Per-vector availability of VRF source [lo, lo+n) (None if no in-flight writer
        overlaps it)."""
        self._vcheck(lo, n, "read")
        hi = lo + n
        av = None
        now = self.now
        for w in self.vw:
            if w[4] < now or w[1] <= lo or w[0] >= hi:
                continue
            a, b = max(lo, w[0]), min(hi, w[1])
            wav = w[2]
            if av is None:
                av = [NEG] * n
            off = lo - w[0]
            for i in range(a - lo, b - lo):
                x = wav[i + off]
                if x > av[i]:
                    av[i] = x
        return av

    def _dst(self, lo: int, n: int) -> tuple[int, int]:
        """WAW/WAR constraint of writing VRF [lo, lo+n): (time, category)."""
        self._vcheck(lo, n, "write")
        hi = lo + n
        t, c = NEG, CONTROL
        now = self.now
        for w in self.vw:
            if w[4] + 1 > t and w[4] >= now and w[1] > lo and w[0] < hi:
                t, c = w[4] + 1, w[3]
        for r in self.vr:
            if r[2] + 1 > t and r[2] >= now and r[1] > lo and r[0] < hi:
                t, c = r[2] + 1, r[3]
        return t, c

    def _sb(self, t: int, dst: bool, src: bool) -> int:
        """The earliest cycle >= t at which the scoreboard has the entries an instruction
        needs (a writer entry, two reader entries)."""
        p = self.p
        if dst:
            self.sbw = [x for x in self.sbw if x >= t]
            if len(self.sbw) >= p.sb_writers:
                r = sorted(self.sbw, reverse=True)
                t = max(t, r[p.sb_writers - 1] + 1)
        if src:
            self.sbr = [x for x in self.sbr if x >= t]
            k = p.sb_readers - 2
            if len(self.sbr) > k:
                r = sorted(self.sbr, reverse=True)
                t = max(t, r[k] + 1)
        return t

    def _write(self, lo: int, av: list[int], cat: int) -> None:
        """An in-flight writer of VRF [lo, lo + len(av)): vector i available at av[i] (its
        write cycle + 1)."""
        if not av:
            return
        last = av[-1] - 1
        for x in av:
            if x - 1 > last:
                last = x - 1
        now = self.now
        if len(self.vw) > 8:
            self.vw = [w for w in self.vw if w[4] >= now]
        self.vw.append([lo, lo + len(av), av, cat, last])
        self.sbw.append(last)
        self._done(last + 1, cat)

    def _read(self, lo: int, n: int, last: int, cat: int, entries: int = 1) -> None:
        """An in-flight reader of VRF [lo, lo+n), retired after cycle ``last``."""
        if n <= 0:
            return
        now = self.now
        if len(self.vr) > 8:
            self.vr = [r for r in self.vr if r[2] >= now]
        self.vr.append([lo, lo + n, last, cat])
        self.sbr.extend([last] * entries)
        self._done(last + 1, cat)

    @staticmethod
    def _chain(start: int, n: int, *avs: list[int] | None) -> list[int]:
        """Read times of a stream of ``n`` vectors at one per cycle from ``start`` that pauses
        while its next source vector is not yet available (per-vector chaining):
        ``r[i] = max(r[i-1] + 1, avail[i])``."""
        live = [a for a in avs if a is not None]
        if not live:
            return list(range(start, start + n))
        a = live[0] if len(live) == 1 else list(map(max, *live))
        acc = accumulate(map(sub, a, range(n)), max, initial=start)
        next(acc)
        return list(map(add, acc, range(n)))
