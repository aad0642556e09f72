"""cocotb testbench for ``smoke_design.SmokeAlu`` (run by ``test_verilator_smoke.py``).

Runs inside the simulator process; keep it free of Amaranth imports so start-up stays fast.
"""

import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, RisingEdge

CLOCK_PERIOD_NS = 10


def model(a: int, b: int, op: int, old: int) -> int:
    """Value of ``result`` after one enabled clock edge."""
    return [(a + b) & 0xFF, (a - b) & 0xFF, a ^ b, old][op]


class TB:
    """Clock, reset and input driving for a ``SmokeAlu`` DUT."""

    def __init__(self, dut):
        self.dut = dut
        self.clock = Clock(dut.clk, CLOCK_PERIOD_NS, unit="ns")

    async def start(self) -> None:
        """Start the clock with all inputs at 0 and hold Amaranth's sync reset for 2 cycles.

        Returns at a falling edge with reset released, ready for :meth:`step`.
        """
        dut = self.dut
        for port in (dut.a, dut.b, dut.op, dut.en):
            port.value = 0
        dut.rst.value = 1
        self.clock.start()
        for _ in range(2):
            await RisingEdge(dut.clk)
        await FallingEdge(dut.clk)
        dut.rst.value = 0

    async def step(self, a: int, b: int, op: int, en: int) -> None:
        """Drive inputs now (at a falling edge) and return at the next falling edge.

        The DUT has then seen exactly one rising edge with these inputs and its outputs are
        stable, so they can be read.
        """
        dut = self.dut
        dut.a.value, dut.b.value, dut.op.value, dut.en.value = a, b, op, en
        await FallingEdge(dut.clk)


@cocotb.test(timeout_time=200, timeout_unit="us")
async def alu_and_counter(dut):
    """Directed corner cases, then seeded random vectors, checked against ``model``."""
    tb = TB(dut)
    await tb.start()
    assert dut.result.value.to_unsigned() == 0, "result not cleared by reset"
    assert dut.count.value.to_unsigned() == 0, "count not cleared by reset"

    directed = [
        (255, 1, 0, 1),  # add wraps to 0
        (0, 1, 1, 1),  # sub wraps to 255
        (0xA5, 0xFF, 2, 1),  # xor
        (7, 9, 0, 0),  # en=0 holds
        (7, 9, 3, 1),  # op=3 holds
        (200, 100, 0, 1),
    ]
    rng = random.Random(1234)
    vectors = directed + [
        (rng.randrange(256), rng.randrange(256), rng.randrange(4), rng.randrange(2))
        for _ in range(500)
    ]

    result, count = 0, 0
    for a, b, op, en in vectors:
        await tb.step(a, b, op, en)
        if en:
            result = model(a, b, op, result)
        count = (count + 1) & 0xFF
        got = dut.result.value.to_unsigned()
        assert got == result, f"a={a} b={b} op={op} en={en}: result {got} != {result}"
        assert dut.count.value.to_unsigned() == count
        assert int(dut.count_is_3.value) == (count == 3)
        assert int(dut.zero.value) == (op == 0)
    dut._log.info("checked %d vectors", len(vectors))
