"""The issue plan's saturating arithmetic (rtl/issue/saturate.py) against Python integers."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.sim import Simulator

from dfx.rtl.issue.saturate import sat, sat_keep_low, sat_mul


def _values(rng: np.random.Generator, bits: int, n: int, signed_: bool) -> list[int]:
    lo = -(1 << (bits - 1)) if signed_ else 0
    hi = (1 << (bits - 1)) - 1 if signed_ else (1 << bits) - 1
    edges = [lo, hi, 0, 1, 2, 3]
    rand = [int(rng.integers(0, 1 << int(rng.integers(1, bits)))) for _ in range(n)]
    return [v for v in edges + rand + [-v for v in rand] if lo <= v <= hi]


def _run(inputs: list[Signal], output, cases: list[tuple[int, ...]]) -> list[int]:
    m = Module()
    m.d.comb += Signal.like(output).eq(output)
    got: list[int] = []

    async def bench(ctx):
        for case in cases:
            for s, v in zip(inputs, case, strict=True):
                ctx.set(s, v)
            got.append(ctx.get(output))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    return got


@pytest.mark.parametrize("cap", [5, 8193, (1 << 35) + 1])
def test_sat_clamps_signed_values(cap: int) -> None:
    x = Signal(signed(64))
    vals = _values(np.random.default_rng(cap), 64, 60, True)
    got = _run([x], sat(x, cap), [(v,) for v in vals])
    assert got == [min(max(v, 0), cap) for v in vals]


def test_sat_keep_low_keeps_the_residue() -> None:
    x = Signal(signed(64))
    vals = [v for v in _values(np.random.default_rng(1), 64, 80, True) if v >= 0]
    got = _run([x], sat_keep_low(x, 20, 6), [(v,) for v in vals])
    assert got == [v if v < (1 << 20) else (1 << 20) + (v & 63) for v in vals]
    with pytest.raises(ValueError, match="below cap_bits"):
        sat_keep_low(x, 6, 6)


@pytest.mark.parametrize("cap,wa,wb", [(8193, 14, 8), ((1 << 35) + 1, 36, 36),
                                       ((1 << 40) + 1, 41, 32)])
def test_sat_mul_is_the_saturated_product(cap: int, wa: int, wb: int) -> None:
    """Narrow products directly, wide ones (> 64 bits) from two narrow ones."""
    a, b = Signal(unsigned(wa)), Signal(unsigned(wb))
    rng = np.random.default_rng(wa)
    va = [min(v, cap) for v in _values(rng, wa, 25, False)]
    vb = [min(v, cap) for v in _values(rng, wb, 25, False)]
    cases = [(x, y) for x in va for y in vb]
    got = _run([a, b], sat_mul(a, b, cap), cases)
    assert got == [min(x * y, cap) for x, y in cases]


def test_sat_mul_refuses_factors_wider_than_the_cap() -> None:
    with pytest.raises(ValueError, match="exceed the cap"):
        sat_mul(Signal(unsigned(40)), Signal(unsigned(8)), 1000)
