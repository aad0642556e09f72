"""Fp16Mul: FP16 x FP16 -> exact FP32, bit-exact against the golden model, streamed one pair
per cycle through the pipeline."""

import numpy as np
import pytest
from amaranth.hdl import Shape
from arith_harness import FP16_CORNERS, all_pairs, check_stream, ref_mul

from dfx.isa.config import load_core
from dfx.rtl.arith import DEFAULT_MUL_LATENCY, Fp16Mul

# construction-only tests build components they never elaborate
pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


def test_defaults_follow_the_dfx_core():
    core = load_core("dfx-u280")
    assert DEFAULT_MUL_LATENCY == core.mpu.mul_latency == 6
    assert Fp16Mul().latency == 6
    assert Fp16Mul.from_core(core).latency == 6
    assert Fp16Mul.from_core(load_core("tiny")).latency == load_core("tiny").mpu.mul_latency


def test_signature():
    members = dict(Fp16Mul(1).signature.members)
    assert {k: (m.flow.name, Shape.cast(m.shape).width) for k, m in members.items()} == {
        "a": ("In", 16),
        "b": ("In", 16),
        "valid_in": ("In", 1),
        "en": ("In", 1),
        "result": ("Out", 32),
        "valid_out": ("Out", 1),
    }
    assert members["en"].init == 1


@pytest.mark.parametrize(
    ("latency", "exc", "msg"),
    [
        (-1, ValueError, "latency must be an integer >= 0, not -1"),
        (2.5, TypeError, "latency must be an integer >= 0, not 2.5"),
        (False, TypeError, "latency must be an integer >= 0, not False"),
    ],
)
def test_bad_latency(latency, exc, msg):
    with pytest.raises(exc) as info:
        Fp16Mul(latency)
    assert str(info.value) == msg


def test_latency_is_read_only():
    dut = Fp16Mul(3)
    with pytest.raises(AttributeError):
        dut.latency = 4


def vectors(n_random: int, seed: int) -> tuple[list[int], list[int]]:
    """All corner pairs, random patterns, and random subnormal x anything."""
    rng = np.random.default_rng(seed)
    a, b = all_pairs(FP16_CORNERS)
    a += [int(x) for x in rng.integers(0, 1 << 16, n_random)]
    b += [int(x) for x in rng.integers(0, 1 << 16, n_random)]
    sub = rng.integers(0, 0x400, n_random // 3) | (rng.integers(0, 2, n_random // 3) << 15)
    a += [int(x) for x in sub]
    b += [int(x) for x in rng.integers(0, 1 << 16, n_random // 3)]
    return a, b


def test_stream_default_latency():
    a, b = vectors(3000, seed=10)  # 1369 corner pairs + 4000 random
    check_stream(Fp16Mul(), {"a": a, "b": b}, ref_mul(a, b))


@pytest.mark.parametrize("latency", [0, 1, 2, 4])
def test_stream_other_latencies(latency):
    a, b = vectors(300, seed=11 + latency)
    check_stream(Fp16Mul(latency), {"a": a, "b": b}, ref_mul(a, b))
