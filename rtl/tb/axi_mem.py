"""The HBM / DDR memory model of the core testbench: AXI4 subordinates whose timing is exactly
the timing model's channel semantics (docs/timing.md "Memory channels";
:class:`dfx.sim.timing.memory.Port`), with a fast back door (docs/core.md "Memory system").

:class:`AxiMemory` is one channel (one HBM pseudo-channel, or the DDR port), cycle by cycle:

* **order**: AR and AW requests enter one queue (``queue_depth`` deep; at most one request per
  cycle: when AR and AW are both valid, AW is taken and AR waits a cycle) and are served in
  arrival order, one at a time; a read queued behind a write starts after it.
* **read**: accepted (AR handshake) in cycle q, its first beat is valid in cycle
  ``d0 = max(q + latency, channel free, turnaround)`` (and >= q + 1), beat k no earlier than
  ``d0 + ceil(k * beat_bytes / rate)``; ``rvalid`` stays high until taken.
* **write**: its first W beat is accepted in cycle ``w0 = max(first cycle W is valid, AW
  accepted + 1, channel free, turnaround)``, beat k no earlier than
  ``w0 + ceil(k * beat_bytes / rate)``; the data is written as each beat is accepted.
* **free**: after ``ceil(beats * beat_bytes / rate)`` cycles from its first beat (rate =
  ``rate_num / rate_den`` bytes per cycle, exact: a token bucket in 1/rate_den byte units,
  :class:`~.mem_model.ChannelTiming`), the channel takes the next transfer; one in the other
  direction ``turnaround`` cycles later. A write's B response is valid from that cycle on (the
  last beat committed), in order.
* **stalls**: ``stall`` (0..15) withholds ``arready``, ``awready``, ``wready`` and a not yet
  presented ``rvalid`` each with probability stall/16, from a seeded xorshift32 per channel;
  a withheld cycle is lost bandwidth (results never change).
* **errors** (sticky ``error`` bits, :data:`~.mem_model.ERR_RANGE` ...): an address outside
  ``[base, base + size)`` (SLVERR, nothing written), a burst crossing 4 KiB, a narrow or
  non-INCR burst, a misplaced ``wlast``.

With the master always ready this reproduces ``Port.read`` / ``Port.write`` + ``commit`` of the
timing model for a transfer confined to this channel (``tests/rtl/tb/test_axi_mem_*``).
Differences the DMA must know: the model starts a multi-channel transfer on all its channels at
once (the latest free time) and holds them all until the most loaded one is done, while each
AxiMemory starts and frees on its own; the model's DDR has ``ddr.channels`` linear channels,
while the core has one DDR port (one AxiMemory: transfers to the two model channels serialise).

Back door: the storage is a hand-written Verilog RAM (:data:`RAM_VERILOG`, module
``dfx_tb_ram``; add it to the Verilator sources, e.g. with :func:`with_ram`) that loads
(``$fread``) or dumps (``$fwrite("%u")``) a word range of a binary file at run time, triggered
by the ``bd`` port (``sel`` picks the channel, ``load`` / ``dump`` strobes, ``lo`` / ``hi``
word indices), driven from cocotb by :class:`~.mem_model.MemoryBackdoor` (``$readmemh`` was
measured 10x slower: 0.22 s per MiB). ``ram="amaranth"`` uses an Amaranth memory instead (for
Amaranth simulation; no back door, use ``ctx.set(mem.ram.data[i], ...)``).

:class:`MemorySystem` is a card: one AxiMemory per HBM pseudo-channel plus DDR, sharing the
back door, ``stall`` and an OR of the ``error`` bits.
"""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Cat, ClockSignal, Const, Instance, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from dfx.isa.config import CoreConfig

from ..bus.axi import BURST_INCR, RESP_OKAY, RESP_SLVERR, AxiSignature
from .mem_model import (
    BACKDOOR_FILE,
    ERR_4K,
    ERR_BURST,
    ERR_RANGE,
    ERR_WLAST,
    ChannelTiming,
    MemLayout,
)

__all__ = ["RAM_MODULE", "RAM_VERILOG", "AxiMemory", "BackdoorSignature", "MemorySystem",
           "with_ram"]

RAM_MODULE = "dfx_tb_ram"

#: The back-door RAM (Verilog-2005 + $fread; Verilator runs the file tasks at run time).
#: Asynchronous read port, byte-enable write port, load / dump of words lo..hi of FILE
#: on a clock edge with ``bd_load`` / ``bd_dump`` high.
RAM_VERILOG = """\
// dfx testbench RAM with a file back door (dfx.rtl.tb.axi_mem)
module dfx_tb_ram #(
    parameter integer WIDTH = 128,
    parameter integer ABITS = 16,
    parameter FILE = "dfx_mem.bin"
) (
    input  wire                 clk,
    input  wire [ABITS-1:0]     raddr,
    output wire [WIDTH-1:0]     rdata,
    input  wire                 we,
    input  wire [ABITS-1:0]     waddr,
    input  wire [WIDTH-1:0]     wdata,
    input  wire [WIDTH/8-1:0]   wstrb,
    input  wire                 bd_load,
    input  wire                 bd_dump,
    input  wire [ABITS-1:0]     bd_lo,
    input  wire [ABITS-1:0]     bd_hi
);
    reg [WIDTH-1:0] mem [0:(1 << ABITS) - 1];
    assign rdata = mem[raddr];
    integer i, fd, got, lo, hi;
    always @(posedge clk) begin
        lo = bd_lo;
        hi = bd_hi;
        if (we)
            for (i = 0; i < WIDTH / 8; i = i + 1)
                if (wstrb[i]) mem[waddr][i * 8 +: 8] <= wdata[i * 8 +: 8];
        if (bd_load) begin
            // binary, each word most significant byte first
            fd = $fopen(FILE, "rb");
            if (fd == 0) $fatal(1, "dfx_tb_ram: cannot open %s", FILE);
            got = $fread(mem, fd, lo, hi - lo + 1);
            $fclose(fd);
        end
        if (bd_dump) begin
            // binary, "%u": each word least significant 32 bits first, little-endian
            fd = $fopen(FILE, "wb");
            if (fd == 0) $fatal(1, "dfx_tb_ram: cannot open %s", FILE);
            for (i = lo; i <= hi; i = i + 1)
                $fwrite(fd, "%u", mem[i]);
            $fclose(fd);
        end
    end
endmodule
"""


def with_ram(verilog_text: str) -> str:
    """``verilog_text`` (a converted design instantiating ``dfx_tb_ram``) plus the RAM module,
    as one Verilog source."""
    return verilog_text.rstrip("\n") + "\n\n" + RAM_VERILOG


class BackdoorSignature(wiring.Signature):
    """The back-door port (driven by the testbench): ``sel`` channel, ``load`` / ``dump``
    strobes, ``lo`` / ``hi`` word indices (inclusive)."""

    def __init__(self, sel_bits: int, addr_bits: int):
        self.sel_bits, self.addr_bits = sel_bits, addr_bits
        super().__init__({"sel": Out(sel_bits), "load": Out(1), "dump": Out(1),
                          "lo": Out(addr_bits), "hi": Out(addr_bits)})

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, BackdoorSignature) and other.sel_bits == self.sel_bits
                and other.addr_bits == self.addr_bits)

    def __hash__(self) -> int:
        return hash((BackdoorSignature, self.sel_bits, self.addr_bits))


def _check_int(name: str, v: Any, lo: int, hi: int | None = None) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or v < lo or (hi is not None and v > hi):
        rng = f"{lo}..{hi}" if hi is not None else f">= {lo}"
        raise ValueError(f"{name} must be an integer {rng}, not {v!r}")
    return v


class AxiMemory(wiring.Component):
    """One memory channel behind an AXI4 subordinate port (module doc).

    Parameters: ``timing`` (:class:`~.mem_model.ChannelTiming`; its ``beat_bytes`` is the data
    width), ``size`` (bytes, a power of two), ``base`` (AXI address of byte 0, a multiple of
    ``size``), ``addr_width`` / ``id_width`` of the port, ``queue_depth`` (requests queued,
    >= 2), ``seed`` (stall generator, non-zero), ``index`` (this channel's ``bd.sel`` value),
    ``sel_bits`` / ``bd_addr_bits`` (back-door port widths, to share one port between
    channels), ``ram`` (``"verilog"`` back-door RAM or ``"amaranth"``), ``file``.

    Members: ``axi`` (``In(AxiSignature)``), ``stall`` (In, 4 bits), ``bd``
    (``In(BackdoorSignature)``), ``error`` (Out, 4 sticky bits).
    """

    def __init__(self, timing: ChannelTiming, size: int, *, base: int = 0, addr_width: int = 64,
                 id_width: int = 1, queue_depth: int = 32, seed: int = 1, index: int = 0,
                 sel_bits: int = 1, bd_addr_bits: int | None = None, ram: str = "verilog",
                 file: str = BACKDOOR_FILE):
        if not isinstance(timing, ChannelTiming):
            raise TypeError(f"timing must be a ChannelTiming, not {timing!r}")
        b = timing.beat_bytes
        _check_int("size", size, b)
        if size & (size - 1):
            raise ValueError(f"size must be a power of two, not {size}")
        _check_int("addr_width", addr_width, 12, 64)
        _check_int("base", base, 0, (1 << addr_width) - size)
        if base % size:
            raise ValueError(f"base ({base:#x}) must be a multiple of size ({size:#x})")
        _check_int("queue_depth", queue_depth, 2)
        _check_int("seed", seed, 1, (1 << 32) - 1)
        _check_int("sel_bits", sel_bits, 1, 16)
        _check_int("index", index, 0, (1 << sel_bits) - 1)
        if ram not in ("verilog", "amaranth"):
            raise ValueError(f"ram must be 'verilog' or 'amaranth', not {ram!r}")
        self._t, self._size, self._base = timing, size, base
        self._words = size // b
        self._abits = max(1, (self._words - 1).bit_length())
        bd_bits = self._abits if bd_addr_bits is None else bd_addr_bits
        _check_int("bd_addr_bits", bd_bits, self._abits, 64)
        self._depth, self._seed, self._index, self._ram, self._file = (
            queue_depth, seed, index, ram, file)
        self._sig = AxiSignature(addr_width=addr_width, data_width=8 * b, id_width=id_width)
        super().__init__({
            "axi": In(self._sig),
            "stall": In(4),
            "bd": In(BackdoorSignature(sel_bits, bd_bits)),
            "error": Out(4),
        })
        self.ram: Memory | None = None

    @property
    def timing(self) -> ChannelTiming:
        return self._t

    @property
    def size(self) -> int:
        return self._size

    @property
    def base(self) -> int:
        return self._base

    @property
    def words(self) -> int:
        return self._words

    @property
    def beat_bytes(self) -> int:
        return self._t.beat_bytes

    @property
    def latency(self) -> int:
        """Cycles from an AR handshake to the first R beat, when the channel is free (>= 1:
        a request is in the queue the cycle after its handshake)."""
        return max(1, self._t.latency)

    @property
    def queue_depth(self) -> int:
        return self._depth

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        t, bus = self._t, self.axi
        b, abits = t.beat_bytes, self._abits
        size_log = self._size.bit_length() - 1
        beat_log = b.bit_length() - 1

        # ---- time, stall generator
        now = Signal(32)
        m.d.sync += now.eq(now + 1)
        rnd = Signal(32, init=self._seed)
        x1 = rnd ^ (rnd << 13)[:32]
        x2 = x1 ^ (x1 >> 17)
        m.d.sync += rnd.eq(x2 ^ (x2 << 5)[:32])
        stall_ar, stall_aw, stall_w, stall_r = (rnd[4 * i: 4 * i + 4] < self.stall
                                                for i in range(4))

        # ---- request queue (AR and AW in arrival order)
        req = data.StructLayout({
            "write": 1, "word": abits, "len": 8, "id": self._sig.id_width, "due": 32,
            "oob": 1,
        })
        m.submodules.queue = q = SyncFIFO(width=req.size, depth=self._depth)
        m.submodules.bq = bq = SyncFIFO(width=self._sig.id_width + 1, depth=self._depth)
        head = data.View(req, q.r_data)
        err = Signal(4)
        m.d.comb += self.error.eq(err)

        def decode(addr, length, size, burst):
            # the burst covers the aligned beats from addr's beat on (AXI INCR)
            rel = Signal(unsigned(65))
            m.d.comb += rel.eq(addr - self._base)
            beats = length + 1
            start = Cat(Const(0, beat_log), rel[beat_log:])
            oob = (rel[size_log:] != 0) | ((start + (beats << beat_log)) > self._size)
            cross = (Cat(Const(0, beat_log), addr[beat_log:12]) + (beats << beat_log)) > 0x1000
            bad = (size != beat_log) | (burst != BURST_INCR)
            return rel[beat_log:beat_log + abits], oob, cross, bad

        aw_take = bus.awvalid & q.w_rdy & ~stall_aw
        ar_take = bus.arvalid & q.w_rdy & ~stall_ar & ~bus.awvalid
        m.d.comb += [bus.awready.eq(q.w_rdy & ~stall_aw),
                     bus.arready.eq(q.w_rdy & ~stall_ar & ~bus.awvalid)]
        new = Signal(req)
        aw_word, aw_oob, aw_cross, aw_bad = decode(bus.awaddr, bus.awlen, bus.awsize,
                                                   bus.awburst)
        ar_word, ar_oob, ar_cross, ar_bad = decode(bus.araddr, bus.arlen, bus.arsize,
                                                   bus.arburst)
        with m.If(aw_take):
            m.d.comb += [new.write.eq(1), new.word.eq(aw_word), new.len.eq(bus.awlen),
                         new.id.eq(bus.awid), new.oob.eq(aw_oob)]
            m.d.sync += err.eq(err | Mux(aw_oob, ERR_RANGE, 0) | Mux(aw_cross, ERR_4K, 0)
                               | Mux(aw_bad, ERR_BURST, 0))
        with m.Else():
            m.d.comb += [new.write.eq(0), new.word.eq(ar_word), new.len.eq(bus.arlen),
                         new.id.eq(bus.arid), new.oob.eq(ar_oob),
                         new.due.eq(now + t.latency)]
            with m.If(ar_take):
                m.d.sync += err.eq(err | Mux(ar_oob, ERR_RANGE, 0) | Mux(ar_cross, ERR_4K, 0)
                                   | Mux(ar_bad, ERR_BURST, 0))
        m.d.comb += [q.w_data.eq(new), q.w_en.eq(aw_take | ar_take)]

        # ---- the channel: token bucket, turnaround, beats of the head transfer
        floor = t.floor
        cost, num = t.beat_cost, t.rate_num
        dbits = max(abs(floor), cost).bit_length() + 2
        debt = Signal(signed(dbits), init=floor)
        last_write = Signal()
        beat = Signal(8)
        first = beat == 0
        turn_ok = (head.write == last_write) | (debt <= -t.turnaround * num)
        free = q.r_rdy & (debt <= 0) & turn_ok
        word = Signal(abits)
        m.d.comb += word.eq(head.word + beat)
        last = beat == head.len

        # read beats (rvalid held once presented)
        r_hold = Signal()
        due_ok = (now - head.due).as_signed() >= 0
        rvalid = r_hold | (free & ~head.write & due_ok & ~stall_r)
        r_fire = rvalid & bus.rready
        m.d.sync += r_hold.eq(rvalid & ~bus.rready)
        m.d.comb += [bus.rvalid.eq(rvalid), bus.rid.eq(head.id), bus.rlast.eq(last),
                     bus.rresp.eq(Mux(head.oob, RESP_SLVERR, RESP_OKAY))]

        # write beats (no room for the B response: wait)
        drain = Signal()  # a write's last beat is in, its B waits for the channel to be free
        drain_id = Signal(self._sig.id_width)
        drain_oob = Signal()
        b_room = bq.level + drain < self._depth - 1
        wready = free & head.write & ~stall_w & b_room
        w_fire = bus.wvalid & wready
        m.d.comb += bus.wready.eq(wready)
        with m.If(w_fire & (bus.wlast != last)):
            m.d.sync += err.eq(err | ERR_WLAST)

        fire = r_fire | w_fire
        nxt = Signal(signed(dbits + 1))
        with m.If(fire):
            m.d.comb += nxt.eq(Mux(first, 0, debt) + (cost - num))
            m.d.sync += last_write.eq(head.write)
            with m.If(last):
                m.d.sync += beat.eq(0)
                m.d.comb += q.r_en.eq(1)
            with m.Else():
                m.d.sync += beat.eq(beat + 1)
        with m.Else():
            m.d.comb += nxt.eq(debt - num)
        m.d.sync += debt.eq(Mux(nxt < floor, floor, nxt))

        # B responses: valid from the first cycle the channel is free after the last beat
        done_now = drain & (debt <= 0)
        direct = done_now & ~bq.r_rdy
        m.d.comb += [
            bus.bvalid.eq(bq.r_rdy | done_now),
            bus.bid.eq(Mux(bq.r_rdy, bq.r_data[1:], drain_id)),
            bus.bresp.eq(Mux(Mux(bq.r_rdy, bq.r_data[0], drain_oob), RESP_SLVERR, RESP_OKAY)),
            bq.r_en.eq(bus.bready),
            bq.w_data.eq(Cat(drain_oob, drain_id)),
            bq.w_en.eq(done_now & ~(direct & bus.bready)),
        ]
        with m.If(done_now):
            m.d.sync += drain.eq(0)
        with m.If(w_fire & last):
            m.d.sync += [drain.eq(1), drain_id.eq(head.id), drain_oob.eq(head.oob)]

        # ---- storage
        we = w_fire & ~head.oob
        bd = self.bd
        mine = bd.sel == self._index
        width = 8 * b
        if self._ram == "verilog":
            rdata = Signal(width)
            m.submodules.ram = Instance(
                RAM_MODULE,
                p_WIDTH=width, p_ABITS=abits, p_FILE=self._file,
                i_clk=ClockSignal(), i_raddr=word, o_rdata=rdata,
                i_we=we, i_waddr=word, i_wdata=bus.wdata, i_wstrb=bus.wstrb,
                i_bd_load=bd.load & mine, i_bd_dump=bd.dump & mine,
                i_bd_lo=bd.lo[:abits], i_bd_hi=bd.hi[:abits],
            )
        else:
            m.submodules.ram = self.ram = mem = Memory(shape=width, depth=1 << abits, init=[])
            rp = mem.read_port(domain="comb")
            wp = mem.write_port(granularity=8)
            rdata = rp.data
            m.d.comb += [rp.addr.eq(word), wp.addr.eq(word), wp.data.eq(bus.wdata),
                         wp.en.eq(Mux(we, bus.wstrb, 0))]
        m.d.comb += bus.rdata.eq(Mux(head.oob, 0, rdata))
        return m


class MemorySystem(wiring.Component):
    """The memories of one card (module doc): ``hbm[i]`` (``In(AxiSignature)``) for each
    pseudo-channel, ``ddr``, a shared back-door port ``bd`` (``sel`` i < n: pseudo-channel i,
    ``sel`` = n: DDR), ``stall`` (In, 4 bits, to every channel) and ``error`` (OR of the
    channels' sticky bits).

    Parameters: ``layout`` (:class:`~.mem_model.MemLayout`, with its timings), ``addr_width``,
    ``id_width``, ``queue_depth``, ``seed`` (channel i gets ``seed + i``), ``ram``.
    """

    def __init__(self, layout: MemLayout, *, addr_width: int = 64, id_width: int = 1,
                 queue_depth: int = 32, seed: int = 1, ram: str = "verilog"):
        if not isinstance(layout, MemLayout):
            raise TypeError(f"layout must be a MemLayout, not {layout!r}")
        if layout.hbm_timing is None or layout.ddr_timing is None:
            raise ValueError("layout needs hbm_timing and ddr_timing (MemLayout.from_core)")
        self._layout = layout
        n = layout.hbm_channels
        sel_bits = max(1, n.bit_length())
        bd_bits = max(layout.words(0), layout.words(n)).bit_length()
        common = dict(addr_width=addr_width, id_width=id_width, queue_depth=queue_depth,
                      sel_bits=sel_bits, bd_addr_bits=bd_bits, ram=ram, file=layout.file)
        self.channels = [
            AxiMemory(layout.hbm_timing, layout.hbm_bytes, base=layout.hbm_bases[i],
                      seed=seed + i, index=i, **common)
            for i in range(n)
        ] + [AxiMemory(layout.ddr_timing, layout.ddr_bytes, base=layout.ddr_base,
                       seed=seed + n, index=n, **common)]
        sig = self.channels[0].axi.signature.flip()
        dsig = self.channels[n].axi.signature.flip()
        super().__init__({
            "hbm": In(sig).array(n),
            "ddr": In(dsig),
            "stall": In(4),
            "bd": In(BackdoorSignature(sel_bits, bd_bits)),
            "error": Out(4),
        })

    @classmethod
    def from_core(cls, core: CoreConfig, *, hbm_bytes: int | None = None,
                  ddr_bytes: int | None = None, hbm_bases: tuple[int, ...] | None = None,
                  ddr_base: int = 0, **kwargs: Any) -> MemorySystem:
        """The card of ``core`` (:meth:`MemLayout.from_core`; smaller sizes for tests)."""
        return cls(MemLayout.from_core(core, hbm_bytes=hbm_bytes, ddr_bytes=ddr_bytes,
                                       hbm_bases=hbm_bases, ddr_base=ddr_base), **kwargs)

    @property
    def layout(self) -> MemLayout:
        return self._layout

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        n = self._layout.hbm_channels
        err = 0
        for i, ch in enumerate(self.channels):
            m.submodules[f"hbm{i:02d}" if i < n else "ddr"] = ch
            port = self.hbm[i] if i < n else self.ddr
            wiring.connect(m, wiring.flipped(port), ch.axi)
            m.d.comb += [ch.stall.eq(self.stall), ch.bd.sel.eq(self.bd.sel),
                         ch.bd.load.eq(self.bd.load), ch.bd.dump.eq(self.bd.dump),
                         ch.bd.lo.eq(self.bd.lo), ch.bd.hi.eq(self.bd.hi)]
            err = err | ch.error
        m.d.comb += self.error.eq(err)
        return m
