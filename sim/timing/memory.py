"""Which memory channels a transfer touches, and for how long.

A transfer is described by the granules (``Channels.granule`` bytes) it touches in each channel:
HBM addresses interleave over the pseudo-channels every ``board.hbm.interleave_bytes``, DDR
channels are linear blocks of ``channel_capacity_bytes``, the weight buffer is one channel. A
touched granule costs its full size even if only a few of its bytes are used (a 2-byte write of
``store_t`` costs a whole 64-byte beat). Results are cached by the address modulo the mapping's
period, which is all the channel split depends on.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .params import Channels

Counts = tuple[int, ...]
"""Granules per channel (one entry per channel)."""


def run_counts(ch: Channels, addr: int, length: int, count: int = 1, stride: int = 0) -> Counts:
    """Granules per channel of ``count`` runs of ``length`` bytes at ``addr + k * stride``."""
    if length <= 0 or count <= 0:
        return (0,) * ch.n
    if ch.interleave:
        p = ch.period
        return _interleaved(ch, addr % p, length, count, stride % p if count > 1 else 0)
    return _linear(ch, addr, length, count, stride)


@lru_cache(maxsize=65536)
def _interleaved(ch: Channels, addr: int, length: int, count: int, stride: int) -> Counts:
    i, n = ch.interleave, ch.n
    out = [0] * n
    runs = count
    if stride == 0 and count > 1:  # every run has the same phase
        runs = 1
    for k in range(runs):
        a = addr + k * stride
        b0 = a // i
        nb = (a + length - 1) // i - b0 + 1
        full, rem = divmod(nb, n)
        first = b0 % n
        if full:
            for c in range(n):
                out[c] += full
        for r in range(rem):
            out[(first + r) % n] += 1
    if runs != count:
        out = [x * count for x in out]
    return tuple(out)


@lru_cache(maxsize=65536)
def _linear(ch: Channels, addr: int, length: int, count: int, stride: int) -> Counts:
    g, cb = ch.granule, ch.channel_bytes
    out = [0] * ch.n
    for k in range(count):
        a = addr + k * stride
        end = a + length
        while a < end:
            c = min(a // cb, ch.n - 1) if cb else 0
            stop = min(end, (c + 1) * cb) if cb else end
            out[c] += (stop - 1) // g - a // g + 1
            a = stop
    return tuple(out)


def scatter_counts(ch: Channels, addrs: list[int]) -> Counts:
    """Granules per channel of the individual element addresses ``addrs`` (2-byte elements)."""
    g = ch.granule
    blocks = {a // g for a in addrs}
    out = [0] * ch.n
    if ch.interleave:
        per = ch.interleave // g if ch.interleave >= g else 1
        for b in blocks:
            out[(b // per) % ch.n] += 1
    else:
        cb = ch.channel_bytes
        for b in blocks:
            out[min(b * g // cb, ch.n - 1) if cb else 0] += 1
    return tuple(out)


@lru_cache(maxsize=4096)
def store_t_counts(ch: Channels, dst: int, n: int, stride: int, d: int, l: int) -> Counts:  # noqa: E741
    """Granules of ``store_t``: element c goes to dst + (c div l) * stride + (c mod l) * 2d."""
    return scatter_counts(ch, [dst + (c // l) * stride + (c % l) * 2 * d for c in range(n)])


def store_t_key(ch: Channels, dst: int) -> int:
    """The part of a ``store_t`` destination its channel split depends on."""
    return dst % ch.period if ch.interleave else dst


NEG = -(1 << 62)


class Port:
    """The DMA's view of one memory: per channel, when its data bus is next free for a read
    (``rfree``) and for a write (``wfree``; the other direction pays the turnaround), and how
    often each channel split was used (for per-channel byte counts)."""

    __slots__ = ("ch", "n", "rfree", "wfree", "info", "use")

    def __init__(self, ch: Channels) -> None:
        self.ch, self.n = ch, ch.n
        self.rfree = [NEG] * ch.n
        self.wfree = [NEG] * ch.n
        self.info: dict[Counts, tuple[tuple[int, ...] | None, int, int]] = {}
        self.use: dict[Counts, list[int]] = {}

    def _info(self, counts: Counts) -> tuple[tuple[int, ...] | None, int, int]:
        x = self.info.get(counts)
        if x is None:
            idx = tuple(i for i, g in enumerate(counts) if g)
            cyc = max((self.ch.cycles(counts[i]) for i in idx), default=0)
            x = (None if len(idx) == self.n else idx, cyc, sum(counts) * self.ch.granule)
            self.info[counts] = x
        return x

    def read(self, counts: Counts, q: int) -> tuple[int, int]:
        """(first data cycle, cycles) of a read requested in cycle ``q``."""
        idx, cyc, _ = self._info(counts)
        d0 = q + self.ch.latency
        if idx is None:
            f = max(self.rfree)
        elif idx:
            rf = self.rfree
            f = max([rf[i] for i in idx])
        else:
            return d0, 0
        return (f if f > d0 else d0), cyc

    def write(self, counts: Counts, ready: int) -> tuple[int, int]:
        """(first write cycle, cycles) of a write whose data is ready in cycle ``ready``."""
        idx, cyc, _ = self._info(counts)
        if idx is None:
            f = max(self.wfree)
        elif idx:
            wf = self.wfree
            f = max([wf[i] for i in idx])
        else:
            return ready, 0
        return (f if f > ready else ready), cyc

    def commit(self, counts: Counts, until: int, write: bool) -> int:
        """The transfer holds its channels until ``until``; returns the bytes it moved."""
        idx, _, nbytes = self._info(counts)
        turn = self.ch.turnaround
        rf, wf = (until + turn, until) if write else (until, until + turn)
        if idx is None:
            self.rfree = [rf] * self.n
            self.wfree = [wf] * self.n
        else:
            r, w = self.rfree, self.wfree
            for i in idx:
                r[i] = rf
                w[i] = wf
        u = self.use.get(counts)
        if u is None:
            u = self.use[counts] = [0, 0]
        u[1 if write else 0] += 1
        return nbytes

    def channel_bytes(self) -> list[list[int]]:
        """Bytes read and written per channel so far: [[read, written] per channel]."""
        out = [[0, 0] for _ in range(self.n)]
        g = self.ch.granule
        for counts, (r, w) in self.use.items():
            for i, c in enumerate(counts):
                if c:
                    out[i][0] += c * g * r
                    out[i][1] += c * g * w
        return out
