"""Off-chip memories of one card (HBM, DDR) and the on-chip DMA weight buffer.

A :class:`Memory` is sparse: the address space (8 GiB of HBM and 32 GiB of DDR per U280 card)
is cut into pages of ``2**page_bits`` bytes (1 MiB by default) that are allocated on first
write. Every byte is either *written* (by a memory-image segment, a fill segment, a store or the
host) or not; reading a byte that was never written is an error
(:class:`~.errors.UninitializedReadError`), because on the hardware it would be garbage.
Written-ness is kept per page: a page is absent (nothing written), *full* (every byte written:
no mask, the common case for weights and filled regions) or *partial* (a byte mask until the
page fills up), so checking a weight stream costs a dictionary look-up per page.

Host memory stays proportional to what is used (docs/limits.md): a page wholly covered by a
fill segment is only recorded (page -> byte value) and allocated when something writes into
it, so a binary that fills all of HBM costs nothing until its program touches it; every
allocated page and byte mask is charged to a :class:`MemoryBudget` shared by the appliance's
memories, and a single access may not move more bytes than the budget's limit either. Going
over the limit is a :class:`~.errors.MemoryLimitError` naming the memory and the access.

Channels (statistics only; data is stored by flat address):

* HBM (``interleave``): byte ``a`` lives in pseudo-channel ``(a // I) % P`` at offset
  ``(a // (I·P))·I + a % I`` (``I`` = ``board.hbm.interleave_bytes``, ``P`` =
  ``board.hbm.pseudo_channels``), so a contiguous stream spreads over all pseudo-channels (DFX
  §IV-B);
* DDR (``channel_bytes``): channel ``a // channel_capacity_bytes``;
* the weight buffer: one channel.

Bytes read and written are counted per channel (:attr:`Memory.channel_read`,
:attr:`Memory.channel_written`); host accesses (``count=False``) are not counted.
Listeners registered in :attr:`Memory.listeners` are called with ``(lo, hi)`` after every write
(the matrix unit's prepared-weight cache uses this to drop stale entries).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .errors import MemoryAccessError, MemoryLimitError, UninitializedReadError

__all__ = ["Memory", "MemoryBudget", "hbm_memory", "ddr_memory", "wbuf_memory"]

_U8 = np.uint8


class MemoryBudget:
    """Host bytes that the simulated memories sharing it may allocate (pages and masks)."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.used = 0

    def take(self, n: int, label: str, what: str) -> None:
        if self.limit is not None and self.used + n > self.limit:
            raise MemoryLimitError(
                f"{label} {what}: the simulated memories would need more than the memory limit "
                f"of {_size(self.limit)} of host memory (pages a program or its binary touches; "
                "raise it with --max-memory)")
        self.used += n

    def give(self, n: int) -> None:
        self.used -= n

    def check_access(self, n: int, label: str, what: str) -> None:
        """One access (its temporary copy) may not exceed the limit either."""
        if self.limit is not None and n > self.limit:
            raise MemoryLimitError(
                f"{label} {what} of {_size(n)} exceeds the memory limit of {_size(self.limit)} "
                "(raise it with --max-memory)")


def _size(n: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            return f"{n / (1 << shift):.1f} {unit}"
    return f"{n} bytes"


class Memory:
    """A sparse, byte-addressed memory of ``capacity`` bytes named ``name`` (``"hbm"``...).

    ``interleave``/``channels``: interleaved channel mapping (HBM); ``channel_bytes``: linear
    channels of that many bytes (DDR); neither: a single channel.
    """

    def __init__(self, name: str, capacity: int, *, channels: int = 1,
                 interleave: int | None = None, channel_bytes: int | None = None,
                 page_bits: int = 20, budget: MemoryBudget | None = None) -> None:
        if capacity <= 0:
            raise ValueError(f"{name}: capacity must be > 0")
        self.name = name
        self.label = name.upper()
        self.capacity = capacity
        self.channels = channels
        self.interleave = interleave
        self.channel_bytes = channel_bytes
        if interleave is None and channel_bytes is None and channels != 1:
            raise ValueError(f"{name}: several channels need interleave or channel_bytes")
        # a page never needs to be larger than the whole memory
        self.page_bits = min(page_bits, max(1, (capacity - 1).bit_length()))
        self.page_size = 1 << self.page_bits
        self._mask = self.page_size - 1
        self._pages: dict[int, np.ndarray] = {}
        self._partial: dict[int, np.ndarray] = {}  # page -> bool mask of written bytes
        self._partial_count: dict[int, int] = {}  # page -> number of written bytes
        self._fills: dict[int, int] = {}  # page wholly filled with a byte, not yet allocated
        self.budget = budget if budget is not None else MemoryBudget(None)
        self._charged = 0  # bytes charged to the budget by this memory
        self.listeners: list[Callable[[int, int], None]] = []
        # blocks of 2**dirty_bits bytes written since the last clear() (after the image load)
        self.dirty_bits = min(10, self.page_bits)
        self.dirty: set[int] = set()
        self.read_bytes = 0
        self.written_bytes = 0
        self._channel_read = np.zeros(channels, dtype=np.int64)
        self._channel_written = np.zeros(channels, dtype=np.int64)
        self._rlog: list[tuple[int, int]] = []
        self._wlog: list[tuple[int, int]] = []
        self._ch = np.arange(channels, dtype=np.int64)

    # -- geometry -------------------------------------------------------------------------------
    def locate(self, addr: int) -> tuple[int, int]:
        """(channel, offset inside the channel) of byte ``addr``."""
        self.check_bounds(addr, 1, "access")
        if self.interleave is not None:
            i, p = self.interleave, self.channels
            return (addr // i) % p, (addr // (i * p)) * i + addr % i
        if self.channel_bytes is not None:
            return addr // self.channel_bytes, addr % self.channel_bytes
        return 0, addr

    def _below(self, x: np.ndarray) -> np.ndarray:
        """Bytes of [0, x) in each channel: int64[len(x), channels]."""
        x = x[:, None]
        if self.interleave is not None:
            i = self.interleave
            r = i * self.channels
            return (x // r) * i + np.clip(x % r - self._ch * i, 0, i)
        c = self.channel_bytes
        return np.clip(x - self._ch * c, 0, c)

    def channel_split(self, starts: np.ndarray | int, length: int | np.ndarray) -> np.ndarray:
        """Bytes per channel of the runs ``[s, s + length)`` for ``s`` in ``starts``."""
        s = np.atleast_1d(np.asarray(starts, dtype=np.int64))
        n = np.broadcast_to(np.asarray(length, dtype=np.int64), s.shape)
        if self.channels == 1:
            return np.array([int(n.sum())], dtype=np.int64)
        return (self._below(s + n) - self._below(s)).sum(axis=0)

    # Accesses are logged and turned into per-channel bytes in batches (vectorised), which
    # keeps the statistics off the per-instruction cost.
    def _log(self, log: list, starts: np.ndarray | int, length: int) -> None:
        log.append((starts, length))
        if len(log) >= 4096:
            self._flush()

    def _flush(self) -> None:
        for log, acc in ((self._rlog, self._channel_read), (self._wlog, self._channel_written)):
            if not log:
                continue
            scalars = [(a, n) for a, n in log if isinstance(a, int)]
            if scalars:
                a = np.array(scalars, dtype=np.int64)
                acc += self.channel_split(a[:, 0], a[:, 1])
            for a, n in log:
                if not isinstance(a, int):
                    acc += self.channel_split(a, n)
            log.clear()

    @property
    def channel_read(self) -> np.ndarray:
        """Bytes read per channel (pseudo-channel for HBM)."""
        self._flush()
        return self._channel_read

    @property
    def channel_written(self) -> np.ndarray:
        """Bytes written per channel."""
        self._flush()
        return self._channel_written

    def _count_read(self, starts: np.ndarray | int, length: int) -> None:
        n = int(np.size(starts)) * length
        if n:
            self.read_bytes += n
            self._log(self._rlog, starts, length)

    def _count_written(self, starts: np.ndarray | int, length: int) -> None:
        n = int(np.size(starts)) * length
        if n:
            self.written_bytes += n
            self._log(self._wlog, starts, length)

    def account_read(self, starts: np.ndarray | int, length: int,
                     split: np.ndarray | None = None) -> None:
        """Count a read served from elsewhere (the prepared-weight cache) in the statistics;
        ``split`` is its precomputed :meth:`channel_split`."""
        if split is None:
            self._count_read(starts, length)
        else:
            self.read_bytes += int(np.size(starts)) * length
            self._channel_read += split

    # -- checks ---------------------------------------------------------------------------------
    def check_bounds(self, addr: int, n: int, what: str) -> None:
        if addr < 0 or addr + n > self.capacity:
            raise MemoryAccessError(
                f"{self.label} {what} of {_span(addr, n)} is outside the {self.capacity:#x} "
                f"bytes of {self.label}"
            )

    def first_unwritten(self, addr: int, n: int) -> int | None:
        """The first never-written byte address in ``[addr, addr + n)``, or None."""
        end = addr + n
        a = addr
        while a < end:
            p = a >> self.page_bits
            o = a & self._mask
            k = min(end - a, self.page_size - o)
            if p not in self._pages:
                if p in self._fills:
                    a += k
                    continue
                return a
            m = self._partial.get(p)
            if m is not None:
                seg = m[o:o + k]
                if not seg.all():
                    return a + int(np.argmin(seg))
            a += k
        return None

    def is_written(self, addr: int, n: int) -> bool:
        return self.first_unwritten(addr, n) is None

    def _unwritten(self, addr: int, n: int, first: int, what: str) -> UninitializedReadError:
        return UninitializedReadError(
            f"{self.label} {what} of {_span(addr, n)} includes never-written bytes "
            f"(first at {first:#x})"
        )

    # -- reading --------------------------------------------------------------------------------
    def read(self, addr: int, n: int, *, count: bool = True, what: str = "read") -> np.ndarray:
        """``n`` bytes at ``addr`` (uint8). May be a read-only view: use it before any write."""
        self.check_bounds(addr, n, what)
        if n == 0:
            return np.empty(0, dtype=_U8)
        p = addr >> self.page_bits
        o = addr & self._mask
        if o + n <= self.page_size:  # one page: the fast path
            page = self._pages.get(p)
            if page is None:
                if p not in self._fills:
                    raise self._unwritten(addr, n, addr, what)
                if count:
                    self._count_read(addr, n)
                return np.full(n, self._fills[p], dtype=_U8)
            m = self._partial.get(p)
            if m is not None and not m[o:o + n].all():
                raise self._unwritten(addr, n, addr + int(np.argmin(m[o:o + n])), what)
            out = page[o:o + n]
        else:
            first = self.first_unwritten(addr, n)
            if first is not None:
                raise self._unwritten(addr, n, first, what)
            self.budget.check_access(n, self.label, what)
            out = np.empty(n, dtype=_U8)
            a, end = addr, addr + n
            while a < end:
                p = a >> self.page_bits
                o = a & self._mask
                k = min(end - a, self.page_size - o)
                page = self._pages.get(p)
                out[a - addr:a - addr + k] = page[o:o + k] if page is not None else self._fills[p]
                a += k
        if count:
            self._count_read(addr, n)
        return out

    def read_runs(self, addr: int, runs: int, run: int, stride: int, *, count: bool = True,
                  what: str = "read") -> np.ndarray:
        """``runs`` runs of ``run`` bytes starting every ``stride`` bytes: uint8[runs, run]."""
        if runs <= 0 or run <= 0:
            return np.empty((max(runs, 0), max(run, 0)), dtype=_U8)
        if runs == 1 or stride == run:
            return self.read(addr, runs * run, count=count, what=what).reshape(runs, run)
        span = (runs - 1) * stride + run
        self.check_bounds(addr, span, what)
        self.budget.check_access(runs * run, self.label, what)
        p = addr >> self.page_bits
        o = addr & self._mask
        page = self._pages.get(p)
        if o + span <= self.page_size and page is not None and p not in self._partial:
            out = np.lib.stride_tricks.as_strided(
                page[o:], shape=(runs, run), strides=(stride, 1), writeable=False).copy()
        else:
            out = np.empty((runs, run), dtype=_U8)
            for k in range(runs):
                out[k] = self.read(addr + k * stride, run, count=False, what=what)
        if count:
            self._count_read(addr + stride * np.arange(runs, dtype=np.int64), run)
        return out

    # -- writing --------------------------------------------------------------------------------
    def _charge(self, n: int, what: str) -> None:
        self.budget.take(n, self.label, what)
        self._charged += n

    def release(self) -> None:
        """Give this memory's bytes back to the budget (when it is discarded)."""
        self.budget.give(self._charged)
        self._charged = 0

    def _page_for_write(self, p: int, o: int, k: int, what: str = "write") -> np.ndarray:
        page = self._pages.get(p)
        if page is None:
            self._charge(self.page_size, what)
            fill = self._fills.pop(p, None)
            if fill is not None:  # a filled page: every byte is written already
                page = self._pages[p] = np.full(self.page_size, fill, dtype=_U8)
                return page
            page = self._pages[p] = np.zeros(self.page_size, dtype=_U8)
            if not (o == 0 and k == self.page_size):
                self._charge(self.page_size, what)
                self._partial[p] = np.zeros(self.page_size, dtype=bool)
                self._partial_count[p] = 0
        return page

    def _mark(self, p: int, o: int, k: int) -> None:
        m = self._partial.get(p)
        if m is None:
            return
        seg = m[o:o + k]
        new = k - int(np.count_nonzero(seg))
        if new:
            seg[:] = True
            c = self._partial_count[p] + new
            if c == self.page_size:
                del self._partial[p], self._partial_count[p]
                self.budget.give(self.page_size)
                self._charged -= self.page_size
            else:
                self._partial_count[p] = c

    def _dirty(self, lo: int, hi: int) -> None:
        b = self.dirty_bits
        self.dirty.update(range(lo >> b, ((hi - 1) >> b) + 1))

    def touched(self, lo: int, hi: int) -> bool:
        """True if a byte of ``[lo, hi)`` was written since the last ``dirty.clear()``."""
        b = self.dirty_bits
        return any(k in self.dirty for k in range(lo >> b, ((hi - 1) >> b) + 1))

    def _store(self, addr: int, data: np.ndarray, what: str = "write",
               track: bool = True) -> None:
        n = data.size
        if track:
            self._dirty(addr, addr + n)
        a, end = addr, addr + n
        while a < end:
            p = a >> self.page_bits
            o = a & self._mask
            k = min(end - a, self.page_size - o)
            page = self._page_for_write(p, o, k, what)
            page[o:o + k] = data[a - addr:a - addr + k]
            self._mark(p, o, k)
            a += k

    def _notify(self, lo: int, hi: int) -> None:
        for f in self.listeners:
            f(lo, hi)

    def write(self, addr: int, data: np.ndarray | bytes, *, count: bool = True,
              what: str = "write", track: bool = True) -> None:
        """Write bytes (any array is taken as its raw little-endian bytes). ``track=False``
        (loading an image): no dirty-block tracking and no listeners."""
        if isinstance(data, bytes | bytearray | memoryview):
            raw = np.frombuffer(bytes(data), dtype=_U8)
        else:
            raw = np.ascontiguousarray(data).reshape(-1).view(_U8)
        n = raw.size
        self.check_bounds(addr, n, what)
        if n == 0:
            return
        self._store(addr, raw, what, track)
        if count:
            self._count_written(addr, n)
        if track:
            self._notify(addr, addr + n)

    def fill(self, addr: int, n: int, value: int, *, count: bool = False,
             track: bool = True) -> None:
        """Set ``n`` bytes to ``value`` (fill segments). Whole pages not yet allocated are
        only recorded; ``track=False`` as for :meth:`write`."""
        self.check_bounds(addr, n, "fill")
        if n and track:
            self._dirty(addr, addr + n)
        a, end = addr, addr + n
        while a < end:
            p = a >> self.page_bits
            o = a & self._mask
            k = min(end - a, self.page_size - o)
            if k == self.page_size and p not in self._pages:
                self._fills[p] = value
            else:
                page = self._page_for_write(p, o, k, "fill")
                page[o:o + k] = value
                self._mark(p, o, k)
            a += k
        if count and n:
            self._count_written(addr, n)
        if n and track:
            self._notify(addr, addr + n)

    def write_runs(self, addr: int, data: np.ndarray, stride: int, *, count: bool = True,
                   what: str = "write") -> None:
        """Write row k of ``data`` (uint8[runs, run]) at ``addr + k·stride``, in order."""
        runs, run = data.shape
        if runs == 0 or run == 0:
            return
        if runs == 1 or stride == run:
            self.write(addr, data, count=count, what=what)
            return
        span = (runs - 1) * stride + run
        self.check_bounds(addr, span, what)
        for k in range(runs):
            self._store(addr + k * stride, data[k], what)
        if count:
            self._count_written(addr + stride * np.arange(runs, dtype=np.int64), run)
        self._notify(addr, addr + span)

    def scatter16(self, addrs: np.ndarray, values: np.ndarray, *, count: bool = True,
                  what: str = "write") -> None:
        """Store 16-bit ``values[i]`` at byte address ``addrs[i]`` (even) in order: a later
        element wins when two land on the same address."""
        if addrs.size == 0:
            return
        addrs = addrs.astype(np.int64, copy=False)
        lo, hi = int(addrs.min()), int(addrs.max()) + 2
        self.check_bounds(lo, hi - lo, what)
        if (addrs & 1).any():
            raise MemoryAccessError(f"{self.label} {what}: 16-bit element at odd address "
                                    f"{int(addrs[np.argmax(addrs & 1)]):#x}")
        vals = np.ascontiguousarray(values).view(np.uint16).reshape(-1)
        # keep the last write to each address
        rev_u, rev_i = np.unique(addrs[::-1], return_index=True)
        keep = addrs.size - 1 - rev_i
        addrs, vals = rev_u, vals[keep]
        self.dirty.update(np.unique(addrs >> self.dirty_bits).tolist())
        pages = addrs >> self.page_bits
        for p in np.unique(pages).tolist():
            sel = pages == p
            offs = addrs[sel] & self._mask
            page = self._page_for_write(p, 0, 0, what)
            page.view(np.uint16)[offs >> 1] = vals[sel]
            m = self._partial.get(p)
            if m is not None:
                before = int(np.count_nonzero(m[offs])) + int(np.count_nonzero(m[offs + 1]))
                m[offs] = True
                m[offs + 1] = True
                c = self._partial_count[p] + 2 * offs.size - before
                if c == self.page_size:
                    del self._partial[p], self._partial_count[p]
                    self.budget.give(self.page_size)
                    self._charged -= self.page_size
                else:
                    self._partial_count[p] = c
        if count:
            self._count_written(addrs, 2)
        self._notify(lo, hi)

    # -- reporting ------------------------------------------------------------------------------
    @property
    def allocated_bytes(self) -> int:
        """Host memory used by the pages (not counting partial-page masks)."""
        return len(self._pages) * self.page_size

    @property
    def charged_bytes(self) -> int:
        """Host memory charged to the budget: pages and partial-page masks."""
        return self._charged

    def stats(self) -> dict:
        return {
            "read_bytes": self.read_bytes,
            "written_bytes": self.written_bytes,
            "channel_read": self.channel_read.tolist(),
            "channel_written": self.channel_written.tolist(),
        }

    def __repr__(self) -> str:
        return (f"Memory({self.name!r}, capacity={self.capacity:#x}, "
                f"pages={len(self._pages)}, partial={len(self._partial)})")


def _span(addr: int, n: int) -> str:
    return f"{addr:#x}..{addr + n:#x}"


def hbm_memory(core, budget: MemoryBudget | None = None) -> Memory:  # noqa: ANN001
    hbm = core.b.hbm
    return Memory("hbm", hbm.capacity_bytes, channels=hbm.pseudo_channels,
                  interleave=hbm.interleave_bytes, budget=budget)


def ddr_memory(core, budget: MemoryBudget | None = None) -> Memory:  # noqa: ANN001
    ddr = core.b.ddr
    return Memory("ddr", ddr.capacity_bytes, channels=ddr.channels,
                  channel_bytes=ddr.channel_capacity_bytes, budget=budget)


def wbuf_memory(core, budget: MemoryBudget | None = None) -> Memory:  # noqa: ANN001
    return Memory("wbuf", core.buffers.wbuf_tiles * core.tile_bytes, budget=budget)
