"""The Python side of the testbench memory model (:mod:`.axi_mem`): channel timing, the card's
memory layout, the file back door, and the timing model's schedule of a channel. No Amaranth
import: this module runs inside the cocotb simulator process.

* :class:`ChannelTiming`: one channel's timing in cycles, taken from
  :func:`dfx.sim.timing.params.derive` (``hbm`` / ``ddr`` :class:`~dfx.sim.timing.params.Channels`)
  and the AXI beat width (``core.timing.dma_port_bits``): the token bucket the RTL implements
  and :meth:`ChannelTiming.beat_times`, its exact beat schedule.
* :class:`MemLayout`: channels, sizes, bases and the HBM interleave of one card
  (docs/core.md "Memory system"), and the split of a linear HBM range into per-channel ranges.
* :class:`MemoryBackdoor`: load and dump memory contents of a running Verilator model through
  a binary file (``$fread`` / ``$fwrite("%u")`` in the RAM; 4 MiB in about 0.1 s), by
  channel-local offset, linear HBM address or DDR address.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dfx.isa.config import CoreConfig
from dfx.sim.timing.memory import Port
from dfx.sim.timing.params import Channels, derive

__all__ = [
    "BACKDOOR_FILE",
    "ERR_4K",
    "ERR_BURST",
    "ERR_RANGE",
    "ERR_WLAST",
    "ChannelTiming",
    "MemLayout",
    "MemoryBackdoor",
    "port_schedule",
    "word_swap",
]

#: File the RAMs load from / dump to, relative to the simulation's working directory.
BACKDOOR_FILE = "dfx_mem.bin"

# sticky error bits of an AxiMemory (``error`` output)
ERR_RANGE = 1 << 0  # an access outside [base, base + size): SLVERR, nothing written
ERR_4K = 1 << 1  # a burst crossing a 4 KiB boundary (served anyway)
ERR_BURST = 1 << 2  # a narrow beat (size < bus width) or a non-INCR burst (served as INCR)
ERR_WLAST = 1 << 3  # wlast not on the burst's last beat (or on an earlier one)


@dataclass(frozen=True)
class ChannelTiming:
    """One memory channel as the timing model sees it (docs/timing.md "Memory channels").

    ``rate_num / rate_den`` bytes per cycle; ``latency`` cycles from a read request to its first
    data; ``turnaround`` cycles lost when the channel changes direction; ``granule`` bytes is the
    unit a transfer is charged in; ``beat_bytes`` the AXI data width in bytes.

    The token bucket (exact, in units of 1/``rate_den`` byte): every beat costs
    ``beat_cost`` = ``beat_bytes * rate_den`` units (a beat touches all the granules in it; the
    granule must divide the beat, which holds for every configuration: HBM granule =
    interleave = DMA beat, DDR burst = DMA beat); the channel earns ``rate_num`` units per
    cycle. A transfer's first beat moves in cycle ``d0``, the first cycle the channel is free
    (and, for a read, no earlier than ``request + latency``); its beat k moves at the earliest
    in ``d0 + ceil(k * beat_cost / rate_num)``; the channel is free again at
    ``d0 + ceil(beats * beat_cost / rate_num)``, exactly what
    :class:`dfx.sim.timing.memory.Port` charges (``Channels.cycles``); a transfer in the other
    direction waits ``turnaround`` more cycles. The fraction of a cycle left at the end of a
    transfer is not carried over (as in the model: each transfer starts on a cycle boundary).
    """

    latency: int
    turnaround: int
    rate_num: int
    rate_den: int
    granule: int
    beat_bytes: int

    def __post_init__(self) -> None:
        for name in ("latency", "turnaround"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 0:
                raise ValueError(f"{name} must be a non-negative integer, not {v!r}")
        for name in ("rate_num", "rate_den", "granule", "beat_bytes"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, not {v!r}")
        b, g = self.beat_bytes, self.granule
        if b & (b - 1) or g & (g - 1) or g > b:
            raise ValueError(f"granule ({g}) must be a power of two dividing beat_bytes ({b}); "
                             "a granule wider than a beat is not modelled")
        if self.rate_num > self.beat_bytes * self.rate_den:
            raise ValueError(f"rate {self.rate_num}/{self.rate_den} bytes per cycle exceeds one "
                             f"beat ({b} bytes) per cycle")

    @classmethod
    def from_channels(cls, ch: Channels, beat_bytes: int) -> ChannelTiming:
        """The timing of one channel of ``ch`` (``derive(core).hbm`` / ``.ddr``)."""
        return cls(ch.latency, ch.turnaround, ch.rate_num, ch.rate_den, ch.granule, beat_bytes)

    @property
    def beat_cost(self) -> int:
        """Units (1/rate_den byte) one beat costs."""
        return self.beat_bytes * self.rate_den

    @property
    def floor(self) -> int:
        """The bucket's lower bound: credit never builds up beyond the rounding of one cycle,
        or the turnaround (a stalled cycle is lost bandwidth)."""
        return -max(self.turnaround * self.rate_num, self.rate_num - 1)

    def granules(self, beats: int) -> int:
        """Granules a burst of ``beats`` full beats is charged by the model."""
        return beats * (self.beat_bytes // self.granule)

    def beat_times(self, d0: int, beats: int) -> tuple[list[int], int]:
        """(cycle of each beat, cycle the channel is free) of a ``beats``-beat transfer whose
        first beat moves in cycle ``d0``, when the master never stalls it."""
        c, r = self.beat_cost, self.rate_num
        return [d0 + -(-k * c // r) for k in range(beats)], d0 + -(-beats * c // r)


def port_schedule(timing: ChannelTiming, ch: Channels,
                  transfers: list[tuple[bool, int, int, int]]) -> list[tuple[int, list[int], int]]:
    """The timing model's schedule of transfers confined to one channel, in acceptance order.

    ``transfers``: (write, beats, accepted, ready) with ``accepted`` the address handshake
    cycle and, for a write, ``ready`` the first cycle its data could move (first W valid, and
    no earlier than ``accepted + 1``). Returns per transfer (first beat cycle, beat cycles when
    the master never stalls, cycle the channel is free = a write's B response), computed with
    :class:`dfx.sim.timing.memory.Port` (``read`` / ``write`` / ``commit``) on channel 0 of
    ``ch`` and :meth:`ChannelTiming.beat_times`.
    """
    port = Port(ch)
    out = []
    for write, beats, accepted, ready in transfers:
        counts = (timing.granules(beats),) + (0,) * (ch.n - 1)
        if write:
            d0, dur = port.write(counts, ready)
        else:
            d0, dur = port.read(counts, accepted)
        times, free = timing.beat_times(d0, beats)
        if free != d0 + dur:
            raise AssertionError(f"token bucket ({free - d0}) and Channels.cycles ({dur}) "
                                 "disagree")
        port.commit(counts, d0 + dur, write)
        out.append((d0, times, free))
    return out


@dataclass(frozen=True)
class MemLayout:
    """The memory model of one card: ``hbm_channels`` AXI memories of ``hbm_bytes`` each (HBM
    pseudo-channels, interleaved every ``interleave`` bytes) and one DDR memory of
    ``ddr_bytes``; all ``beat_bytes`` wide. Back-door channel ``i`` < ``hbm_channels`` is
    pseudo-channel ``i``; channel ``hbm_channels`` is DDR. ``hbm_bases`` / ``ddr_base`` are the
    AXI addresses of each memory's offset 0 (the ``hbmNN`` / ``ddr`` kernel arguments)."""

    beat_bytes: int
    hbm_channels: int
    hbm_bytes: int
    interleave: int
    ddr_bytes: int
    hbm_bases: tuple[int, ...]
    ddr_base: int = 0
    hbm_timing: ChannelTiming | None = None
    ddr_timing: ChannelTiming | None = None
    file: str = BACKDOOR_FILE

    def __post_init__(self) -> None:
        b = self.beat_bytes
        if b < 1 or b & (b - 1):
            raise ValueError(f"beat_bytes must be a power of two, not {b!r}")
        for name in ("hbm_bytes", "ddr_bytes"):
            v = getattr(self, name)
            if v < b or v & (v - 1):
                raise ValueError(f"{name} must be a power of two >= beat_bytes ({b}), not {v!r}")
        if self.hbm_channels < 1:
            raise ValueError(f"hbm_channels must be >= 1, not {self.hbm_channels!r}")
        if len(self.hbm_bases) != self.hbm_channels:
            raise ValueError(f"hbm_bases needs {self.hbm_channels} entries, "
                             f"not {len(self.hbm_bases)}")
        for name, base, size in [*((f"hbm_bases[{i}]", x, self.hbm_bytes)
                                   for i, x in enumerate(self.hbm_bases)),
                                 ("ddr_base", self.ddr_base, self.ddr_bytes)]:
            if base < 0 or base % size or base + size > 1 << 64:
                raise ValueError(f"{name} ({base:#x}) must be a multiple of the memory size "
                                 f"({size:#x}) inside the 64-bit address space")

    @classmethod
    def from_core(cls, core: CoreConfig, *, hbm_bytes: int | None = None,
                  ddr_bytes: int | None = None, hbm_bases: tuple[int, ...] | None = None,
                  ddr_base: int = 0, file: str = BACKDOOR_FILE) -> MemLayout:
        """The card of ``core``: pseudo-channels of ``core.b.hbm.pc_capacity_bytes`` (or
        ``hbm_bytes``), DDR of ``channels x channel_capacity_bytes`` (or ``ddr_bytes``),
        ``core.timing.dma_port_bits`` wide, timing from :func:`~dfx.sim.timing.params.derive`.
        ``hbm_bases`` defaults to 0 for every channel."""
        b = core.b
        beat = core.timing.dma_port_bits // 8
        p = derive(core)
        n = b.hbm.pseudo_channels
        return cls(
            beat_bytes=beat,
            hbm_channels=n,
            hbm_bytes=hbm_bytes if hbm_bytes is not None else b.hbm.pc_capacity_bytes,
            interleave=b.hbm.interleave_bytes,
            ddr_bytes=(ddr_bytes if ddr_bytes is not None
                       else b.ddr.channels * b.ddr.channel_capacity_bytes),
            hbm_bases=tuple(hbm_bases) if hbm_bases is not None else (0,) * n,
            ddr_base=ddr_base,
            hbm_timing=ChannelTiming.from_channels(p.hbm, beat),
            ddr_timing=ChannelTiming.from_channels(p.ddr, beat),
            file=file,
        )

    @property
    def channels(self) -> int:
        """Back-door channels: the pseudo-channels, then DDR."""
        return self.hbm_channels + 1

    @property
    def ddr_channel(self) -> int:
        return self.hbm_channels

    def size(self, channel: int) -> int:
        self._check_channel(channel)
        return self.ddr_bytes if channel == self.hbm_channels else self.hbm_bytes

    def words(self, channel: int) -> int:
        return self.size(channel) // self.beat_bytes

    def _check_channel(self, channel: int) -> None:
        if not 0 <= channel <= self.hbm_channels:
            raise ValueError(f"channel must be in 0..{self.hbm_channels}, not {channel!r}")

    def hbm_location(self, addr: int) -> tuple[int, int]:
        """(pseudo-channel, local byte offset) of linear HBM address ``addr``."""
        il, n = self.interleave, self.hbm_channels
        return (addr // il) % n, (addr // (il * n)) * il + addr % il

    def hbm_ranges(self, addr: int, length: int) -> list[tuple[int, int, int]]:
        """The linear HBM range ``[addr, addr + length)`` as (channel, local offset, bytes):
        one contiguous local range per touched channel, in channel order."""
        total = self.hbm_bytes * self.hbm_channels
        if addr < 0 or length < 0 or addr + length > total:
            raise ValueError(f"HBM range {addr:#x}+{length:#x} outside the {total:#x} bytes "
                             "modelled")
        il, n, end = self.interleave, self.hbm_channels, addr + length
        out = []
        for c in range(n):
            blk = addr // il
            first = addr if blk % n == c else (blk + (c - blk) % n) * il
            lb = (end - 1) // il
            last = end - 1 if lb % n == c else (lb - (lb - c) % n) * il + il - 1
            if length and first <= last:
                lo = self.hbm_location(first)[1]
                out.append((c, lo, self.hbm_location(last)[1] + 1 - lo))
        return out

    def _period_view(self, addr: int, length: int) -> tuple[np.ndarray, np.ndarray, int, int]:
        """A zeroed buffer of whole interleave periods covering the range, its (rows, n,
        interleave) view, the range's offset in it and the local offset of its first row."""
        il, n = self.interleave, self.hbm_channels
        p = il * n
        start = addr - addr % p
        rows = -(-(addr + length - start) // p)
        buf = np.zeros(rows * p, np.uint8)
        return buf, buf.reshape(rows, n, il), addr - start, (start // p) * il

    def hbm_scatter(self, addr: int, data: bytes) -> list[tuple[int, int, bytes]]:
        """``data`` at linear HBM address ``addr`` as (channel, local offset, bytes) pieces."""
        buf, view, off, base = self._period_view(addr, len(data))
        buf[off:off + len(data)] = np.frombuffer(bytes(data), np.uint8)
        return [(c, lo, view[:, c, :].reshape(-1)[lo - base: lo - base + nb].tobytes())
                for c, lo, nb in self.hbm_ranges(addr, len(data))]

    def hbm_gather(self, addr: int, length: int, pieces: dict[int, bytes]) -> bytes:
        """Inverse of :meth:`hbm_scatter`: ``pieces[channel]`` holds the bytes of that
        channel's range (:meth:`hbm_ranges`)."""
        buf, view, off, base = self._period_view(addr, length)
        rows, _n, il = view.shape
        for c, lo, nb in self.hbm_ranges(addr, length):
            col = view[:, c, :].reshape(-1).copy()
            col[lo - base: lo - base + nb] = np.frombuffer(pieces[c], np.uint8)
            view[:, c, :] = col.reshape(rows, il)
        return buf[off:off + length].tobytes()


def word_swap(data: bytes, beat_bytes: int) -> bytes:
    """``data`` (little-endian words of ``beat_bytes``) with every word's bytes reversed: the
    layout ``$fread`` loads into a memory (most significant byte of each word first)."""
    a = np.frombuffer(bytes(data), np.uint8).reshape(-1, beat_bytes)
    return a[:, ::-1].tobytes()


class MemoryBackdoor:
    """Load / dump the memories of a running Verilator model (cocotb side).

    The model's top must expose the back-door port of :class:`.axi_mem.MemorySystem` (or of
    an :class:`.axi_mem.AxiMemory`) under ``prefix``: ``{prefix}_sel``, ``_load``, ``_dump``,
    ``_lo``, ``_hi`` (Vitis naming of a ``bd`` member: ``bd_sel`` ...). Each operation writes /
    reads :data:`BACKDOOR_FILE` (binary) in the simulation's working directory (``workdir``)
    and takes two clock cycles; use it while the core is idle (before ap_start, after
    ap_done). Offsets are bytes; unaligned ends are read-modify-written.
    """

    def __init__(self, dut: Any, clock: Any, layout: MemLayout, prefix: str = "bd",
                 workdir: os.PathLike[str] | str | None = None):
        self.dut, self.clock, self.layout = dut, clock, layout
        self._sel = getattr(dut, f"{prefix}_sel")
        self._load = getattr(dut, f"{prefix}_load")
        self._dump = getattr(dut, f"{prefix}_dump")
        self._lo = getattr(dut, f"{prefix}_lo")
        self._hi = getattr(dut, f"{prefix}_hi")
        self.path = Path(workdir or os.getcwd()) / layout.file
        self._load.value = 0
        self._dump.value = 0

    async def _strobe(self, signal: Any, channel: int, lo: int, hi: int) -> None:
        from cocotb.triggers import RisingEdge

        self._sel.value = channel
        self._lo.value = lo
        self._hi.value = hi
        signal.value = 1
        await RisingEdge(self.clock)
        signal.value = 0
        await RisingEdge(self.clock)

    async def load_words(self, channel: int, word: int, data: bytes) -> None:
        """Write whole words ``data`` at word index ``word`` of ``channel``."""
        b = self.layout.beat_bytes
        n = len(data) // b
        if len(data) % b or n == 0:
            raise ValueError(f"data must be a non-empty multiple of {b} bytes")
        if word < 0 or word + n > self.layout.words(channel):
            raise ValueError(f"words {word}..{word + n - 1} outside channel {channel}")
        self.path.write_bytes(word_swap(data, b))
        await self._strobe(self._load, channel, word, word + n - 1)

    async def dump_words(self, channel: int, word: int, count: int) -> bytes:
        """Read ``count`` whole words from word index ``word`` of ``channel``."""
        if count < 1 or word < 0 or word + count > self.layout.words(channel):
            raise ValueError(f"words {word}..{word + count - 1} outside channel {channel}")
        await self._strobe(self._dump, channel, word, word + count - 1)
        data = self.path.read_bytes()  # "%u": little-endian words, i.e. the bytes in order
        if len(data) != count * self.layout.beat_bytes:
            raise RuntimeError(f"back-door dump returned {len(data)} bytes, expected "
                               f"{count * self.layout.beat_bytes}")
        return data

    async def write_channel(self, channel: int, offset: int, data: bytes) -> None:
        """Write ``data`` at byte ``offset`` of ``channel`` (read-modify-write of partial
        words)."""
        if not data:
            return
        b = self.layout.beat_bytes
        w0, w1 = offset // b, (offset + len(data) - 1) // b
        buf = bytearray((w1 - w0 + 1) * b)
        head, tail = offset - w0 * b, (w1 + 1) * b - (offset + len(data))
        if head:
            buf[:b] = await self.dump_words(channel, w0, 1)
        if tail and (w1 != w0 or not head):
            buf[-b:] = await self.dump_words(channel, w1, 1)
        buf[head:head + len(data)] = data
        await self.load_words(channel, w0, bytes(buf))

    async def read_channel(self, channel: int, offset: int, length: int) -> bytes:
        """Read ``length`` bytes at byte ``offset`` of ``channel``."""
        if length <= 0:
            return b""
        b = self.layout.beat_bytes
        w0, w1 = offset // b, (offset + length - 1) // b
        data = await self.dump_words(channel, w0, w1 - w0 + 1)
        return data[offset - w0 * b: offset - w0 * b + length]

    async def write_hbm(self, addr: int, data: bytes) -> None:
        """Write ``data`` at linear HBM address ``addr`` (the ISA's HBM space, interleaved
        over the pseudo-channels; docs/core.md "Memory system")."""
        for ch, lo, piece in self.layout.hbm_scatter(addr, data):
            await self.write_channel(ch, lo, piece)

    async def read_hbm(self, addr: int, length: int) -> bytes:
        """Read ``length`` bytes at linear HBM address ``addr``."""
        pieces = {ch: await self.read_channel(ch, lo, nb)
                  for ch, lo, nb in self.layout.hbm_ranges(addr, length)}
        return self.layout.hbm_gather(addr, length, pieces)

    async def write_ddr(self, addr: int, data: bytes) -> None:
        """Write ``data`` at DDR offset ``addr`` (AXI address ``ddr_base + addr``)."""
        await self.write_channel(self.layout.ddr_channel, addr, data)

    async def read_ddr(self, addr: int, length: int) -> bytes:
        return await self.read_channel(self.layout.ddr_channel, addr, length)
