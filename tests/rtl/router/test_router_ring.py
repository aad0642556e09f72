"""The ring router (rtl/router) on Amaranth's simulator: 2 and 4 routers in a ring through
link models (rtl/tb/link_model.py) with latencies 1..64 and random stalls, random send/recv
traffic standing in for the cores (a slow consumer that leaves the receive FIFO full among
them): no vector lost, duplicated or reordered, no FIFO overflow, and every cycle of a
stall-free run as docs/core.md "Router and ring" gives it (``router_harness.predict``)."""

from __future__ import annotations

import pytest
from router_harness import check_data, check_local, check_timing, run_ring

from dfx.isa.config import load_core

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")

CASES = [  # core, cards, latencies (data, credit per card), consumer, send probability
    ("tiny", 2, (5, 3, 7, 4), "slow", 1.0),
    ("tiny", 4, (1, 1, 64, 2, 33, 17, 3, 9), "random", 0.7),
    ("tiny", 4, (64, 64, 1, 64, 2, 1, 40, 5), "slow", 0.9),
    ("small", 4, (1, 64, 2, 3, 4, 5, 6, 7), "slow", 0.9),
    ("dfx-u280", 2, (29, 29, 1, 2), "slow", 1.0),
    ("dfx-u280", 2, (1, 64, 64, 1), "random", 1.0),
]


@pytest.mark.parametrize("name,n,lats,mode,p", CASES,
                         ids=[f"{c[0]}-{c[1]}cards-{c[3]}-{i}" for i, c in enumerate(CASES)])
def test_ring_exact(name, n, lats, mode, p):
    core = load_core(name)
    f = core.buffers.router_fifo_vectors
    vectors = 2 * f + 8 if mode == "slow" else 40
    ring, cards, _ = run_ring(core, n, list(lats), vectors=vectors, rx_mode=mode, p_send=p,
                              seed=3)
    check_data(cards, n, vectors)
    check_local(ring, cards)
    check_timing(ring, cards, list(lats))
    if mode == "slow":  # the FIFO filled: the sender stopped at exactly fifo vectors
        r = ring.routers[0]
        for c in range(n):
            assert sum(1 for h in cards[c].hs if h < 300) == f
            if f * (r.beat_cycles - 1) > 1:  # the burst of pops outran the credit link
                assert max(cards[(c + 1) % n].cr_count) > 1


STALLS = [  # core, cards, latencies, stall probability, consumer, seed
    ("tiny", 2, (1, 1, 1, 1), 0.5, "fast", 7),
    ("tiny", 4, (3, 64, 17, 1, 64, 64, 2, 8), 0.3, "slow", 11),
    ("tiny", 4, (9, 2, 5, 40, 1, 3, 64, 7), 0.2, "random", 12),
    ("dfx-u280", 4, (29, 29, 1, 64, 7, 3, 64, 2), 0.3, "random", 5),
]


@pytest.mark.parametrize("name,n,lats,stall,mode,seed", STALLS,
                         ids=[f"{c[0]}-{c[1]}cards-stall{c[3]}-{c[4]}" for c in STALLS])
def test_ring_stalls(name, n, lats, stall, mode, seed):
    core = load_core(name)
    ring, cards, _ = run_ring(core, n, list(lats), stall_prob=stall, seed=seed, vectors=40,
                              rx_mode=mode, p_send=0.8)
    check_data(cards, n, 40)
    check_local(ring, cards)
    for c in range(n):
        assert sum(cards[(c + 1) % n].cr_count) == 40  # every credit returned
