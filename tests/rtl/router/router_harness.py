"""Shared by the router tests: a ring of routers and link models (``RouterRing``) on Amaranth's
simulator with testbench traffic standing in for the cores, a per-cycle record of every
handshake and beat, and the cycle rules of docs/core.md "Router and ring" as a reference."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from amaranth.sim import Simulator

from dfx.rtl.router.timing import CreditLane, DataLane
from dfx.rtl.tb.link_model import RouterRing


@dataclass
class Card:
    """What one card's router did, cycle numbers of each event in order."""

    sent: list[int] = field(default_factory=list)  # payloads handed to tx_in, in order
    got: list[int] = field(default_factory=list)  # payloads popped from rx_out, in order
    offer: list[int] = field(default_factory=list)  # tx_in.valid first raised for vector s
    hs: list[int] = field(default_factory=list)  # tx_in handshakes
    tx_valid0: list[int] = field(default_factory=list)  # first cycle next_tx offers beat 0
    tx_acc: list[int] = field(default_factory=list)  # next_tx beat handshakes
    rx_beat: list[int] = field(default_factory=list)  # prev_rx beats (valid)
    rx_head: list[int] = field(default_factory=list)  # first cycle vector s is valid on rx_out
    pops: list[int] = field(default_factory=list)  # rx_out handshakes
    cr_valid0: list[int] = field(default_factory=list)  # first cycle of each credit beat
    cr_acc: list[int] = field(default_factory=list)  # prev_tx credit beats taken
    cr_count: list[int] = field(default_factory=list)  # their counts
    cr_in: list[int] = field(default_factory=list)  # next_rx credit beats (valid)
    cr_in_count: list[int] = field(default_factory=list)  # their counts
    ready_rise: list[int] = field(default_factory=list)  # cycles tx_in.ready rose


def _vec(rng: random.Random, d: int) -> int:
    return rng.getrandbits(16 * d)


def run_ring(core, n, latencies, *, stall_prob=0.0, seed=1, vectors=40, p_send=1.0,
             rx_mode="fast", max_cycles=40000):
    """Each card sends ``vectors`` random vectors to the next (valid with probability
    ``p_send`` per cycle once idle, held until taken) and pops what arrives: ``fast`` (ready
    always), ``random`` (ready half the cycles), ``slow`` (not ready for 300 cycles: the FIFO
    fills; then ready for ``fifo`` cycles, every 7th cycle for 84, then always).
    Returns (ring, cards, cycles)."""
    dut = RouterRing(core, n, latencies, stall_prob, seed)
    rng = random.Random(seed)
    d = core.d
    cards = [Card() for _ in range(n)]
    todo = [[_vec(rng, d) for _ in range(vectors)] for _ in range(n)]
    state = {"cycles": 0}
    B, f = dut.routers[0].beats, dut.routers[0].fifo_vectors

    async def bench(ctx):
        pend = [None] * n  # the payload offered on tx_in[c]
        beat_tx = [0] * n
        tx_prev_valid = [0] * n
        cr_prev_valid = [0] * n
        rx_head_seen = [False] * n
        prev_ready = [1] * n
        cyc = 0
        while cyc < max_cycles:
            for c in range(n):
                k = cards[c]
                if pend[c] is None and todo[c] and rng.random() < p_send:
                    pend[c] = todo[c].pop(0)
                    k.offer.append(cyc)
                ctx.set(dut.tx_in[c].valid, pend[c] is not None)
                ctx.set(dut.tx_in[c].payload.as_value(), pend[c] or 0)
                if rx_mode == "fast":
                    rdy = True
                elif rx_mode == "random":
                    rdy = rng.random() < 0.5
                else:
                    t = cyc - 300 - f  # a burst of fifo pops, every 7th cycle, then all
                    rdy = cyc >= 300 and (t < 0 or t >= 7 * 12 or t % 7 == 0)
                ctx.set(dut.rx_out[c].ready, rdy)
            for c in range(n):
                k, r = cards[c], dut.routers[c]
                ready = ctx.get(dut.tx_in[c].ready)
                if ready and not prev_ready[c]:
                    k.ready_rise.append(cyc)
                prev_ready[c] = ready
                if pend[c] is not None and ready:
                    k.hs.append(cyc)
                    k.sent.append(pend[c])
                    pend[c] = None
                tv = ctx.get(r.next_tx.tvalid)
                if tv and beat_tx[c] == 0 and not tx_prev_valid[c]:
                    k.tx_valid0.append(cyc)
                if tv and ctx.get(r.next_tx.tready):
                    k.tx_acc.append(cyc)
                    beat_tx[c] = (beat_tx[c] + 1) % B
                    tx_prev_valid[c] = 0
                else:
                    tx_prev_valid[c] = tv
                if ctx.get(r.prev_rx.tvalid):
                    k.rx_beat.append(cyc)
                rv = ctx.get(dut.rx_out[c].valid)
                if rv and not rx_head_seen[c]:
                    k.rx_head.append(cyc)
                    rx_head_seen[c] = True
                if rv and ctx.get(dut.rx_out[c].ready):
                    k.pops.append(cyc)
                    k.got.append(ctx.get(dut.rx_out[c].payload.as_value()))
                    rx_head_seen[c] = False
                cv = ctx.get(r.prev_tx.tvalid)
                if cv and not cr_prev_valid[c]:
                    k.cr_valid0.append(cyc)
                if cv and ctx.get(r.prev_tx.tready):
                    k.cr_acc.append(cyc)
                    k.cr_count.append(ctx.get(r.prev_tx.tdata))
                    cr_prev_valid[c] = 0
                else:
                    cr_prev_valid[c] = cv
                if ctx.get(r.next_rx.tvalid):
                    k.cr_in.append(cyc)
                    k.cr_in_count.append(ctx.get(r.next_rx.tdata))
            assert not ctx.get(dut.error), f"cycle {cyc}: a FIFO overflowed"
            await ctx.tick()
            cyc += 1
            if all(sum(k.cr_in_count) == vectors for k in cards):
                break  # every vector popped and every credit back
        state["cycles"] = cyc
        assert not ctx.get(dut.error)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return dut, cards, state["cycles"]


def check_data(cards, n, vectors):
    """Every card got exactly what its predecessor sent, in order."""
    for c in range(n):
        src = cards[(c - 1) % n]
        assert len(src.sent) == vectors, f"card {(c - 1) % n} sent {len(src.sent)}"
        assert cards[c].got == src.sent, f"card {c}: received vectors differ"


def predict(router, data_lat, credit_lat, hs, pops):
    """The cycle rules (dfx.rtl.router.timing) on one link: from the sender's tx_in
    handshakes ``hs`` and the receiver's pops, the first-beat cycles, the rx_out head cycles
    and, per pop, the cycle from which its credit lets tx_in take a vector."""
    data, credit = DataLane(router.core, data_lat), CreditLane(router.core, credit_lat)
    valid0, head = [], []
    for s, h in enumerate(hs):
        c0, arr = data.vector(h)
        valid0.append(c0)
        head.append(max(arr, pops[s - 1] + 1 if s else 0))
    return {"valid0": valid0, "head": head, "pop_arr": [credit.pop(p) for p in pops]}


def check_timing(ring, cards, latencies):
    """Every link of a stall-free run follows :func:`predict` exactly: first beats, rx_out
    heads, and each tx_in handshake at max(offer, when the credit of pop s - fifo is back)."""
    n = ring.n
    for c in range(n):
        k, j, r = cards[c], cards[(c + 1) % n], ring.routers[c]
        pr = predict(r, latencies[2 * c], latencies[2 * c + 1], k.hs, j.pops)
        for key, obs in (("valid0", k.tx_valid0), ("head", j.rx_head)):
            assert pr[key] == obs, f"card {c}: {key}: rule {pr[key]} != RTL {obs}"
        f = r.fifo_vectors
        want = [max(o, pr["pop_arr"][s - f]) if s >= f else o
                for s, o in enumerate(k.offer)]
        assert k.hs == want, f"card {c}: tx_in handshakes differ"
        assert sum(j.cr_count) == len(j.pops), f"card {c + 1}: credits returned != pops"


def check_local(ring, cards):
    """The router's own cycle figures, whatever the links did (stalls included): first beat
    at max(handshake + tx_latency, the previous vector's last beat + 1); rx_out head at
    max(last beat + rx_latency, previous pop + 1); a credit beat from the cycle after the
    first pop it carries (if none was waiting); the sender never has more than
    ``fifo_vectors`` vectors unreturned (delivered and not popped <= fifo)."""
    n = ring.n
    for c in range(n):
        k, j, r = cards[c], cards[(c + 1) % n], ring.routers[c]
        B, f = r.beats, r.fifo_vectors
        for s, h in enumerate(k.hs):
            prev = k.tx_acc[s * B - 1] + 1 if s else 0
            assert k.tx_valid0[s] == max(h + r.tx_latency, prev), f"card {c} vector {s}"
        for s in range(len(j.pops)):
            last = j.rx_beat[s * B + B - 1]
            prev = j.pops[s - 1] + 1 if s else 0
            assert j.rx_head[s] == max(last + r.rx_latency, prev), f"card {c + 1} vector {s}"
        # credit beats: the first starts the cycle after the first pop
        assert j.cr_valid0[0] == j.pops[0] + r.credit_out_latency
        # occupancy: vectors delivered by cycle t minus pops before t never exceed the FIFO
        events = sorted([(j.rx_beat[s * B + B - 1] + r.rx_latency, 1)
                         for s in range(len(j.pops))] + [(p + 1, -1) for p in j.pops])
        level = peak = 0
        for _, dv in events:
            level += dv
            peak = max(peak, level)
        assert peak <= f, f"card {c + 1}: {peak} vectors in a {f}-vector FIFO"
