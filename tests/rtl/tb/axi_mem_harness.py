"""Amaranth-simulator AXI4 master for ``AxiMemory`` tests, and the timing model's expectation
of the same request sequence (``dfx.sim.timing.memory.Port``)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from amaranth.sim import Simulator

from dfx.rtl.tb.mem_model import ChannelTiming, port_schedule
from dfx.sim.timing.params import Channels


@dataclass
class Req:
    """One burst: ``write``, local word ``word``, ``beats``, earliest issue cycle ``at``;
    ``data`` (writes: one int per beat). Filled by the run: ``accepted`` (address handshake
    cycle), ``beat_cycles`` (data handshakes), ``first_valid`` (first cycle a W beat / rvalid
    was up), ``b_cycle`` (first cycle bvalid was up for it), ``rdata``, ``resp``."""

    write: bool
    word: int
    beats: int
    at: int = 0
    data: list[int] = field(default_factory=list)
    id: int = 0
    accepted: int | None = None
    beat_cycles: list[int] = field(default_factory=list)
    first_valid: int | None = None
    b_cycle: int | None = None
    rdata: list[int] = field(default_factory=list)
    resp: list[int] = field(default_factory=list)


def run_master(dut, reqs: list[Req], *, base: int = 0, cycles: int = 3000,
               ready_p: float = 1.0, wvalid_p: float = 1.0, stall: int = 0,
               seed: int = 0, raw: list | None = None) -> list[int]:
    """Drive ``reqs`` (address channels in list order, each not before its ``at``) into the
    AxiMemory ``dut``; R/B ready with probability ``ready_p``, W valid with ``wvalid_p``.
    ``raw``: (addr, len, size, burst) read requests sent first (not checked). Returns the
    ``error`` output at the end."""
    rng = random.Random(seed)
    bus = dut.axi
    b = dut.beat_bytes
    size = b.bit_length() - 1
    reads = [r for r in reqs if not r.write]
    writes = [r for r in reqs if r.write]

    async def bench(ctx):
        ctx.set(dut.stall, stall)
        for addr, length, sz, burst in raw or ():
            ctx.set(bus.araddr, addr)
            ctx.set(bus.arlen, length)
            ctx.set(bus.arsize, sz)
            ctx.set(bus.arburst, burst)
            ctx.set(bus.arvalid, 1)
            ctx.set(bus.rready, 1)
            while not ctx.get(bus.arready):
                await ctx.tick()
            await ctx.tick()
            ctx.set(bus.arvalid, 0)
            for _ in range(length + 1):
                while not ctx.get(bus.rvalid):
                    await ctx.tick()
                await ctx.tick()
        order = list(reqs)
        ai = 0  # next request to put on an address channel
        wq = 0  # next write whose data goes out
        wbeat = 0
        rq, rbeat = 0, 0
        bq = 0
        for cycle in range(cycles):
            ar = aw = None
            if ai < len(order) and order[ai].at <= cycle:
                if order[ai].write:
                    aw = order[ai]
                else:
                    ar = order[ai]
            ctx.set(bus.awvalid, aw is not None)
            ctx.set(bus.arvalid, ar is not None)
            if aw is not None:
                ctx.set(bus.awaddr, base + aw.word * b)
                ctx.set(bus.awlen, aw.beats - 1)
                ctx.set(bus.awsize, size)
                ctx.set(bus.awburst, 1)
                ctx.set(bus.awid, aw.id)
            if ar is not None:
                ctx.set(bus.araddr, base + ar.word * b)
                ctx.set(bus.arlen, ar.beats - 1)
                ctx.set(bus.arsize, size)
                ctx.set(bus.arburst, 1)
                ctx.set(bus.arid, ar.id)
            w = writes[wq] if wq < len(writes) else None
            wv = (w is not None and w.at <= cycle and (w.accepted is not None or w is aw)
                  and rng.random() < wvalid_p)
            ctx.set(bus.wvalid, wv)
            if wv:
                ctx.set(bus.wdata, w.data[wbeat])
                ctx.set(bus.wstrb, (1 << b) - 1)
                ctx.set(bus.wlast, wbeat == w.beats - 1)
                if w.first_valid is None:
                    w.first_valid = cycle
            rr = rng.random() < ready_p
            br = rng.random() < ready_p
            ctx.set(bus.rready, rr)
            ctx.set(bus.bready, br)
            # sample the handshakes of this cycle
            aw_hs = aw is not None and ctx.get(bus.awready)
            ar_hs = ar is not None and ctx.get(bus.arready)
            w_hs = wv and ctx.get(bus.wready)
            r_v = ctx.get(bus.rvalid)
            r_hs = rr and r_v
            b_v = ctx.get(bus.bvalid)
            b_hs = br and b_v
            rdata, rresp, rlast, rid = (ctx.get(bus.rdata), ctx.get(bus.rresp),
                                        ctx.get(bus.rlast), ctx.get(bus.rid))
            bresp, bid = ctx.get(bus.bresp), ctx.get(bus.bid)
            await ctx.tick()
            if aw_hs or ar_hs:
                order[ai].accepted = cycle
                ai += 1
            if w_hs:
                w.beat_cycles.append(cycle)
                wbeat += 1
                if wbeat == w.beats:
                    wq, wbeat = wq + 1, 0
            if r_v and rq < len(reads):
                r = reads[rq]
                if r.first_valid is None:
                    r.first_valid = cycle
            if r_hs:
                r = reads[rq]
                assert rid == r.id
                r.beat_cycles.append(cycle)
                r.rdata.append(rdata)
                r.resp.append(rresp)
                rbeat += 1
                assert rlast == (rbeat == r.beats), (cycle, rbeat)
                if rbeat == r.beats:
                    rq, rbeat = rq + 1, 0
            if b_v and bq < len(writes) and writes[bq].b_cycle is None:
                writes[bq].b_cycle = cycle
            if b_hs:
                assert bid == writes[bq].id
                writes[bq].resp.append(bresp)
                bq += 1

        errors.append(ctx.get(dut.error))

    errors: list[int] = []
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return errors[0]


def expected(timing: ChannelTiming, ch: Channels, reqs: list[Req]) -> list[tuple]:
    """Per request, in acceptance order: (request, first beat cycle, beat cycles, free cycle)
    of the timing model (:func:`dfx.rtl.tb.mem_model.port_schedule`)."""
    order = sorted(reqs, key=lambda r: r.accepted)
    sched = port_schedule(timing, ch, [
        (r.write, r.beats, r.accepted,
         max(r.first_valid, r.accepted + 1) if r.write else r.accepted) for r in order])
    return [(r, *x) for r, x in zip(order, sched, strict=True)]
