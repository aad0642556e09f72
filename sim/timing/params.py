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
class LutParams:
    """The LUT-GEMM unit (``core.lutgemm``, docs/timing.md "LUT-GEMM unit"), in cycles. The
    stages and their registers follow ``rtl/lutgemm/top.py`` (checked cycle for cycle against
    its Amaranth simulation in tests/sim/timing/test_lut.py)."""

    lanes: int  # row lanes; each takes one lane word (slice sign bits) per cycle
    slice: int  # inputs per lane word (mu * keys)
    scalers: int  # shared FP32 scale units (one op per cycle each)
    build: int  # table builder latency
    lookup: int  # lane word -> partial group sum written
    scale: int  # scaler op issue -> rounded row accumulator (1 + mul + add + convert)
    max_q: int
    max_rows: int
    max_group: int

    @property
    def first_lookup(self) -> int:
        """Cycles from the builder's read of a slice of x to the lanes' first look-up in its
        tables: the builder, then the table-buffer register."""
        return self.build + 1

    def lane_cycles(self, n: int, gs: int, q: int) -> int:
        """Lane cycles of one group: gs slices x q planes x ceil(n / lanes) row batches."""
        return gs * q * -(-n // self.lanes)

    def scaler_cycles(self, n: int, q: int) -> int:
        """Scale-stage cycles of one group: scaler j owns the row chunks ``c * scalers + j``;
        for each of the ``ceil(n / scalers)`` chunks it issues the q + 1 terms (alpha_b * P[G,
        b], then z * X[G]) on consecutive cycles. The terms add exactly into a fixed-point row
        accumulator (docs/lutgemm.md), so ops on one row need no spacing."""
        return (q + 1) * -(-n // self.scalers)

    def result(self, group_end: int, n: int) -> int:
        """When the accumulators of a group whose scale ops end at ``group_end`` have all left
        the unit: the last op (cycle ``group_end - 1``), the scaler pipeline, the output
        register (the MPU epilogue comes after)."""
        return group_end - 1 + self.scale + 1

    def schedule(self, lanes_at: int, n: int, gs: int, q: int, arrivals: list[int],
                 banks: tuple[int, int]) -> tuple[int, list[int], tuple[int, int]]:
        """The groups of one or more lutmv streams through the lanes and the scale stage.

        ``lanes_at``: the earliest first look-up (tables built, the previous instruction's
        lanes done); ``arrivals``: per group, the cycle its stream section is in; ``banks``:
        when the scale stage finished the last two groups before (the partial-sum banks they
        hold are free then). Group G's lanes start when group G-1's are done and its bank is
        free, and end no earlier than its data; its scale rounds start ``lookup`` after its
        lanes end, once the stage has finished group G-1. Returns (lanes done, per group the
        end of its scale rounds, the new ``banks``)."""
        lane, sc, lk = self.lane_cycles(n, gs, q), self.scaler_cycles(n, q), self.lookup
        s2, s1 = banks
        lane_end = lanes_at
        ends = []
        for arr in arrivals:
            le = (lane_end if lane_end > s2 else s2) + lane
            lane_end = le if le > arr else arr
            ss = lane_end + lk
            if s1 > ss:
                ss = s1
            s2, s1 = s1, ss + sc
            ends.append(s1)
        return lane_end, ends, (s2, s1)


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
    sfu_m: int
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
        sfu_m=mpu.sfu_latency,
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
        lanes=c.lanes, slice=c.slice, scalers=c.scalers, build=c.build_latency,
        lookup=c.lookup_latency,
        scale=1 + c.mul_latency + c.add_latency + c.convert_latency,
        max_q=c.max_q, max_rows=c.max_rows, max_group=c.max_group)
