"""Cycle-level parameters of the timing model, derived from one core configuration.

Every number the timing simulator uses comes from :class:`~dfx.isa.config.CoreConfig` (and the
board under it) through this module; nothing is hard-coded elsewhere. Times are integers in
core clock cycles (``core.clock_mhz``). Rates that are not whole numbers (bytes per cycle of a
memory channel, cycles per vector on a ring link) are kept as exact fractions ``num / den`` so
that every derived time is an exact integer (rounded up where a transfer ends mid-cycle).
docs/timing.md explains each derivation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from dfx.isa.config import CoreConfig

from .lutgemm import LutParams


def _frac(x: float | int) -> Fraction:
    """A configuration number as an exact fraction of its decimal text (0.924 -> 231/250)."""
    return Fraction(str(x)) if isinstance(x, float) else Fraction(x)


def ns_to_cycles(ns: float, clock_mhz: float) -> int:
    """Whole core cycles covering ``ns`` nanoseconds (rounded up)."""
    return math.ceil(_frac(ns) * _frac(clock_mhz) / 1000)


@dataclass(frozen=True, eq=False)  # hashed by identity: a cache key in memory.py
class Channels:
    """A memory with ``n`` independent channels (HBM pseudo-channels, DDR channels, the weight
    buffer) as the DMA sees it.

    ``granule`` bytes is the unit of access: a transfer costs every granule it touches in full.
    A channel moves ``rate_num / rate_den`` bytes per core cycle; the first data of a read
    arrives ``latency`` cycles after the request; a channel that switches between reading and
    writing loses ``turnaround`` cycles. Address ``a`` is in channel ``(a // interleave) % n``
    (``interleave`` set) or ``a // channel_bytes`` (``channel_bytes`` set).
    """

    name: str
    n: int
    granule: int
    rate_num: int
    rate_den: int
    latency: int
    turnaround: int
    interleave: int | None = None
    channel_bytes: int | None = None

    def cycles(self, granules: int) -> int:
        """Cycles to move ``granules`` granules through one channel."""
        return -(-granules * self.granule * self.rate_den // self.rate_num)

    @property
    def bytes_per_cycle(self) -> Fraction:
        return Fraction(self.rate_num, self.rate_den)

    @property
    def period(self) -> int:
        """Address period of the channel mapping (``interleave * n``; 0 if linear)."""
        return self.interleave * self.n if self.interleave else 0


@dataclass(frozen=True)
class Params:
    """Everything the timing model needs, in cycles (see the module docstring)."""

    clock_mhz: float
    # controller
    issue: int
    branch_penalty: int
    int_latency: int
    queue: int
    loop_depth: int
    # geometry
    d: int
    l: int  # noqa: E741 - the paper's name
    tile_bytes: int
    vector_bytes: int
    group: int  # output tiles per output vector (d // l, at least 1)
    zigzag: int  # output tiles per zig-zag group (whole vectors covering the add latency)
    vectors_per_tile: int  # output vectors per output tile (l // d, at least 1)
    # MPU
    fill: int  # first tile in -> its output vector available
    max_tail: int  # last output -> MaskedMM row maximum available
    accumulate: int  # bias add after the last partial sum (= mpu.add_latency)
    mpu_bias: int
    mpu_epilogue: int
    lut_bias: int
    # VPU
    vpu_add: int
    vpu_mul: int
    vpu_square: int
    vpu_bypass: int
    vpu_scalar: int
    vpu_table: int
    vpu_compare: int
    acc_tree: int  # vacc/vaccsq: FP32 -> fixed point and integer adder tree over one vector
    acc_add: int  # the wide exact accumulator (one vector per cycle)
    acc_convert: int  # the final rounding of the accumulator to FP32
    cmp_tree: int  # d -> 1 comparator tree of vmax/vargmax
    # memories
    hbm: Channels
    ddr: Channels
    wbuf: Channels
    # ring
    fifo: int
    router_latency: int
    vector_bits: int
    ser_num: int  # cycles per vector on a link = ser_num / ser_den
    ser_den: int
    wire: int  # link layer + cable, cycles
    srf: int
    vrf: int
    lut: LutParams | None = None  # the LUT-GEMM unit (None: the core has none)

    @property
    def acc_drain(self) -> int:
        """vacc/vaccsq: cycles from the last vector entering the adder tree to the FP32 result
        (tree, wide accumulate, rounding; docs/timing.md, "VPU")."""
        return self.acc_tree + self.acc_add + self.acc_convert

    @property
    def hop(self) -> int:
        """Cycles from the end of a vector's serialisation to its arrival in the receive FIFO."""
        return self.wire + self.router_latency

    @property
    def credit_latency(self) -> int:
        """Cycles from a receiver popping a vector to its sender seeing the freed FIFO slot."""
        return self.wire + self.router_latency


def derive(core: CoreConfig) -> Params:
    """The timing parameters of ``core`` on its board (docs/timing.md, "Parameters")."""
    b = core.b
    clk = _frac(core.clock_mhz)
    t = core.timing
    mpu, vpu = core.mpu, core.vpu
    port = Fraction(t.dma_port_bits, 8)  # bytes per cycle per channel

    def rate(gbs: float, eff: float) -> Fraction:
        # GB/s -> bytes per core cycle: x * 1e9 / (clock_mhz * 1e6)
        return min(port, _frac(gbs) * _frac(eff) * 1000 / clk)

    hr = rate(b.hbm.pc_bandwidth_gbs, b.hbm.efficiency)
    hbm = Channels(
        "hbm", b.hbm.pseudo_channels, b.hbm.interleave_bytes, hr.numerator, hr.denominator,
        ns_to_cycles(b.hbm.read_latency_ns, core.clock_mhz),
        ns_to_cycles(b.hbm.turnaround_ns, core.clock_mhz), interleave=b.hbm.interleave_bytes)
    dr = rate(b.ddr.channel_bandwidth_gbs, b.ddr.efficiency)
    ddr = Channels(
        "ddr", b.ddr.channels, b.ddr.burst_bytes, dr.numerator, dr.denominator,
        ns_to_cycles(b.ddr.read_latency_ns, core.clock_mhz), 0,
        channel_bytes=b.ddr.channel_capacity_bytes)
    wbuf = Channels("wbuf", 1, core.vector_bytes, core.tile_bytes, 1, t.wbuf_latency, 0,
                    channel_bytes=core.buffers.wbuf_tiles * core.tile_bytes)
    q = b.qsfp
    vector_bits = 16 * core.d
    # cycles per vector = bits / (payload bits per cycle), payload = line rate x 64/66
    ser = (Fraction(vector_bits) * clk * q.encoding_line_bits
           / (_frac(q.line_rate_gbps) * 1000 * q.encoding_payload_bits))
    depth = int(math.log2(mpu.d))
    return Params(
        clock_mhz=core.clock_mhz,
        issue=t.issue_cycles,
        branch_penalty=t.branch_penalty,
        int_latency=t.int_latency,
        queue=t.unit_queue,
        loop_depth=core.control.loop_depth,
        d=core.d,
        l=core.l,
        tile_bytes=core.tile_bytes,
        vector_bytes=core.vector_bytes,
        group=max(1, core.d // core.l),
        zigzag=max(1, core.d // core.l) * -(-mpu.add_latency // max(1, core.d // core.l)),
        vectors_per_tile=max(1, core.l // core.d),
        fill=mpu.mul_latency + depth * mpu.add_latency + mpu.add_latency + mpu.sfu_latency,
        max_tail=(int(math.log2(mpu.l)) + 1) * vpu.compare_latency,
        accumulate=mpu.add_latency,
        mpu_bias=mpu.add_latency + mpu.sfu_latency,
        mpu_epilogue=mpu.sfu_latency,
        lut_bias=mpu.sfu_latency,
        vpu_add=vpu.add_latency,
        vpu_mul=vpu.mul_latency,
        vpu_square=vpu.square_latency,
        vpu_bypass=vpu.bypass_latency,
        vpu_scalar=vpu.scalar_latency,
        vpu_table=vpu.table_latency,
        vpu_compare=vpu.compare_latency,
        acc_tree=vpu.acc_tree_latency,
        acc_add=vpu.acc_add_latency,
        acc_convert=vpu.acc_convert_latency,
        cmp_tree=depth * vpu.compare_latency,
        hbm=hbm,
        ddr=ddr,
        wbuf=wbuf,
        fifo=core.buffers.router_fifo_vectors,
        router_latency=t.router_latency,
        vector_bits=vector_bits,
        ser_num=ser.numerator,
        ser_den=ser.denominator,
        wire=ns_to_cycles(q.link_latency_ns + q.cable_delay_ns, core.clock_mhz),
        srf=core.buffers.srf_scalars,
        vrf=core.buffers.vrf_vectors,
        lut=_lut(core),
    )


def _lut(core: CoreConfig) -> LutParams | None:
    c = core.lutgemm
    if c is None:
        return None
    return LutParams(
        lanes=c.lanes, slice=c.slice, scalers=c.scalers, first_lookup=c.build_latency + 1,
        handover=c.lookup_latency + 1,
        result_latency=1 + c.mul_latency + c.add_latency + c.convert_latency + 1,
        max_q=c.max_q, max_rows=c.max_rows, max_group=c.max_group)
