"""The router's parameters and cycle figures from the configuration (rtl/router), its
parameter checks, and the link model (rtl/tb/link_model.py) alone: rate, delivery cycle and
stalls exactly as its docstring says."""

from __future__ import annotations

import random
from fractions import Fraction

import pytest
from amaranth.hdl import Module
from amaranth.sim import Simulator

from dfx.isa.config import load_core
from dfx.rtl.router import Router, connect_ring
from dfx.rtl.router.link import LinkSignature, beat_cycles, link_bits, vector_beats
from dfx.rtl.router.rx import RouterRx
from dfx.rtl.router.tx import RouterTx
from dfx.rtl.tb.link_model import STALL_BITS, LinkModel, RouterRing

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


@pytest.mark.parametrize("name,bits,beats,rate", [
    ("tiny", 128, 1, Fraction(33, 25)), ("small", 128, 2, Fraction(132, 125)),
    ("dfx-u280", 512, 2, Fraction(132, 125))])
def test_router_figures(name, bits, beats, rate):
    core = load_core(name)
    r = Router(core)
    assert (r.link_bits, r.beats, r.beat_cycles) == (bits, beats, rate)
    assert link_bits(core) % core.b.qsfp.user_bits == 0
    # the link width carries the line rate at the core clock (one beat per cycle at most)
    assert r.beat_cycles >= 1 and r.link_bits - core.b.qsfp.user_bits < r.link_bits / r.beat_cycles
    assert r.vector_cycles == vector_beats(core) * beat_cycles(core)
    rl = core.timing.router_latency
    assert (r.tx_latency, r.rx_latency, r.credit_out_latency, r.credit_in_latency) == (rl, rl, 1, 1)
    assert r.fifo_vectors == core.buffers.router_fifo_vectors
    ports = {p: tuple(getattr(r, p).signature.members) for p in
             ("next_tx", "next_rx", "prev_rx", "prev_tx")}
    assert ports == {"next_tx": ("tdata", "tvalid", "tready"), "next_rx": ("tdata", "tvalid"),
                     "prev_rx": ("tdata", "tvalid"), "prev_tx": ("tdata", "tvalid", "tready")}


def test_parameter_errors():
    core = load_core("tiny")
    with pytest.raises(TypeError, match="core must be a CoreConfig"):
        Router(object())
    with pytest.raises(ValueError, match="latency must be an integer >= 1"):
        RouterTx(d=8, link_bits=128, fifo=8, latency=0)
    with pytest.raises(ValueError, match="cannot hold a count up to fifo = 300"):
        RouterRx(d=8, link_bits=8, fifo=300, latency=1)
    with pytest.raises(ValueError, match="latency must be an integer >= 1"):
        LinkModel(core, 0)
    with pytest.raises(ValueError, match=r"stall_prob must be a number in \[0, 1\)"):
        LinkModel(core, 3, 1.0)
    with pytest.raises(ValueError, match="seed must be an integer in 1"):
        LinkModel(core, 3, 0.1, 0)
    with pytest.raises(ValueError, match="rate must be >= 1"):
        LinkModel(core, 3, rate=Fraction(1, 2))
    with pytest.raises(ValueError, match="n must be an integer >= 2"):
        RouterRing(core, 1, [1, 1])
    with pytest.raises(ValueError, match="latencies needs 2n = 4"):
        RouterRing(core, 2, [1, 1, 1])
    with pytest.raises(ValueError, match="a ring needs at least 2 routers"):
        connect_ring(Module(), [Router(core)], [])
    with pytest.raises(ValueError, match="bits must be a positive integer"):
        LinkSignature(0, ready=True)


@pytest.mark.parametrize("rate,latency,stall", [
    (Fraction(1), 1, 0.0), (Fraction(33, 25), 5, 0.0), (Fraction(132, 125), 64, 0.0),
    (Fraction(5, 2), 3, 0.0), (Fraction(33, 25), 7, 0.4)])
def test_link_model(rate, latency, stall):
    """Beats offered with random gaps: taken iff the link is free and the cycle is not
    stalled (the LFSR replayed in Python), delivered in ceil(E) + latency - 1, in order."""
    core = load_core("tiny")
    lk = LinkModel(core, latency, stall, seed=99, rate=rate)
    num, q = rate.numerator, rate.denominator
    rng = random.Random(latency)
    n = 300
    got, want = [], []

    async def bench(ctx):
        lfsr, free, nxt, cyc = 99, 0, 0, 0
        while len(got) < n and cyc < 5000:
            offer = nxt < n and rng.random() < 0.8
            ctx.set(lk.i.tvalid, offer)
            ctx.set(lk.i.tdata, nxt)
            stalled = (lfsr & ((1 << STALL_BITS) - 1)) < round(stall * (1 << STALL_BITS))
            ready = free < (cyc + 1) * q and not stalled
            assert ctx.get(lk.i.tready) == ready, cyc
            if offer and ready:
                free = max(free, cyc * q) + num
                want.append((-(-free // q) + latency - 1, nxt))
                nxt += 1
            if ctx.get(lk.o.tvalid):
                got.append((cyc, ctx.get(lk.o.tdata)))
            assert not ctx.get(lk.full)
            lfsr = (lfsr >> 1) ^ (0x80200003 if lfsr & 1 else 0)
            await ctx.tick()
            cyc += 1

    sim = Simulator(lk)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert got == want[:len(got)] and len(got) == n
