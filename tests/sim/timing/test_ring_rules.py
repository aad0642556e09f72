"""The timing model's ring (sim/timing/router.py, ring.py) against the router RTL.

Each case runs a multi-card micro-program on the model, recording per link the sender's
``tx_in`` handshakes and the receiver's ``rx_out`` pops, per card when each sent vector is
first offered on the core's ``tx`` stream and the recv movers' ``rx.ready`` windows. Then

* the model's per-vector arrival and credit times are exactly what rtl/router/timing.py's
  ``DataLane``/``CreditLane`` give for those handshakes and pops, and
* the routers themselves (``RouterRing`` of rtl/tb/link_model.py: the board's link latency,
  no stalls, on Amaranth's simulator), driven with the model's offers (valid from that cycle
  until taken) and ready windows, take and pop every vector in the model's cycle; with the
  Verilator card's ``Fifo2`` between each core stream and its router (``stream_fifos``),
  likewise at both ends of each FIFO.

Cases: back-to-back sends, the FIFO full (a slow receiver, a 4-vector FIFO), chained sources,
four cards in a ring; tiny and dfx-u280.
"""

from __future__ import annotations

import dataclasses

import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.sim import Simulator
from timing_helpers import micro

from dfx.isa.config import load_core
from dfx.rtl.bus.stream import Fifo2
from dfx.rtl.router.link import wire_cycles
from dfx.rtl.router.timing import CreditLane, DataLane
from dfx.rtl.tb.link_model import RouterRing
from dfx.sim.timing import Appliance

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


def with_fifo(core, fifo):
    return dataclasses.replace(core, buffers=dataclasses.replace(core.buffers,
                                                                 router_fifo_vectors=fifo))


def delay(n):
    """A hardware loop of n iterations (the card reaches what follows ~n·(1 + penalty) later)."""
    return f"loop count={n}, body=2\naddi rd=r1, rs1=r1, imm=1\nendloop\n"


def chunks(op, base, n, size):
    return "".join(f"{op} v=v[r0+{base + k}], n={min(size, n - k)}\n" for k in range(0, n, size))


def programs(case, f):
    """Per card assembly for ``case`` with a receive FIFO of ``f`` vectors."""
    if case == "back_to_back":  # both cards: a FIFO's worth out, then in
        return [f"send v=v[r0+0], n={f}\nrecv v=v[r0+{f}], n={f}\nhalt\n"] * 2
    if case == "fifo_full":  # a slow receiver: the sender stops at f vectors, then waits
        return [chunks("send", 0, 3 * f, f) + "halt\n",
                delay(40) + "recv v=v[r0+0], n=1\n" + delay(10)
                + chunks("recv", 1, 3 * f - 1, 2) + "halt\n"]
    if case == "chained":  # the sent vectors come out of the VPU; the receiver pops them late
        prog = (f"vadd y=v[r0+0], a=v[r0+{2 * f}], b=v[r0+{2 * f + 1}], n={f}\n"
                f"send v=v[r0+0], n={f}\n" + delay(3) + f"recv v=v[r0+{f}], n={f}\nhalt\n")
        return [prog, prog]
    if case == "ring4":  # an all-gather's rounds on 4 cards: chunks of at most the FIFO
        prog = "".join(f"send v=v[r0+{k * f}], n={f}\nrecv v=v[r0+{(k + 1) * f}], n={f}\n"
                       for k in range(3)) + "halt\n"
        return [prog] * 4
    raise ValueError(case)


def run_model(core, progs, stream_fifos=()):
    app = Appliance(micro(progs, core=core), memo_loops=False, stream_fifos=stream_fifos)
    for lk in app.links:
        lk.log = {"hs": [], "pops": []}
    for cd in app.cards:
        cd.ring_log = {"offer": [], "rx_ready": []}
    res = app.run()
    return app, res


class _Top(wiring.Component):
    """A RouterRing with a Fifo2 of each card's streams (``fifos``) in front of it."""

    def __init__(self, ring, fifos):
        self.ring, self.fifos = ring, fifos
        bits = len(ring.tx_in[0].payload.as_value())
        self.tx_q = [Fifo2(bits) for _ in range(ring.n)] if fifos else []
        self.rx_q = [Fifo2(bits) for _ in range(ring.n)] if fifos else []
        super().__init__({})

    def elaborate(self, platform):
        m = Module()
        m.submodules.ring = r = self.ring
        for c in range(len(self.tx_q)):
            tq, rq = self.tx_q[c], self.rx_q[c]
            m.submodules[f"tx_q{c}"], m.submodules[f"rx_q{c}"] = tq, rq
            m.d.comb += [r.tx_in[c].payload.as_value().eq(tq.r_data),
                         r.tx_in[c].valid.eq(tq.r_rdy), tq.r_en.eq(r.tx_in[c].ready),
                         rq.w_data.eq(r.rx_out[c].payload.as_value()),
                         rq.w_en.eq(r.rx_out[c].valid),
                         r.rx_out[c].ready.eq(rq.w_rdy)]
        return m


def run_rtl(core, app, max_cycles=20000):
    """The routers driven with the model's offers and ready windows: per card the cycles of
    (core tx handshakes, router tx_in handshakes, router rx_out pops, core rx handshakes)."""
    n = len(app.cards)
    ring = RouterRing(core, n, [wire_cycles(core)] * (2 * n))
    fifos = bool(app.p.stream_fifos)
    top = _Top(ring, fifos)
    logs = [cd.ring_log for cd in app.cards]
    want = [len(lg["offer"]) for lg in logs]
    got = [{"core_tx": [], "tx_in": [], "rx_out": [], "core_rx": []} for _ in range(n)]
    recv_n = [sum(b - a + 1 for a, b in lg["rx_ready"]) for lg in logs]

    async def bench(ctx):
        for cyc in range(max_cycles):
            # the core side: valid from the model's offer, ready in the recv windows
            for c in range(n):
                k = len(got[c]["core_tx"])
                valid = k < want[c] and logs[c]["offer"][k] <= cyc
                ready = any(a <= cyc <= b for a, b in logs[c]["rx_ready"])
                tx = top.tx_q[c] if fifos else None
                rx = top.rx_q[c] if fifos else None
                if fifos:
                    ctx.set(tx.w_en, valid)
                    ctx.set(tx.w_data, k)
                    ctx.set(rx.r_en, ready)
                else:
                    ctx.set(ring.tx_in[c].valid, valid)
                    ctx.set(ring.tx_in[c].payload.as_value(), k)
                    ctx.set(ring.rx_out[c].ready, ready)
            for c in range(n):
                if fifos:
                    tq, rq = top.tx_q[c], top.rx_q[c]
                    if ctx.get(tq.w_en) and ctx.get(tq.w_rdy):
                        got[c]["core_tx"].append(cyc)
                    if ctx.get(rq.r_en) and ctx.get(rq.r_rdy):
                        got[c]["core_rx"].append(cyc)
                if ctx.get(ring.tx_in[c].valid) and ctx.get(ring.tx_in[c].ready):
                    got[c]["tx_in"].append(cyc)
                    if not fifos:
                        got[c]["core_tx"].append(cyc)
                if ctx.get(ring.rx_out[c].valid) and ctx.get(ring.rx_out[c].ready):
                    got[c]["rx_out"].append(cyc)
                    if not fifos:
                        got[c]["core_rx"].append(cyc)
            assert not ctx.get(ring.error)
            await ctx.tick()
            if all(len(g["core_rx"]) == recv_n[c] and len(g["core_tx"]) == want[c]
                   for c, g in enumerate(got)):
                break

    sim = Simulator(top)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return got


CASES = [("tiny", 8, "back_to_back"), ("tiny", 4, "fifo_full"), ("tiny", 8, "chained"),
         ("tiny", 4, "ring4"), ("dfx-u280", 64, "back_to_back"), ("dfx-u280", 4, "fifo_full"),
         ("dfx-u280", 6, "chained"), ("dfx-u280", 4, "ring4")]


@pytest.mark.parametrize("name,fifo,case", CASES, ids=[f"{c[0]}-f{c[1]}-{c[2]}" for c in CASES])
def test_model_links_follow_router_timing(name, fifo, case):
    """Arrivals and credits are rtl/router/timing.py's for the model's handshakes and pops."""
    core = with_fifo(load_core(name), fifo)
    app, _ = run_model(core, programs(case, fifo))
    for lk in app.links:
        data, credit = DataLane(core, wire_cycles(core)), CreditLane(core, wire_cycles(core))
        assert lk.arr == [data.vector(h)[1] for h in lk.log["hs"]]
        assert lk.cred == [credit.pop(p) for p in lk.log["pops"]]
        assert len(lk.log["hs"]) == len(lk.log["pops"]) == lk.sent


# with register FIFOs between the core's streams and the router (Params.stream_fifos): no
# card of the ring model or the board has them, so these run with --fullsize only
RTL_CASES = [pytest.param(*c, False, id=f"{c[0]}-f{c[1]}-{c[2]}-board") for c in CASES] + [
    pytest.param(*c, True, id=f"{c[0]}-f{c[1]}-{c[2]}-fifo2", marks=pytest.mark.fullsize)
    for c in CASES if c[0] == "tiny"]


@pytest.mark.slow
@pytest.mark.parametrize("name,fifo,case,fifos", RTL_CASES)
def test_router_rtl_takes_and_pops_in_the_models_cycles(name, fifo, case, fifos):
    """The router RTL, fed the model's offers and ready windows, hands over every vector in
    the model's cycle at every stream between the core and the link."""
    core = with_fifo(load_core(name), fifo)
    app, res = run_model(core, programs(case, fifo),
                         stream_fifos=(Fifo2(1).depth,) if fifos else ())
    got = run_rtl(core, app)
    n = len(app.cards)
    for c, cd in enumerate(app.cards):
        tx, rx = app.links[c], app.links[(c - 1) % n]
        assert got[c]["tx_in"] == tx.log["hs"], f"card {c}: tx_in handshakes"
        assert got[c]["rx_out"] == rx.log["pops"], f"card {c}: rx_out pops"
        assert len(got[c]["core_tx"]) == len(cd.ring_log["offer"])
    if case == "fifo_full":  # the sender really waited for credits
        hs = app.links[0].log["hs"]
        assert hs[fifo] - hs[fifo - 1] > 2 * wire_cycles(core)


def test_memo_replays_a_ring_loop_exactly():
    """A loop of send/recv rounds on 3 cards: memo and full simulation agree bit for bit."""
    core = load_core("tiny")
    body = "send v=v[r0+0], n=3\nvexp y=v[r0+8], a=v[r0+4], n=4\nrecv v=v[r0+4], n=3\n"
    prog = f"loop count=60, body=4\n{body}endloop\nhalt\n"
    b = micro([prog] * 3, core=core)
    full = Appliance(b, memo_loops=False).run()
    fast = Appliance(b, memo_loops=True).run()
    assert fast.memo_jumps > 0
    assert fast.end == full.end
    assert fast.stats == full.stats
