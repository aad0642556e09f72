"""In-order issue and the scoreboard of one card (docs/timing.md, "Issue and scoreboard").

Mirrors ``rtl/issue``: one instruction issues per ``timing.issue_cycles`` in program order, at
the first cycle at which every hazard allows it — integer and scalar registers (RAW, WAW, WAR),
VRF ranges (chaining on in-flight writers, WAW, WAR against in-flight readers) and the
target unit's queue. The scoreboard keeps, per in-flight VRF writer, the availability of every
vector it writes, and per scalar/integer register the availability of its last write; readers
record the last cycle they read (write-after-read).

Every method returns or records times in core cycles; "available at ``t``" means a reader may
use the value in cycle ``t`` or later.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import accumulate
from operator import add, sub
from typing import TYPE_CHECKING, Any

from .stats import CONTROL, NEG, S_CRIT, UNITS, VECTOR

if TYPE_CHECKING:
    from .controller import Meta
    from .params import Params


class Issue:
    """Mixin of :class:`~.card.CardSim`: the issue slot, the unit queues and the scoreboard."""

    p: Params
    stats: list[int]
    occ: list[tuple[int, int, int]]
    finalize: Callable[[int], None]
    error: Callable[[str], Exception]

    def _reset_issue(self) -> None:
        p = self.p
        self.now = 0  # earliest cycle the next instruction can issue
        self.ends: list[list[list[int]]] = [[] for _ in UNITS]  # [stream end, category]
        self.vw: list[list[Any]] = []  # VRF writers [lo, hi, avail list, category, last]
        self.vr: list[list[int]] = []  # VRF readers [lo, hi, last read, category]
        self.int_av = [NEG] * 32
        self.int_cat = [CONTROL] * 32
        self.s_av = [NEG] * p.srf
        self.s_cat = [VECTOR] * p.srf
        self.s_lr = [NEG] * p.srf
        self.horizon = [0, CONTROL]  # latest completion so far and its category

    def _key_issue(self, f: Callable[..., int], ref: int) -> tuple:
        now = self.now
        ends = tuple(tuple((f(e), c if e > now else -1) for e, c in u) for u in self.ends)
        vw = tuple((w[0], w[1], tuple(f(x) for x in w[2]), w[3])
                   for w in self.vw if w[4] > now)
        vr = tuple((r[0], r[1], f(r[2], now - 1), r[3]) for r in self.vr if r[2] >= now)
        ints = tuple((i, f(x), self.int_cat[i]) for i, x in enumerate(self.int_av) if x > now)
        sav = tuple((i, f(x), self.s_cat[i]) for i, x in enumerate(self.s_av) if x > now)
        slr = tuple((i, f(x, now - 1)) for i, x in enumerate(self.s_lr) if x >= now)
        h = self.horizon
        return (now - ref, ends, vw, vr, ints, sav, slr, (f(h[0]), h[1] if h[0] > now else -1))

    def _shift_issue(self, dt: int, sh: Callable[[int], int]) -> None:
        self.now += dt
        for u in self.ends:
            for e in u:
                e[0] = sh(e[0])
        for w in self.vw:
            w[2] = [sh(x) for x in w[2]]
            w[4] = sh(w[4])
        for r in self.vr:
            r[2] = sh(r[2])
        self.int_av = [sh(x) for x in self.int_av]
        self.s_av = [sh(x) for x in self.s_av]
        self.s_lr = [sh(x) for x in self.s_lr]
        self.horizon[0] = sh(self.horizon[0])

    # -- registers and units --------------------------------------------------------------------
    def _pre(self, m: Meta) -> tuple[int, int]:
        """Earliest issue allowed by the register scoreboard (integer and scalar registers)."""
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
            for s in m.sreads:
                if sav[s] > t:
                    t, c = sav[s], self.s_cat[s]
            for s in m.swrites:
                if sav[s] > t:
                    t, c = sav[s], self.s_cat[s]
                if self.s_lr[s] + 1 > t:
                    t, c = self.s_lr[s] + 1, self.s_cat[s]
        return t, c

    def _unit(self, u: int) -> tuple[int, int]:
        """Issue constraint of unit ``u``'s queue: (time, category)."""
        e = self.ends[u]
        if len(e) > self.p.queue:
            return e[0][0], e[0][1]
        return NEG, CONTROL

    def _ready(self, u: int) -> int:
        """When unit ``u`` can take the next instruction's first input."""
        e = self.ends[u]
        return e[-1][0] if e else NEG

    def _unit_done(self, u: int, end: int, cat: int) -> None:
        e = self.ends[u]
        e.append([end, cat])
        if len(e) > self.p.queue + 1:
            del e[0]

    def _issue(self, t: int, c: int) -> int:
        """Issue at ``t`` (>= now): blame the stall on ``c``, advance the issue slot."""
        if len(self.occ) > 32:
            self.finalize(t)
        st = self.stats
        st[S_CRIT + c] += t - self.now
        st[S_CRIT + CONTROL] += self.p.issue
        self.now = t + self.p.issue
        return t

    def _taken(self) -> None:
        self.now += self.p.branch_penalty
        self.stats[S_CRIT + CONTROL] += self.p.branch_penalty

    def _done(self, t: int, c: int) -> None:
        h = self.horizon
        if t > h[0]:
            h[0], h[1] = t, c

    # -- the VRF scoreboard ---------------------------------------------------------------------
    def _vcheck(self, lo: int, n: int, what: str) -> None:
        if lo < 0 or lo + n > self.p.vrf:
            raise self.error(f"VRF {what} of v[{lo}..{lo + n}) is outside the {self.p.vrf} "
                             "vectors of the VRF")

    def _src(self, lo: int, n: int) -> tuple[list[int] | None, int, int]:
        """Chaining view of VRF source [lo, lo+n): per-vector availability (None if nothing in
        flight overlaps), the earliest issue (the first source vector an in-flight instruction
        writes is available) and that writer's category."""
        self._vcheck(lo, n, "read")
        hi = lo + n
        av = None
        t, c, pos = NEG, CONTROL, hi
        now = self.now
        for w in self.vw:
            if w[4] <= now or w[1] <= lo or w[0] >= hi:
                continue
            a, b = max(lo, w[0]), min(hi, w[1])
            wav = w[2]
            off = lo - w[0]
            if av is None:
                if a == lo and b == hi:
                    av = wav[a - w[0]:b - w[0]]
                else:
                    av = [NEG] * n
                    av[a - lo:b - lo] = wav[a - w[0]:b - w[0]]
            else:
                for i in range(a - lo, b - lo):
                    x = wav[i + off]
                    if x > av[i]:
                        av[i] = x
            x = wav[a - w[0]]
            if a < pos or (a == pos and x > t):
                t, c, pos = x, w[3], a
        return av, t, c

    def _dst(self, lo: int, n: int) -> tuple[int, int]:
        """WAW/WAR constraint of writing VRF [lo, lo+n): (time, category)."""
        self._vcheck(lo, n, "write")
        hi = lo + n
        t, c = NEG, CONTROL
        now = self.now
        for w in self.vw:
            if w[4] <= now or w[1] <= lo or w[0] >= hi:
                continue
            a, b = max(lo, w[0]), min(hi, w[1])
            x = max(w[2][a - w[0]: b - w[0]])
            if x > t:
                t, c = x, w[3]
        for r in self.vr:
            if r[2] + 1 > t and r[1] > lo and r[0] < hi and r[2] >= now:
                t, c = r[2] + 1, r[3]
        return t, c

    def _write(self, lo: int, av: list[int], cat: int) -> None:
        if not av:
            return
        last = max(av)
        now = self.now
        if len(self.vw) > 8:
            self.vw = [w for w in self.vw if w[4] > now]
        self.vw.append([lo, lo + len(av), av, cat, last])
        self._done(last, cat)

    def _read(self, lo: int, n: int, last: int, cat: int) -> None:
        if n <= 0:
            return
        now = self.now
        if len(self.vr) > 8:
            self.vr = [r for r in self.vr if r[2] >= now]
        self.vr.append([lo, lo + n, last, cat])

    @staticmethod
    def _chain(start: int, n: int, *avs: list[int] | None) -> list[int]:
        """Read times of a stream of ``n`` vectors at one per cycle from ``start`` that pauses
        while its next source vector is not yet available (per-vector chaining):
        ``r[i] = max(r[i-1] + 1, avail[i])``, i.e. ``r[i] = i + max(start, max_k<=i(avail[k]
        - k))``."""
        live = [a for a in avs if a is not None]
        if not live:
            return list(range(start, start + n))
        a = live[0] if len(live) == 1 else list(map(max, *live))
        acc = accumulate(map(sub, a, range(n)), max, initial=start)
        next(acc)
        return list(map(add, acc, range(n)))
