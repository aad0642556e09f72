"""``LinkModel``: one direction of a QSFP link on the core clock, for ring testbenches
(issue 11; docs/core.md "Router and ring"). Synthesisable (Verilator or Amaranth's simulator);
its randomness is an LFSR, so a seed gives the same stalls in both.

It takes beats on ``i`` (AXI4-Stream with TREADY) at most at the link's rate and delivers each
on ``o`` (valid-only, like Aurora's receive side) ``latency`` cycles after its serialisation
ends; it never loses, duplicates or reorders a beat. The rate is the router's
(:func:`dfx.rtl.router.link.beat_cycles` = num/q cycles per beat, >= 1): the link is free
again at time ``F`` (in 1/q cycles); in cycle c it takes a beat iff ``F < (c + 1)·q`` and
the LFSR does not stall the cycle; the beat's serialisation runs from ``max(F, c·q)`` to
``E = max(F, c·q) + num`` and it is valid on ``o`` in cycle ``ceil(E / q) + latency − 1``
(so ``c + latency`` at one beat per cycle). Back-to-back beats are therefore exact: n beats
offered from cycle c0 on an idle link without stalls end at ``c0·q + n·num``.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from dfx.rtl.router import Router, connect_ring
from dfx.rtl.router.link import LinkSignature, beat_cycles, link_bits, wire_cycles

__all__ = ["BENCH_CARDS", "BENCH_LATENCIES", "BENCH_STALL", "STALL_BITS", "LinkModel",
           "RouterRing", "stall_threshold"]

STALL_BITS = 16
"""Resolution of ``stall_prob``: a cycle stalls iff the LFSR's low 16 bits < prob·2^16."""

_TAPS = 0x80200003  # x^32 + x^22 + x^2 + x + 1 (Galois form): a maximal-length 32-bit LFSR


def stall_threshold(stall_prob: float) -> int:
    """The LFSR threshold that stalls ``stall_prob`` of the cycles (:data:`STALL_BITS`)."""
    return round(stall_prob * (1 << STALL_BITS))


class LinkModel(wiring.Component):
    """One link direction for core configuration ``core``: ``latency`` cycles (>= 1; module
    doc), TREADY low on a random ``stall_prob`` (0 <= p < 1) of cycles from a 32-bit LFSR
    seeded with ``seed`` (1 .. 2^32 − 1). Ports: ``i`` (in, with TREADY), ``o`` (out, no
    TREADY), ``link_bits`` wide. ``rate`` overrides the core's cycles per beat (a Fraction
    >= 1). ``max_latency``: the latency and stall probability are inputs instead
    (``set_latency``: 1 .. max_latency, ``set_threshold``: stall_prob·2^16), so one model
    serves any link up to that latency (``latency``/``stall_prob`` then only document the
    defaults the testbench drives)."""

    def __init__(self, core: Any, latency: int, stall_prob: float = 0.0, seed: int = 1, *,
                 rate: Fraction | None = None, max_latency: int | None = None):
        if not isinstance(latency, int) or isinstance(latency, bool) or latency < 1:
            raise ValueError(f"LinkModel: latency must be an integer >= 1, got {latency!r}")
        if not isinstance(stall_prob, int | float) or not 0 <= stall_prob < 1:
            raise ValueError(f"LinkModel: stall_prob must be a number in [0, 1), "
                             f"got {stall_prob!r}")
        if not isinstance(seed, int) or not 0 < seed < 1 << 32:
            raise ValueError(f"LinkModel: seed must be an integer in 1 .. 2^32 - 1, got {seed!r}")
        r = beat_cycles(core) if rate is None else Fraction(rate)
        if r < 1:
            raise ValueError(f"LinkModel: rate must be >= 1 core cycle per beat, got {r}")
        self._core, self._latency, self._seed = core, latency, seed
        self._stall_prob, self._rate = stall_prob, r
        self._threshold = stall_threshold(stall_prob)
        self._bits = link_bits(core)
        self._max_latency = max_latency
        if max_latency is not None and not (isinstance(max_latency, int)
                                            and latency <= max_latency):
            raise ValueError(f"LinkModel: max_latency must be an integer >= latency "
                             f"({latency}), got {max_latency!r}")
        self.full = Signal()  # sticky: a beat taken while the delivery queue was full (never)
        settings = {} if max_latency is None else {
            "set_latency": In(range(max_latency + 1)),
            "set_threshold": In(STALL_BITS + 1),
        }
        super().__init__({
            "i": In(LinkSignature(self._bits, ready=True)),
            "o": Out(LinkSignature(self._bits, ready=False)),
            **settings,
        })

    @classmethod
    def from_core(cls, core: Any, stall_prob: float = 0.0, seed: int = 1) -> LinkModel:
        """The board's link: ``latency`` = the link layer and cable in whole core cycles."""
        return cls(core, wire_cycles(core), stall_prob, seed)

    @property
    def latency(self) -> int:
        return self._latency

    @property
    def rate(self) -> Fraction:
        """Core cycles per beat."""
        return self._rate

    @property
    def stall_prob(self) -> float:
        return self._stall_prob

    @property
    def seed(self) -> int:
        return self._seed

    @property
    def threshold(self) -> int:
        """The stall threshold: a cycle stalls iff the LFSR's low bits are below it."""
        return self._threshold

    @property
    def max_delay(self) -> int:
        """Largest cycles from taking a beat to delivering it (no backlog)."""
        return (-(-self._rate.numerator // self._rate.denominator)
                + (self._max_latency or self._latency))

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        num, q = self._rate.numerator, self._rate.denominator
        k0 = -(-num // q)  # ceil(num / q)

        # rem = max(F - c·q, 0): how far into this cycle and beyond the link is still busy
        rem = Signal(range(q + num))
        lfsr = Signal(32, init=self._seed)
        m.d.sync += lfsr.eq((lfsr >> 1) ^ (_TAPS * lfsr[0]))
        stall = Signal()
        runtime = self._max_latency is not None
        threshold = self.set_threshold if runtime else self._threshold
        latency = self.set_latency if runtime else self._latency
        m.d.comb += stall.eq(lfsr[:STALL_BITS] < threshold)
        take = Signal()
        m.d.comb += [self.i.tready.eq((rem < q) & ~stall),
                     take.eq(self.i.tvalid & self.i.tready)]
        with m.If(take):
            m.d.sync += rem.eq(rem + num - q)
        with m.Elif(rem >= q):
            m.d.sync += rem.eq(rem - q)
        with m.Else():
            m.d.sync += rem.eq(0)

        # delivery: ceil(E / q) - 1 + latency cycles after the take, E = rem + num (from c·q)
        depth = self.max_delay + 1
        tw = max(depth, 2).bit_length() + 1
        now = Signal(tw)
        m.d.sync += now.eq(now + 1)
        off = Signal(tw)
        m.d.comb += off.eq(k0 - 1 + latency)
        with m.If(rem + num > k0 * q):
            m.d.comb += off.eq(k0 + latency)
        m.submodules.fly = fly = SyncFIFO(width=self._bits + tw, depth=depth)
        due = Signal(tw)
        m.d.comb += [due.eq(now + off),
                     fly.w_en.eq(take), fly.w_data.eq(Cat(self.i.tdata, due))]
        head_due = fly.r_data[self._bits:]
        out = Signal()
        m.d.comb += [out.eq(fly.r_rdy & (head_due == now)),
                     fly.r_en.eq(out),
                     self.o.tvalid.eq(out), self.o.tdata.eq(fly.r_data[:self._bits])]
        with m.If(take & ~fly.w_rdy):
            m.d.sync += self.full.eq(1)
        return m


BENCH_CARDS = 4
"""The router unit bench's ring (``dfx regress --bench router``): 4 cards, ..."""
BENCH_LATENCIES = (1, 64, 29, 2, 64, 7, 3, 33)
"""... link latencies from 1 to 64 (data and credit link of each card), ..."""
BENCH_STALL = 0.25
"""... TREADY low on a quarter of the cycles."""


class RouterRing(wiring.Component):
    """The router unit bench's top: ``n`` routers of ``core`` in a ring through ``2n``
    :class:`LinkModel`s (data link c: card c -> c + 1, credit link c: back; ``latencies[k]``
    and seed ``seed + k`` for link k = 2c (data) or 2c + 1 (credits)). Ports: ``tx_in[c]``
    and ``rx_out[c]`` (card c's core side) and ``error`` (sticky: a receive FIFO overflowed or
    a link model's queue filled; never)."""

    def __init__(self, core: Any, n: int, latencies: list[int] | tuple[int, ...],
                 stall_prob: float = 0.0, seed: int = 1):
        if not isinstance(n, int) or n < 2:
            raise ValueError(f"RouterRing: n must be an integer >= 2, got {n!r}")
        if len(latencies) != 2 * n:
            raise ValueError(f"RouterRing: latencies needs 2n = {2 * n} entries (data and "
                             f"credit link of each card), got {len(latencies)}")
        self.routers = [Router(core) for _ in range(n)]
        self.links = [LinkModel(core, lat, stall_prob, (seed + k - 1) % ((1 << 32) - 1) + 1)
                      for k, lat in enumerate(latencies)]
        vec = stream.Signature(data.ArrayLayout(16, core.d))
        self._n = n
        super().__init__({"tx_in": In(vec).array(n), "rx_out": Out(vec).array(n),
                          "error": Out(1)})

    @classmethod
    def from_core(cls, core: Any) -> RouterRing:
        """The router unit bench's ring (``BENCH_*``)."""
        return cls(core, BENCH_CARDS, BENCH_LATENCIES, BENCH_STALL, seed=3)

    @property
    def n(self) -> int:
        return self._n

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        for c, r in enumerate(self.routers):
            m.submodules[f"router{c}"] = r
            wiring.connect(m, wiring.flipped(self.tx_in[c]), r.tx_in)
            wiring.connect(m, r.rx_out, wiring.flipped(self.rx_out[c]))
        for k, lk in enumerate(self.links):
            m.submodules[f"link{k}"] = lk
        connect_ring(m, self.routers, [(self.links[2 * c], self.links[2 * c + 1])
                                       for c in range(self._n)])
        bad = Signal()
        m.d.comb += bad.eq(Cat(*(r.overflow for r in self.routers),
                               *(lk.full for lk in self.links)).any())
        with m.If(bad):
            m.d.sync += self.error.eq(1)
        return m
