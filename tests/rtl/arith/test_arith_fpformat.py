"""Shared helpers of dfx.rtl.arith: register spreading, latency checks, LZC and sticky shift."""

import numpy as np
import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from dfx.rtl.arith.fpformat import FP16, FP32, check_latency, lzc, shift_right_sticky, spread


def test_formats():
    assert (FP16.width, FP16.bias, FP16.sig_bits, FP16.exp_max) == (16, 15, 11, 31)
    assert (FP32.width, FP32.bias, FP32.sig_bits, FP32.exp_max) == (32, 127, 24, 255)
    assert FP16.inf_bits(1) == 0xFC00 and FP32.inf_bits() == 0x7F800000
    assert (FP16.nan_bits, FP32.nan_bits) == (0x7E00, 0x7FC00000)


def test_spread():
    assert spread(11, 5) == [2, 2, 2, 2, 3]
    assert spread(6, 3) == [2, 2, 2]
    assert spread(0, 4) == [0, 0, 0, 0]
    assert spread(1, 3) == [0, 0, 1]
    assert spread(2, 3) == [0, 1, 1]
    for latency in range(25):
        for steps in range(1, 7):
            counts = spread(latency, steps)
            assert len(counts) == steps and sum(counts) == latency
            assert max(counts) - min(counts) <= 1
            assert latency == 0 or counts[-1] >= 1  # registered output


@pytest.mark.parametrize(
    ("value", "exc", "msg"),
    [
        (-1, ValueError, "latency must be an integer >= 0, not -1"),
        (1.0, TypeError, "latency must be an integer >= 0, not 1.0"),
        (True, TypeError, "latency must be an integer >= 0, not True"),
        ("3", TypeError, "latency must be an integer >= 0, not '3'"),
        (None, TypeError, "latency must be an integer >= 0, not None"),
    ],
)
def test_check_latency_rejects(value, exc, msg):
    with pytest.raises(exc) as info:
        check_latency(value)
    assert str(info.value) == msg


def test_check_latency_accepts():
    assert check_latency(0) == 0
    assert check_latency(np.int64(7)) == 7 and type(check_latency(np.int64(7))) is int
    with pytest.raises(ValueError, match=r"^stages must be an integer >= 1, not 0$"):
        check_latency(0, minimum=1, name="stages")


def _comb_sim(m, drive, observe, cases):
    out = []

    async def tb(ctx):
        for case in cases:
            for sig, v in zip(drive, case, strict=True):
                ctx.set(sig, v)
            out.append(tuple(ctx.get(s) for s in observe))
            await ctx.delay(1e-9)

    sim = Simulator(m)
    sim.add_testbench(tb)
    sim.run()
    return out


def _py_lzc(v, w):
    return w - v.bit_length()


def test_lzc_exhaustive_11_bits_and_random_28():
    m = Module()
    a, b = Signal(11), Signal(28)
    ca, cb = lzc(m, a, "la"), lzc(m, b, "lb")
    assert len(ca) == 4 and len(cb) == 5
    rng = np.random.default_rng(5)
    xs, ss = rng.integers(0, 1 << 28, 2044), rng.integers(0, 29, 2044)
    bs = [0, 1, (1 << 28) - 1, 1 << 27] + [int(x) >> int(s) for x, s in zip(xs, ss, strict=True)]
    cases = list(zip(range(2048), bs, strict=True))
    got = _comb_sim(m, (a, b), (ca, cb), cases)
    assert got == [(_py_lzc(x, 11), _py_lzc(y, 28)) for x, y in cases]


def test_shift_right_sticky():
    m = Module()
    v, amt = Signal(27), Signal(8)
    shifted, sticky = shift_right_sticky(m, v, amt, "s")
    rng = np.random.default_rng(6)
    xs, ss = rng.integers(0, 1 << 27, 1500), rng.integers(0, 40, 1500)
    cases = [(int(x), int(s)) for x, s in zip(xs, ss, strict=True)]
    cases += [
        ((1 << 27) - 1, 255),
        (1, 27),
        (1, 26),
        (1 << 26, 26),
        (1 << 26, 27),
        (0, 200),
        (5, 0),
    ]
    got = _comb_sim(m, (v, amt), (shifted, sticky), cases)
    want = [(x >> s, int(x & ((1 << min(s, 27)) - 1) != 0)) for x, s in cases]
    assert got == want
