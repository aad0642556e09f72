"""The QSFP link as the router sees it on the core clock (docs/core.md "Router and ring"):
its beat width, its rate and the AXI4-Stream-shaped port signature. One source for the router
(:mod:`.router`), the testbench's link model (:mod:`dfx.rtl.tb.link_model`) and the timing
model (``sim/timing/params.py``).

The link core (Aurora 64B/66B on the U280, DFX §1.3) gives user logic ``qsfp.user_bits`` of
TDATA at the link clock. The board wrapper crosses to the core clock and converts widths, so
the router sees ``link_bits`` = the smallest multiple of ``user_bits`` that carries the link's
payload rate in one core cycle (the core side is never the bottleneck): U280 at 200 MHz,
100 Gb/s x 64/66 = 484.8 bits per cycle -> 512 bits (2 Aurora beats); tiny: 97.0 -> 128.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["LinkSignature", "beat_cycles", "link_bits", "link_clock_mhz", "payload_bits_per_cycle",
           "vector_beats", "wire_cycles"]


def _frac(x: float | int) -> Fraction:
    """A configuration number as an exact fraction of its decimal text (0.924 -> 231/250)."""
    return Fraction(str(x)) if isinstance(x, float) else Fraction(x)


def payload_bits_per_cycle(core: Any) -> Fraction:
    """Payload bits the link carries per core cycle: line rate x encoding / core clock."""
    q = core.b.qsfp
    return (_frac(q.line_rate_gbps) * 1000 * q.encoding_payload_bits
            / (_frac(core.clock_mhz) * q.encoding_line_bits))


def link_bits(core: Any) -> int:
    """TDATA bits of one link beat on the core clock (module doc)."""
    u = core.b.qsfp.user_bits
    return u * max(1, math.ceil(payload_bits_per_cycle(core) / u))


def beat_cycles(core: Any) -> Fraction:
    """Core cycles one ``link_bits`` beat occupies the link (>= 1 by construction of
    :func:`link_bits`): the link takes beats at exactly this average rate."""
    return Fraction(link_bits(core)) / payload_bits_per_cycle(core)


def vector_beats(core: Any) -> int:
    """Link beats per d-vector of FP16 (16·d bits, the last beat zero-padded)."""
    return -(-16 * core.d // link_bits(core))


def wire_cycles(core: Any) -> int:
    """Whole core cycles of the link layer and cable (``link_latency_ns + cable_delay_ns``)."""
    q = core.b.qsfp
    return math.ceil((_frac(q.link_latency_ns) + _frac(q.cable_delay_ns))
                     * _frac(core.clock_mhz) / 1000)


class LinkSignature(wiring.Signature):
    """One direction of a QSFP port, AXI4-Stream-shaped, from the transmitter's side:
    ``tdata`` (``bits``), ``tvalid`` and, when ``ready``, ``tready`` (a transmit user
    interface); without ``ready`` it is a receive user interface (Aurora's has no TREADY: the
    receiver takes every beat in the cycle it is valid)."""

    def __init__(self, bits: int, *, ready: bool):
        if not isinstance(bits, int) or bits < 1:
            raise ValueError(f"LinkSignature: bits must be a positive integer, got {bits!r}")
        self._bits, self._ready = bits, bool(ready)
        members = {"tdata": Out(bits), "tvalid": Out(1)}
        if ready:
            members["tready"] = In(1)
        super().__init__(members)

    @property
    def bits(self) -> int:
        return self._bits

    @property
    def ready(self) -> bool:
        return self._ready

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, LinkSignature) and other.bits == self.bits
                and other.ready == self.ready)

    def __hash__(self) -> int:
        return hash((self._bits, self._ready))

    def __repr__(self) -> str:
        return f"LinkSignature({self._bits}, ready={self._ready})"


def link_clock_mhz(core: Any, bits: int) -> int:
    """The link clock ``ap_clk_2`` of the kernel (docs/u280.md): the lowest whole MHz at which
    one ``bits``-wide link beat per cycle carries the link's payload rate
    (``qsfp.line_rate_gbps`` · the encoding's payload / line bits), rounded up."""
    q = core.b.qsfp
    payload = q.line_rate_gbps * q.encoding_payload_bits / q.encoding_line_bits
    return math.ceil(payload * 1000 / bits - 1e-9)
