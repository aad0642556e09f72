"""cocotb testbench of the router unit bench (``dfx regress --bench router``): the Verilog of
:class:`dfx.rtl.tb.link_model.RouterRing` (``BENCH_CARDS`` routers in a ring through link
models with latencies 1..64 and random stalls) under Verilator. Every card sends random
vectors with random gaps and pops what arrives (fast, random, and a slow consumer that leaves
the receive FIFO full); each card must get its predecessor's vectors exactly, in order, and
the ring's ``error`` flag (a FIFO overflow) must stay low.

Environment: ``DFX_CORE`` (core name), ``ROUTER_SEED``.
"""

from __future__ import annotations

import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

from dfx.isa.config import load_core
from dfx.rtl.tb.link_model import BENCH_CARDS

TIMEOUT_MS = 2000  # simulated time per test (10 ns clock): 200k cycles


async def _reset(dut) -> None:
    for c in range(BENCH_CARDS):
        getattr(dut, f"tx_in__{c}__valid").value = 0
        getattr(dut, f"tx_in__{c}__payload").value = 0
        getattr(dut, f"rx_out__{c}__ready").value = 0
    dut.rst.value = 1
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    for _ in range(2):
        await RisingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0


async def _traffic(dut, vectors: int, p_send: float, consumer: str, seed: int) -> int:
    core = load_core(os.environ.get("DFX_CORE", "tiny"))
    n, bits = BENCH_CARDS, 16 * core.d
    fifo = core.buffers.router_fifo_vectors
    rng = random.Random(seed)
    todo = [[rng.getrandbits(bits) for _ in range(vectors)] for _ in range(n)]
    sent: list[list[int]] = [[] for _ in range(n)]
    got: list[list[int]] = [[] for _ in range(n)]
    pend: list[int | None] = [None] * n
    cyc = 0
    while any(len(g) < vectors for g in got):
        cyc += 1
        assert cyc < 150_000, f"stuck: received {[len(g) for g in got]} of {vectors}"
        for c in range(n):
            if pend[c] is None and todo[c] and rng.random() < p_send:
                pend[c] = todo[c].pop(0)
            getattr(dut, f"tx_in__{c}__valid").value = int(pend[c] is not None)
            getattr(dut, f"tx_in__{c}__payload").value = pend[c] or 0
            if consumer == "fast":
                rdy = True
            elif consumer == "random":
                rdy = rng.random() < 0.5
            else:  # not ready until the FIFO is surely full, then a pop every 5th cycle
                rdy = cyc > 40 * fifo and cyc % 5 == 0
            getattr(dut, f"rx_out__{c}__ready").value = int(rdy)
        await ReadOnly()
        for c in range(n):
            if pend[c] is not None and getattr(dut, f"tx_in__{c}__ready").value:
                sent[c].append(pend[c])
                pend[c] = None
            if (getattr(dut, f"rx_out__{c}__ready").value
                    and getattr(dut, f"rx_out__{c}__valid").value):
                got[c].append(getattr(dut, f"rx_out__{c}__payload").value.to_unsigned())
        assert not dut.error.value, f"cycle {cyc}: a receive FIFO overflowed"
        await FallingEdge(dut.clk)
    for c in range(n):
        assert got[c] == sent[(c - 1) % n], f"card {c}: vectors lost, duplicated or reordered"
    return cyc


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
@cocotb.parametrize(consumer=["fast", "random", "slow"])
async def ring_traffic(dut, consumer: str):
    """Random traffic around the ring: every vector arrives once, in order, no overflow."""
    await _reset(dut)
    seed = int(os.environ.get("ROUTER_SEED", "0"))
    await _traffic(dut, 300, 0.8, consumer, seed + len(consumer))
