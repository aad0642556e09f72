"""``AxiChannel``: one AXI4 manager port serving an ordered queue of bursts (docs/core.md,
"Memory system"; DFX §2.2: one port per HBM pseudo-channel).

Each queued op ``{write, beat, count}`` is one INCR burst of ``count`` beats (0: nothing to
move) at AXI address ``base + beat · W``. Ops are served strictly in queue order, and:

* a read waits until every earlier write burst has its B response (AXI does not order a
  read after a write: this makes a later read see the data);
* a write waits until every earlier read burst has all its R beats (the other direction);
* a read issues only when ``count`` credits are free: a credit is one place in the R buffer
  (``credits`` beats), taken at AR and given back when the beat leaves the buffer on ``r``,
  so ``rready`` is always high and the buffer never overflows; the port moves one beat per
  cycle as long as ``credits − burst ≥ Lm + credit_loop`` (:attr:`AxiChannel.credit_loop`);
* write data comes in order on ``w`` (any time; the beats of a burst go out after its AW),
  ``wlast`` on each burst's last beat.

``acked`` pulses once per write op (in order) when its B response has come (at once for a
write op with ``count`` 0, in its turn). Cycle behaviour: an op written into the queue in
cycle t can raise ``arvalid``/``awvalid`` in t + 2 (queue, then the address register); an R
beat accepted in cycle t is on ``r`` in t + 2 (the buffered R FIFO). IDs are 0; responses are
not checked.
"""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO, SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from ..bus.axi import BURST_INCR, AxiSignature
from .geometry import ADDR_BITS, AXI_MAX_LEN, CREDIT_LOOP

__all__ = ["OP_DEPTH", "AxiChannel", "chan_op_layout", "wbeat_layout"]


OP_DEPTH = 4
"""Ops queued per port (the default ``op_depth``): a space takes an op only while every port
has room."""


def chan_op_layout(beat_bits: int, max_len: int) -> data.StructLayout:
    """One queued burst: ``write``, ``beat`` (local beat index), ``count`` (0..max_len)."""
    return data.StructLayout({"write": 1, "beat": beat_bits, "count": range(max_len + 1)})


def wbeat_layout(beat_bytes: int) -> data.StructLayout:
    """One write beat: ``data`` and ``strb``."""
    return data.StructLayout({"data": 8 * beat_bytes, "strb": beat_bytes})


def _check(name: str, v: Any, lo: int, hi: int | None = None) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or v < lo or (hi is not None and v > hi):
        rng = f"{lo}..{hi}" if hi is not None else f">= {lo}"
        raise ValueError(f"{name} must be an integer {rng}, not {v!r}")
    return v


class AxiChannel(wiring.Component):
    """One AXI4 port (module doc).

    Parameters: ``beat_bytes`` (W, a power of two >= 4), ``beat_bits`` (width of the local
    beat index), ``max_len`` (largest ``count``, 1..256, at most half of ``credits`` so the
    next burst can be in flight while one drains), ``credits`` (R buffer depth, a power of
    two), ``op_depth`` (op queue), ``w_depth`` (write-data queue), ``ack_depth`` (write ops
    awaiting their response).
    """

    def __init__(self, *, beat_bytes: int, beat_bits: int, max_len: int, credits: int,
                 op_depth: int = OP_DEPTH, w_depth: int = 4, ack_depth: int = 16):
        if not isinstance(beat_bytes, int) or beat_bytes < 4 or beat_bytes & (beat_bytes - 1):
            raise ValueError(f"beat_bytes must be a power of two >= 4, not {beat_bytes!r}")
        self._w = beat_bytes
        self._beat_bits = _check("beat_bits", beat_bits, 1, ADDR_BITS)
        self._credits = _check("credits", credits, 2)
        if credits & (credits - 1):
            raise ValueError(f"credits must be a power of two, not {credits}")
        self._max_len = _check("max_len", max_len, 1, min(AXI_MAX_LEN, credits // 2))
        self._op_depth = _check("op_depth", op_depth, 1)
        self._w_depth = _check("w_depth", w_depth, 1)
        self._ack_depth = _check("ack_depth", ack_depth, 1)
        super().__init__({
            "base": In(ADDR_BITS),
            "op": In(stream.Signature(self.op_layout)),
            "r": Out(stream.Signature(8 * beat_bytes)),
            "w": In(stream.Signature(wbeat_layout(beat_bytes))),
            "acked": Out(1),
            "axi": Out(AxiSignature(data_width=8 * beat_bytes)),
        })

    @property
    def op_layout(self) -> data.StructLayout:
        return chan_op_layout(self._beat_bits, self._max_len)

    @property
    def credits(self) -> int:
        """Read beats outstanding at most (R buffer depth)."""
        return self._credits

    @property
    def credit_loop(self) -> int:
        """Cycles a credit spends outside the memory's latency: the port streams one beat
        per cycle iff ``credits - burst >= Lm + credit_loop`` (``Lm``: cycles from the AR
        handshake to the first R handshake): :data:`~.geometry.CREDIT_LOOP`."""
        return CREDIT_LOOP

    @property
    def max_len(self) -> int:
        return self._max_len

    @property
    def op_depth(self) -> int:
        return self._op_depth

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        w, axi = self._w, self.axi
        lay = self.op_layout
        size = w.bit_length() - 1
        m.submodules.opq = opq = SyncFIFO(width=lay.size, depth=self._op_depth)
        m.submodules.rq = rq = SyncFIFOBuffered(width=8 * w, depth=self._credits)
        wl = wbeat_layout(w)
        m.submodules.wq = wq = SyncFIFO(width=wl.size, depth=self._w_depth)
        m.submodules.wlen = wlen = SyncFIFO(width=9, depth=self._ack_depth)
        m.submodules.ackq = ackq = SyncFIFO(width=1, depth=self._ack_depth)

        m.d.comb += [
            opq.w_data.eq(self.op.payload), opq.w_en.eq(self.op.valid),
            self.op.ready.eq(opq.w_rdy),
        ]
        head = lay(opq.r_data)
        hv = opq.r_rdy

        rd_out = Signal(range(self._credits + 1))  # beats asked for, not yet received
        reserved = Signal(range(self._credits + 1))  # beats asked for or in the R buffer
        wr_out = Signal(range(self._ack_depth + 1))  # write bursts without a B response

        ar_free = ~axi.arvalid | axi.arready
        aw_free = ~axi.awvalid | axi.awready
        zero = head.count == 0
        do_read = Signal()
        do_write = Signal()
        skip = Signal()
        m.d.comb += [
            do_read.eq(hv & ~head.write & ~zero & (wr_out == 0) & ar_free
                       & (self._credits - reserved >= head.count)),
            do_write.eq(hv & head.write & ~zero & (rd_out == 0) & aw_free & wlen.w_rdy
                        & ackq.w_rdy),
            skip.eq(hv & zero & (~head.write | ackq.w_rdy)),
            opq.r_en.eq(do_read | do_write | skip),
        ]
        addr = self.base + (head.beat << size)
        with m.If(do_read):
            m.d.sync += [axi.arvalid.eq(1), axi.araddr.eq(addr), axi.arlen.eq(head.count - 1)]
        with m.Elif(axi.arready):
            m.d.sync += axi.arvalid.eq(0)
        with m.If(do_write):
            m.d.sync += [axi.awvalid.eq(1), axi.awaddr.eq(addr), axi.awlen.eq(head.count - 1)]
        with m.Elif(axi.awready):
            m.d.sync += axi.awvalid.eq(0)
        m.d.comb += [
            axi.arid.eq(0), axi.arsize.eq(size), axi.arburst.eq(BURST_INCR),
            axi.awid.eq(0), axi.awsize.eq(size), axi.awburst.eq(BURST_INCR),
            wlen.w_data.eq(head.count), wlen.w_en.eq(do_write),
            ackq.w_data.eq(~zero), ackq.w_en.eq(do_write | (skip & head.write)),
        ]

        # ---- read data: always accepted (credits), out in order
        r_in = axi.rvalid & axi.rready
        r_out = self.r.valid & self.r.ready
        m.d.comb += [
            axi.rready.eq(rq.w_rdy),
            rq.w_data.eq(axi.rdata), rq.w_en.eq(axi.rvalid),
            self.r.payload.eq(rq.r_data), self.r.valid.eq(rq.r_rdy), rq.r_en.eq(self.r.ready),
        ]
        asked = Signal.like(rd_out)
        m.d.comb += asked.eq(do_read * head.count)
        m.d.sync += [
            rd_out.eq(rd_out + asked - r_in),
            reserved.eq(reserved + asked - r_out),
        ]

        # ---- write data: the bursts' beats in order, after their AW
        m.d.comb += [wq.w_data.eq(self.w.payload), wq.w_en.eq(self.w.valid),
                     self.w.ready.eq(wq.w_rdy)]
        wb = wl(wq.r_data)
        cnt = Signal(9)
        last = cnt == wlen.r_data - 1
        m.d.comb += [
            axi.wvalid.eq(wq.r_rdy & wlen.r_rdy),
            axi.wdata.eq(wb.data), axi.wstrb.eq(wb.strb), axi.wlast.eq(last),
        ]
        wfire = axi.wvalid & axi.wready
        m.d.comb += [wq.r_en.eq(wfire), wlen.r_en.eq(wfire & last)]
        with m.If(wfire):
            m.d.sync += cnt.eq(cnt + 1)
            with m.If(last):
                m.d.sync += cnt.eq(0)

        # ---- write responses: retire write ops in order
        m.d.comb += axi.bready.eq(1)
        bcount = Signal(range(self._ack_depth + 1))
        retire = Signal()
        m.d.comb += [
            retire.eq(ackq.r_rdy & (~ackq.r_data[0] | (bcount != 0))),
            ackq.r_en.eq(retire),
            self.acked.eq(retire),
        ]
        m.d.sync += [
            bcount.eq(bcount + axi.bvalid - (retire & ackq.r_data[0])),
            wr_out.eq(wr_out + do_write - axi.bvalid),
        ]
        return m
