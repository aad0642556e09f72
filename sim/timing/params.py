"""Cycle-level parameters of the timing model, derived from one core configuration.

Every number the timing simulator uses comes from :class:`~dfx.isa.config.CoreConfig` (and the
board under it) through this module; nothing is hard-coded elsewhere. The latencies and
schedule figures of the MPU, VPU and LUT-GEMM unit are read from the RTL components themselves
(:func:`rtl_timing`), the rest from the configuration. Times are integers in
core clock cycles (``core.clock_mhz``). Rates that are not whole numbers (bytes per cycle of a
memory channel, cycles per vector on a ring link) are kept as exact fractions ``num / den`` so
that every derived time is an exact integer (rounded up where a transfer ends mid-cycle).
docs/timing.md explains each derivation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from dfx.isa.config import CoreConfig
from dfx.rtl.router import link

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
class MemParams:
    """The memory system (``rtl/dma``) in cycles: geometry, queue depths and the fixed
    latencies of its clients (``MemorySystem`` properties), read by :func:`_read_rtl`."""

    ports: int  # HBM AXI ports (pseudo-channels), C
    beat_bytes: int  # AXI beat, W
    row_bytes: int  # R = C * W: one d x l tile
    block_rows: dict[str, int]  # an op never crosses a multiple of this many rows
    op_depth: int  # each AXI port's op queue
    order_depth: int  # claims (commands) per space waiting or in service
    credits: dict[str, int]  # read beats in flight per AXI port (R buffer)
    cmd_to_op: dict[str, int]  # a client's command accepted -> its first op presented
    r_to_row: int  # an R beat (handshake) -> its row at the client
    row_to_vector: int  # a row at the client -> the unit cut from it (Extractor)
    place_latency: int  # a store unit taken -> its first write row (Placer)
    b_to_done: dict[str, int]  # a write's last B response (wbuf: last row) -> done / sw resp
    load_done: int  # a load's last vector taken -> dma_done
    wbuf_latency: int  # a weight-buffer row read issued -> the row at the client
    dma_cmd_depth: int  # DMA commands waiting for the address side
    dma_done_depth: int  # DMA commands not yet done
    dma_place_depth: int  # store units generated ahead of their data
    wdata_depth: int  # write ops waiting for their data, per space
    ws_cmd_depth: int  # weight-stream commands waiting
    lut_cmd_depth: int  # LUT-stream commands waiting
    word_depth: int  # lw/sw requests in flight in the word port


@dataclass(frozen=True)
class Params:
    """Everything the timing model needs, in cycles (see the module docstring)."""

    clock_mhz: float
    # controller (rtl/controller ControlUnit.from_core(core))
    issue: int
    branch_penalty: int
    first_fire: int  # first fetch -> instruction 0 fires, at the earliest
    int_latency: int
    lw_delay: int  # a lw response -> its register available
    rd_delay: int  # the core's rd_write (vargmax) -> the register available
    outstanding: int  # lw/sw requests in flight
    loop_depth: int
    # issue (rtl/issue, rtl/core/backend.py)
    queue: int  # commands waiting per unit (RegFifo, readable the cycle after the push)
    sb_writers: int  # scoreboard writer entries
    sb_readers: int  # scoreboard reader entries (an instruction with sources takes two)
    # unit ports (rtl/core)
    vpu_slots: int  # VpuPort: vectors read ahead of the VPU
    vpu_cmds: int  # VpuPort: VPU commands queued between the reader and the VPU
    vpu_vdests: int  # VpuPort: vector-result commands in flight
    vpu_sdests: int  # VpuPort: scalar-result commands in flight
    mpu_slots: int  # MpuPort: x vectors read ahead of their tiles
    mpu_outs: int  # MpuPort: instructions whose outputs are not all written
    lut_slots: int  # LutPort: x vectors read ahead
    lut_outs: int  # LutPort: instructions whose outputs are not all written
    store_slots: int  # VectorMover: vectors read ahead of the store stream
    # geometry
    d: int
    l: int  # noqa: E741 - the paper's name
    tile_bytes: int
    vector_bytes: int
    group: int  # output tiles per output vector (d // l, at least 1)
    vectors_per_tile: int  # output vectors per output tile (l // d, at least 1)
    # MPU (rtl/mpu Mpu.from_core(core))
    zigzag: int  # output tiles per zig-zag block (Mpu.interleave)
    accumulate: int  # reduction steps of one output tile at least this far apart (add_latency)
    fill: int  # tile in -> the output vector it completes valid (Mpu.latency)
    max_tail: int  # a command's last output vector -> its row maximum (rowmax - latency)
    mpu_bias: int  # a group's bias in -> the vector it completes, at the earliest
    mpu_epilogue: int  # FP32 sums into SFU_M -> their output vector (the LUT unit's results)
    # VPU (rtl/vpu Vpu.from_core(core)); op mnemonic -> cycles
    vpu_latency: dict[str, int]  # element-wise: vector in -> its result out
    vpu_result: dict[str, int]  # reductions (from the last vector in) and scalar ops
    vpu_empty: int  # a reduction of n = 0 vectors: its one cycle -> result
    sli: int  # sli writes the SRF (not a VPU operation in rtl/vpu): vpu.bypass_latency
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
    mem: MemParams | None = None
    rowmax: int = 0  # MPU: last tile accepted -> the row maximum valid (Mpu.rowmax_latency)
    lut_epilogue: int = 0  # LutPort: a group of rows into the epilogue -> its vector written
    lut_epilogue_lanes: int = 0  # LutPort: rows the epilogue takes per cycle
    lut: LutParams | None = None  # the LUT-GEMM unit (None: the core has none)

    # register FIFOs (their depths) between the core's tx/rx streams and the router, each way:
    # none on the board (rtl/board/top.py); the Verilator card (rtl/tb/core_top.py) has one
    # Fifo2 each way. Not a property of the core: the assembly the model describes.
    stream_fifos: tuple[int, ...] = ()

    @property
    def hop(self) -> int:
        """Cycles from the end of a vector's serialisation (its last beat's, rounded up) to its
        ``rx_out`` valid with the receive FIFO empty: the link's ``latency − 1`` (the link
        model delivers in ``ceil(E) + latency − 1``) plus the receiver's router latency
        (rtl/router/timing.py ``DataLane``)."""
        return self.wire - 1 + self.router_latency


def derive(core: CoreConfig) -> Params:
    """The timing parameters of ``core`` on its board (docs/timing.md, "Parameters")."""
    b = core.b
    clk = _frac(core.clock_mhz)
    t = core.timing
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
    vector_bits = 16 * core.d
    # cycles per vector on a link: its beats x cycles per beat (payload = line rate x 64/66),
    # the router's own figure (rtl/router/link.py: one source for the RTL and the model)
    ser = link.vector_beats(core) * link.beat_cycles(core)
    rtl = rtl_timing(core)
    return Params(
        clock_mhz=core.clock_mhz,
        issue=rtl["issue_cycles"],
        branch_penalty=rtl["branch_penalty"],
        first_fire=rtl["first_fire"],
        int_latency=rtl["int_latency"],
        lw_delay=rtl["lw_delay"],
        rd_delay=rtl["rd_delay"],
        outstanding=rtl["outstanding"],
        loop_depth=core.control.loop_depth,
        queue=rtl["queue"],
        sb_writers=rtl["sb_writers"],
        sb_readers=rtl["sb_readers"],
        vpu_slots=rtl["vpu_slots"],
        vpu_cmds=rtl["vpu_cmds"],
        vpu_vdests=rtl["vpu_vdests"],
        vpu_sdests=rtl["vpu_sdests"],
        mpu_slots=rtl["mpu_slots"],
        mpu_outs=rtl["mpu_outs"],
        lut_slots=rtl["lut_slots"],
        lut_outs=rtl["lut_outs"],
        store_slots=rtl["store_slots"],
        d=core.d,
        l=core.l,
        tile_bytes=core.tile_bytes,
        vector_bytes=core.vector_bytes,
        group=max(1, core.d // core.l),
        vectors_per_tile=max(1, core.l // core.d),
        zigzag=rtl["mpu_interleave"],
        accumulate=rtl["mpu_add"],
        fill=rtl["mpu_latency"],
        max_tail=rtl["mpu_rowmax_latency"] - rtl["mpu_latency"],
        mpu_bias=rtl["mpu_bias_latency"],
        mpu_epilogue=rtl["mpu_epilogue_latency"],
        vpu_latency=dict(rtl["vpu_latency"]),
        vpu_result=dict(rtl["vpu_result"]),
        vpu_empty=rtl["vpu_empty"],
        sli=core.vpu.bypass_latency,
        hbm=hbm,
        ddr=ddr,
        wbuf=wbuf,
        fifo=core.buffers.router_fifo_vectors,
        router_latency=t.router_latency,
        vector_bits=vector_bits,
        ser_num=ser.numerator,
        ser_den=ser.denominator,
        wire=link.wire_cycles(core),
        srf=core.buffers.srf_scalars,
        vrf=core.buffers.vrf_vectors,
        mem=rtl["mem"],
        rowmax=rtl["mpu_rowmax_latency"],
        lut_epilogue=rtl["lut_epilogue"],
        lut_epilogue_lanes=rtl["lut_epilogue_lanes"],
        lut=rtl["lut"],
    )


_RTL_CACHE: dict[str, dict[str, Any]] = {}


def rtl_timing(core: CoreConfig) -> dict[str, Any]:
    """The timing figures of the RTL units of ``core``, read from the components themselves
    (``Mpu.from_core``, ``Vpu.from_core``, ``LutGemm.from_core``: constructed, never
    elaborated), so that the model and the hardware cannot disagree (docs/timing.md,
    "Parameters"). Cached per unit configuration (construction builds the function tables)."""
    key = repr((core.d, core.l, core.mpu, core.vpu, core.tables, core.lutgemm, core.timing,
                core.buffers, core.control, core.clock_mhz, core.b))
    hit = _RTL_CACHE.get(key)
    if hit is None:
        hit = _RTL_CACHE[key] = _read_rtl(core)
    return hit


def _read_rtl(core: CoreConfig) -> dict[str, Any]:
    from amaranth.hdl import Elaboratable

    from dfx.rtl.controller.unit import ControlUnit
    from dfx.rtl.core import backend, lut_port, mover, mpu_port, vpu_port
    from dfx.rtl.dma.geometry import MEM_SPACES
    from dfx.rtl.dma.system import MemorySystem
    from dfx.rtl.issue.issue import Issue
    from dfx.rtl.lutgemm import LutGemm
    from dfx.rtl.mpu import Mpu
    from dfx.rtl.vpu import Vpu, VpuOp

    mpu, vpu = Mpu.from_core(core), Vpu.from_core(core)
    lut = LutGemm.from_core(core) if core.lutgemm is not None else None
    cu = ControlUnit.from_core(core)
    from dfx.rtl.issue.issue import command_layout

    cmd = command_layout(core, backend.WRITERS, backend.READERS)
    sb = {"writers": backend.WRITERS, "readers": backend.READERS}
    vport = vpu_port.VpuPort(core, cmd, vpu=vpu, **sb)
    mport = mpu_port.MpuPort(core, cmd, mpu=mpu, **sb)
    mov = mover.VectorMover(core, cmd, reads={}, writes={}, elements=False, **sb)
    lport = None
    if lut is not None:
        lport = lut_port.LutPort(core, cmd, lut=lut, **sb)
    issue = Issue(core, **sb)
    ms = MemorySystem.from_core(core)
    g = ms.geometry
    fab = ms.fabric
    names = {s: s.name.lower() for s in MEM_SPACES}
    scalar = [op for op in VpuOp if op.name.startswith("S")]
    reductions = [VpuOp.VACC, VpuOp.VACCSQ, VpuOp.VMAX, VpuOp.VARGMAX]
    out = {
        "mpu_interleave": mpu.interleave,
        "mpu_add": mpu.add_latency,
        "mpu_latency": mpu.latency,
        "mpu_rowmax_latency": mpu.rowmax_latency,
        "mpu_bias_latency": mpu.bias_latency,
        "mpu_epilogue_latency": mpu.epilogue_latency,
        "vpu_latency": {op.name.lower(): lat for op, lat in vpu.latencies.items()},
        "vpu_result": {op.name.lower(): vpu.result_latency(op) for op in reductions + scalar},
        "vpu_empty": vpu.empty_result_latency,
        "lut": None if lut is None else LutParams.from_rtl(lut),
        # the control unit
        "issue_cycles": cu.issue_cycles, "branch_penalty": cu.branch_penalty,
        "first_fire": cu.first_fire_delay, "int_latency": cu.int_latency,
        "lw_delay": cu.lw_result_delay, "rd_delay": cu.rd_write_delay,
        "outstanding": cu.mem_outstanding,
        # issue and the scoreboard
        "queue": issue.queue_depth, "queue_latency": issue.queue_latency,
        "sb_writers": backend.WRITERS, "sb_readers": backend.READERS,
        # the unit ports
        "vpu_slots": vport.operand_slots, "vpu_cmds": vport.command_slots,
        "vpu_vdests": vport.vector_dests, "vpu_sdests": vport.scalar_dests,
        "mpu_slots": mport.x_slots, "mpu_outs": mport.out_depth,
        "lut_slots": lut_port.X_SLOTS if lport is None else lport.x_slots,
        "lut_outs": lut_port.OUT_DEPTH if lport is None else lport.out_depth,
        "store_slots": mov.store_slots,
        "lut_epilogue": 0 if lport is None else lport.epilogue_latency,
        "lut_epilogue_lanes": 0 if lport is None else lport.epilogue_lanes,
        # the memory system
        "mem": MemParams(
            ports=g.channels, beat_bytes=g.beat_bytes, row_bytes=g.row_bytes,
            block_rows={names[s]: g.block_rows(s) for s in MEM_SPACES},
            op_depth=fab.spaces["hbm"].op_depth, order_depth=fab.order_depth,
            credits={"hbm": g.read_credits, "ddr": g.ddr_credits},
            cmd_to_op=dict(ms.cmd_to_op), r_to_row=ms.r_to_row,
            row_to_vector=ms.row_to_vector, place_latency=ms.dma.place_latency,
            b_to_done=dict(ms.write_to_done),
            load_done=ms.load_done, wbuf_latency=ms.op_to_wbuf_row - 1,
            dma_cmd_depth=ms.dma.cmd_depth, dma_done_depth=ms.dma.done_depth,
            dma_place_depth=ms.dma.place_depth, wdata_depth=fab.spaces["hbm"].wdata_depth,
            ws_cmd_depth=ms.weights.cmd_depth,
            lut_cmd_depth=0 if ms.lut_stream is None else ms.lut_stream.cmd_depth,
            word_depth=ms.word.depth),
    }

    def used(obj: Any, seen: set[int]) -> None:
        # the components stand for the hardware's figures only: no "created but never used"
        # warning for them or their sub-blocks
        if id(obj) in seen:
            return
        seen.add(id(obj))
        if isinstance(obj, Elaboratable):
            obj._MustUse__used = True  # type: ignore[attr-defined]
            for v in vars(obj).values():
                used(v, seen)
        elif isinstance(obj, (list, tuple)):
            for v in obj:
                used(v, seen)
        elif isinstance(obj, dict):
            for v in obj.values():
                used(v, seen)

    used([mpu, vpu, lut, cu, issue, ms, lport, vport, mport, mov], set())
    return out
