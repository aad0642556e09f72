"""Geometry of the memory system and the payload layouts shared by its blocks (docs/core.md,
"Memory system").

Every space is seen as a sequence of **rows** of ``R = C·W`` bytes (``C`` HBM pseudo-channels,
``W = timing.dma_port_bits / 8`` bytes per beat; both configured cores have ``R`` = one d × l
tile): row ``r`` holds ISA bytes ``[r·R, r·R + R)``, beat ``k`` of it bytes ``[r·R + k·W, +W)``.

* HBM (interleave ``W``, DFX §2.2): beat ``k`` of row ``r`` is local beat ``r`` of
  pseudo-channel ``k`` (AXI address ``hbm_base[k] + r·W``);
* DDR: one AXI port, beat ``k`` of row ``r`` is AXI address ``ddr_base + r·R + k·W``;
* the weight buffer: one on-chip memory word of ``R`` bytes per row.

A client asks for rows with an **op** (:func:`op_layout`): rows ``row .. row + nrows - 1`` of
one space, row ``j``'s beats given by ``(m0 if j == 0 else ~0) & (m1 if j == nrows - 1 else
~0)`` (every row has at least one beat). Read ops come back as rows (:func:`rrow_layout`,
``tag`` returned unchanged); write ops take one :func:`wrow_layout` row each (bytes outside
the op's beats must have ``strb`` = 0). An op never crosses a multiple of its space's
``block_rows`` (:meth:`Geometry.block_rows`), so it is one AXI burst per port, never across a
4 KiB boundary (base addresses must be 4 KiB aligned, as Vitis buffers are).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from amaranth.hdl import Cat, Const, Mux, unsigned
from amaranth.lib import data

from ..isa_layouts import Space

__all__ = [
    "ADDR_BITS",
    "Client",
    "Geometry",
    "MEM_SPACES",
    "TAG_BITS",
    "cid_shape",
    "ns_to_cycles",
    "op_layout",
    "prefix_mask",
    "row_mask",
    "rrow_layout",
    "sop_layout",
    "srow_layout",
    "suffix_mask",
    "wrow_layout",
]

ADDR_BITS = 64
"""Byte addresses (ISA addresses, AXI addresses, base registers) are 64-bit."""

TAG_BITS = 48
"""The client-defined ``tag`` an op carries back with each of its rows."""

AXI_BOUNDARY = 4096
"""AXI4: a burst must not cross a 4 KiB boundary (IHI0022 A3.4.1)."""

AXI_MAX_LEN = 256
"""AXI4 INCR bursts: at most 256 beats."""

CREDIT_LOOP = 3
"""Cycles of a read credit's round trip besides the memory's latency ``Lm`` (AR handshake to
first R handshake): the AR register and the buffered R FIFO. A port streams one beat per cycle
iff ``credits − burst ≥ Lm + CREDIT_LOOP`` (measured: tests/rtl/dma/test_dma_channel.py)."""


class Client(enum.IntEnum):
    """The memory system's clients (docs/core.md); at most one command is accepted per
    cycle, the lowest number first."""

    LOADER = 0
    WORD = 1
    DMA = 2
    MPU = 3
    LUT = 4


CLIENT_BITS = 3

#: The spaces the memory system serves (the VRF is the lead's).
MEM_SPACES = (Space.HBM, Space.DDR, Space.WBUF)


def ns_to_cycles(ns: float, clock_mhz: float) -> int:
    """Whole core cycles covering ``ns`` (docs/timing.md "Time": rounded up)."""
    f = Fraction(str(ns)) * Fraction(str(clock_mhz)) / 1000
    return -(-f.numerator // f.denominator)


def _pow2(v: int, name: str) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or v < 1 or v & (v - 1):
        raise ValueError(f"{name} must be a power of two, not {v!r}")
    return v


def _next_pow2(v: int) -> int:
    return 1 << max(0, (v - 1).bit_length())


@dataclass(frozen=True)
class Geometry:
    """Sizes of the memory system, all from the core configuration (:meth:`from_core`).

    ``channels`` C (HBM pseudo-channels), ``beat_bytes`` W (AXI data bytes), ``d``, ``l``,
    ``wbuf_rows`` (weight-buffer rows = ``buffers.wbuf_tiles``), ``hbm_rows`` (rows of HBM:
    ``pc_capacity_bytes / W``), ``ddr_bytes`` (DDR capacity), ``read_credits`` /
    ``ddr_credits`` (read beats outstanding per AXI port: the R buffer depth), ``hbm_latency``
    / ``ddr_latency`` (the boards' read latencies in core cycles, the source of the credits).
    """

    channels: int
    beat_bytes: int
    d: int
    l: int  # noqa: E741 - the paper's name
    wbuf_rows: int
    hbm_rows: int
    ddr_bytes: int
    read_credits: int
    ddr_credits: int
    hbm_latency: int
    ddr_latency: int

    def __post_init__(self) -> None:
        _pow2(self.channels, "channels (board.hbm.pseudo_channels)")
        if self.channels < 2:
            raise ValueError(f"channels must be at least 2, not {self.channels}")
        _pow2(self.beat_bytes, "beat_bytes (timing.dma_port_bits / 8)")
        _pow2(self.d, "d")
        _pow2(self.l, "l")
        if self.beat_bytes < 4:
            raise ValueError(f"beat_bytes must be at least 4 (lw/sw words), not {self.beat_bytes}")
        if (2 * self.d) % self.beat_bytes:
            raise ValueError(f"a vector (2·d = {2 * self.d} bytes) must be a whole number of "
                             f"beats ({self.beat_bytes} bytes): store_t puts one element per beat")
        if 2 * self.d * self.l != self.row_bytes:
            raise ValueError(f"a tile (2·d·l = {2 * self.d * self.l} bytes) must be one row "
                             f"(channels · beat_bytes = {self.row_bytes} bytes): one beat on "
                             f"every pseudo-channel")
        if self.row_bytes > AXI_BOUNDARY:
            raise ValueError(f"a row ({self.row_bytes} bytes) must fit in {AXI_BOUNDARY} bytes "
                             f"(one DDR burst per row)")
        if not isinstance(self.wbuf_rows, int) or self.wbuf_rows < 1:
            raise ValueError(f"wbuf_rows must be a positive integer, not {self.wbuf_rows!r}")
        for name in ("hbm_rows", "ddr_bytes"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, not {v!r}")
        _pow2(self.read_credits, "read_credits")
        _pow2(self.ddr_credits, "ddr_credits")
        if self.read_credits < 2:
            raise ValueError(f"read_credits must be at least 2, not {self.read_credits}")
        if self.ddr_credits < 2 * self.channels:
            raise ValueError(f"ddr_credits ({self.ddr_credits}) must hold two rows "
                             f"(2 x {self.channels} beats)")

    @classmethod
    def from_core(cls, core: Any, **overrides: Any) -> Geometry:
        """The geometry of a :class:`dfx.isa.config.CoreConfig`. Credits default to twice the
        power of two at or above ``read latency + CREDIT_LOOP``: an op's burst takes at most
        half of them (:meth:`block_rows`), so ``credits − burst ≥ latency + CREDIT_LOOP`` and
        every port streams one beat per cycle (:data:`CREDIT_LOOP`)."""
        b, t = core.b, core.timing
        w = t.dma_port_bits // 8
        if b.hbm.interleave_bytes != w:
            raise ValueError(f"board.hbm.interleave_bytes ({b.hbm.interleave_bytes}) must equal "
                             f"the DMA beat, timing.dma_port_bits / 8 = {w}")
        hl = ns_to_cycles(b.hbm.read_latency_ns, core.clock_mhz)
        dl = ns_to_cycles(b.ddr.read_latency_ns, core.clock_mhz)
        c = b.hbm.pseudo_channels
        params: dict[str, Any] = {
            "channels": c, "beat_bytes": w, "d": core.d, "l": core.l,
            "wbuf_rows": core.buffers.wbuf_tiles, "hbm_rows": b.hbm.pc_capacity_bytes // w,
            "ddr_bytes": b.ddr.capacity_bytes,
            "read_credits": 2 * _next_pow2(hl + CREDIT_LOOP),
            "ddr_credits": 2 * max(_next_pow2(dl + CREDIT_LOOP), c),
            "hbm_latency": hl, "ddr_latency": dl,
        }
        params.update(overrides)
        return cls(**params)

    # ---- derived sizes
    @property
    def row_bytes(self) -> int:
        """R = C·W."""
        return self.channels * self.beat_bytes

    @property
    def row_shift(self) -> int:
        return self.row_bytes.bit_length() - 1

    @property
    def beat_shift(self) -> int:
        return self.beat_bytes.bit_length() - 1

    @property
    def row_bits(self) -> int:
        """Width of a row index (a 64-bit byte address without its offset in the row)."""
        return ADDR_BITS - self.row_shift

    @property
    def vector_bytes(self) -> int:
        return 2 * self.d

    @property
    def count_bits(self) -> int:
        """Width of an element count: enough for every element of the largest memory (a
        larger count is a range fault at issue)."""
        return max(self.hbm_rows * self.row_bytes, self.ddr_bytes).bit_length()

    def block_rows(self, space: Space) -> int:
        """Rows per aligned block of ``space``: an op stays inside one (module doc), so its
        burst on a port is at most half the port's credits, 256 beats and 4 KiB. HBM and the
        weight buffer: one beat per pseudo-channel per row; DDR: C beats per row."""
        if space == Space.DDR:
            return max(1, min(self.ddr_credits // 2 // self.channels,
                              AXI_BOUNDARY // self.row_bytes, AXI_MAX_LEN // self.channels))
        return min(self.read_credits // 2, AXI_BOUNDARY // self.beat_bytes, AXI_MAX_LEN)

    @property
    def max_block_rows(self) -> int:
        return max(self.block_rows(s) for s in MEM_SPACES)


def op_layout(g: Geometry) -> data.StructLayout:
    """A client's op (module doc): ``space``, ``write``, ``row``, ``nrows`` (1..max block),
    ``m0``/``m1`` (beat masks of the first / last row), ``end`` (the command's last op in this
    space), ``tag`` (returned with every row of a read)."""
    return data.StructLayout({
        "space": Space, "write": 1, "row": g.row_bits, "nrows": range(g.max_block_rows + 1),
        "m0": g.channels, "m1": g.channels, "end": 1, "tag": TAG_BITS,
    })


def rrow_layout(g: Geometry) -> data.StructLayout:
    """A row read back: ``data`` (R bytes, beats outside the row's mask undefined), ``tag``
    (the op's), ``first`` / ``last`` (the op's first / last row)."""
    return data.StructLayout({
        "data": 8 * g.row_bytes, "tag": TAG_BITS, "first": 1, "last": 1,
    })


def wrow_layout(g: Geometry) -> data.StructLayout:
    """A row to write: ``space`` (its op's), ``data`` (R bytes), ``strb`` (one bit per byte)."""
    return data.StructLayout({"space": Space, "data": 8 * g.row_bytes, "strb": g.row_bytes})


def cid_shape() -> Any:
    return unsigned(CLIENT_BITS)


def sop_layout(g: Geometry) -> data.StructLayout:
    """An op as a space sees it: :func:`op_layout`'s fields and the client ``cid``."""
    return data.StructLayout({**{k: f.shape for k, f in op_layout(g)}, "cid": cid_shape()})


def srow_layout(g: Geometry) -> data.StructLayout:
    """A row a space returns: :func:`rrow_layout`'s fields and the client ``cid``."""
    return data.StructLayout({**{k: f.shape for k, f in rrow_layout(g)}, "cid": cid_shape()})


def suffix_mask(k: Any, width: int) -> Any:
    """Beats ``k .. width-1`` (``k`` an Amaranth value)."""
    return Cat(Const(c, range(width + 1)) >= k for c in range(width))


def prefix_mask(k: Any, width: int) -> Any:
    """Beats ``0 .. k``."""
    return Cat(Const(c, range(width + 1)) <= k for c in range(width))


def row_mask(j: Any, nrows: Any, m0: Any, m1: Any, width: int) -> Any:
    """Beat mask of row ``j`` of an op (module doc), as an Amaranth value."""
    ones = (1 << width) - 1
    return Mux(j == 0, m0, ones) & Mux(j == nrows - 1, m1, ones)
