"""A small AXI4 subordinate memory for the memory system's Amaranth-simulator tests.

One :class:`AxiMem` per AXI port: a ``bytearray`` at AXI address ``base``, in-order responses
(one ID), a fixed read latency (AR accepted to first R beat), random ready / valid stalls on
every channel (``stall`` = probability of holding a handshake back in a cycle). A read takes
its data when its AR is accepted; a write lands in memory when its B response is raised. So a
manager that issues a read before the B of an earlier write to the same bytes reads stale data
(the ordering bug the memory system must not have).
"""

from __future__ import annotations

import random
from collections import deque
from typing import Any


class AxiMem:
    """Memory behind one AXI manager port ``port`` (an :class:`~dfx.rtl.bus.axi.AxiSignature`
    interface of the design)."""

    def __init__(self, port: Any, size: int, *, base: int = 0, latency: int = 8,
                 b_latency: int = 3, stall: float = 0.0, seed: int = 0,
                 mem: bytearray | None = None) -> None:
        self.port = port
        self.base = base
        self.mem = mem if mem is not None else bytearray(size)
        self.size = len(self.mem)
        self.latency = latency
        self.b_latency = b_latency
        self.stall = stall
        self.rng = random.Random(seed)
        self.wbytes = port.wdata.shape().width // 8
        self.reads: deque = deque()  # [ready_cycle, beats(list of bytes), index]
        self.aws: deque = deque()  # (addr, beats)
        self.wbeats: list = []  # beats of the burst being written
        self.bq: deque = deque()  # [ready_cycle, writes]
        self.pending_w: deque = deque()  # completed bursts waiting for their AW
        self.cycle = 0
        self.ar_count = 0
        self.aw_count = 0
        self.r_beats = 0
        self.w_beats = 0
        self.max_reads = 0  # largest number of read bursts outstanding
        self.events: list[tuple[str, int]] = []  # (channel, cycle) of every handshake

    def _go(self) -> int:
        return 0 if self.stall and self.rng.random() < self.stall else 1

    def _off(self, addr: int, n: int) -> int:
        off = addr - self.base
        if off < 0 or off + n > self.size:
            raise AssertionError(f"AXI access {addr:#x}+{n} outside [{self.base:#x}, "
                                 f"{self.base + self.size:#x})")
        return off

    def _burst_check(self, addr: int, beats: int) -> None:
        if addr % self.wbytes:
            raise AssertionError(f"unaligned burst address {addr:#x}")
        if addr // 4096 != (addr + beats * self.wbytes - 1) // 4096:
            raise AssertionError(f"burst {addr:#x} x {beats} crosses a 4 KiB boundary")

    async def process(self, ctx: Any) -> None:
        p = self.port
        sig = [p.arvalid, p.arready, p.araddr, p.arlen, p.awvalid, p.awready, p.awaddr,
               p.awlen, p.wvalid, p.wready, p.wdata, p.wstrb, p.wlast, p.rvalid, p.rready,
               p.bvalid, p.bready]
        wb = self.wbytes
        async for _, _, *v in ctx.tick().sample(*sig):
            (arv, arr, araddr, arlen, awv, awr, awaddr, awlen, wv, wr, wdata, wstrb, wlast,
             rv, rr, bv, br) = v
            self.cycle += 1
            now = self.cycle
            for name, hs in (("ar", arv and arr), ("aw", awv and awr), ("w", wv and wr),
                             ("r", rv and rr), ("b", bv and br)):
                if hs:
                    self.events.append((name, now - 1))
            if arv and arr:
                n = arlen + 1
                self._burst_check(araddr, n)
                off = self._off(araddr, n * wb)
                beats = [bytes(self.mem[off + i * wb: off + (i + 1) * wb]) for i in range(n)]
                self.reads.append([now + self.latency, beats, 0])
                self.ar_count += 1
                self.max_reads = max(self.max_reads, len(self.reads))
            if awv and awr:
                self._burst_check(awaddr, awlen + 1)
                self.aws.append((awaddr, awlen + 1))
                self.aw_count += 1
            if wv and wr:
                self.wbeats.append((wdata, wstrb))
                self.w_beats += 1
                if wlast:
                    self.pending_w.append(self.wbeats)
                    self.wbeats = []
            while self.pending_w and self.aws:
                beats = self.pending_w.popleft()
                addr, n = self.aws.popleft()
                if len(beats) != n:
                    raise AssertionError(f"write burst of {n} beats got {len(beats)} (wlast)")
                self.bq.append([now + self.b_latency, addr, beats])
            if rv and rr:
                head = self.reads[0]
                head[2] += 1
                self.r_beats += 1
                if head[2] == len(head[1]):
                    self.reads.popleft()
            if bv and br:
                self.bq.popleft()
            # outputs for the next cycle
            ctx.set(p.arready, self._go())
            ctx.set(p.awready, self._go())
            ctx.set(p.wready, self._go())
            if self.reads and self.reads[0][0] <= now and (rv and not rr or self._go()):
                head = self.reads[0]
                ctx.set(p.rvalid, 1)
                ctx.set(p.rdata, int.from_bytes(head[1][head[2]], "little"))
                ctx.set(p.rlast, int(head[2] == len(head[1]) - 1))
            else:
                ctx.set(p.rvalid, 0)
            if self.bq and self.bq[0][0] <= now and (bv and not br or self._go()):
                head = self.bq[0]
                if head[1] is not None:  # the write lands when its response is raised
                    addr, beats = head[1], head[2]
                    off = self._off(addr, len(beats) * wb)
                    for i, (data, strb) in enumerate(beats):
                        raw = data.to_bytes(wb, "little")
                        for j in range(wb):
                            if strb >> j & 1:
                                self.mem[off + i * wb + j] = raw[j]
                    head[1] = None
                ctx.set(p.bvalid, 1)
            else:
                ctx.set(p.bvalid, 0)
