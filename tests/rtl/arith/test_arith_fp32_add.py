"""Fp32Add: FP32 + FP32 with RNE, bit-exact against the golden model, streamed one pair per
cycle: corner pairs (signed zeros, subnormals, ties, overflow, inf, NaN payloads,
cancellation) and several families of random pairs."""

import numpy as np
import pytest
from amaranth.hdl import Shape
from arith_harness import FP32_CORNERS, all_pairs, check_stream, random_fp32_pairs, ref_add

from dfx.isa.config import load_core
from dfx.rtl.arith import DEFAULT_ADD_LATENCY, Fp32Add

# construction-only tests build components they never elaborate
pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


def test_defaults_follow_the_dfx_core():
    core = load_core("dfx-u280")
    assert DEFAULT_ADD_LATENCY == core.mpu.add_latency == 11
    assert Fp32Add().latency == 11
    assert Fp32Add.from_core(core).latency == 11
    assert Fp32Add.from_core(load_core("tiny")).latency == load_core("tiny").mpu.add_latency


def test_signature():
    members = dict(Fp32Add(1).signature.members)
    assert {k: (m.flow.name, Shape.cast(m.shape).width) for k, m in members.items()} == {
        "a": ("In", 32),
        "b": ("In", 32),
        "valid_in": ("In", 1),
        "en": ("In", 1),
        "result": ("Out", 32),
        "valid_out": ("Out", 1),
    }


@pytest.mark.parametrize(
    ("latency", "exc", "msg"),
    [
        (-3, ValueError, "latency must be an integer >= 0, not -3"),
        ("11", TypeError, "latency must be an integer >= 0, not '11'"),
    ],
)
def test_bad_latency(latency, exc, msg):
    with pytest.raises(exc) as info:
        Fp32Add(latency)
    assert str(info.value) == msg


def test_latency_is_read_only():
    with pytest.raises(AttributeError):
        Fp32Add(2).latency = 3


def test_reference_covers_the_policy():
    """The vectors below really contain the cases the policy names."""
    one, half_ulp, inf, qnan = 0x3F800000, 0x33800000, 0x7F800000, 0x7FC00000
    cases = {
        (one, one | 1 << 31): 0x00000000,  # x + (-x) = +0
        (1 << 31, 1 << 31): 0x80000000,  # (-0) + (-0) = -0
        (one, half_ulp): one,  # tie, to even (down)
        (one | 1, half_ulp): one + 2,  # tie, to even (up)
        (0x7F7FFFFF, 0x73000000): inf,  # overflow by rounding
        (inf, inf | 1 << 31): qnan,  # inf - inf
        (0xFF812345, one): qnan,  # NaN with payload and sign -> canonical
        (0x00000001, 0x80000002): 0x80000001,  # subnormal result
        (0x007FFFFF, 0x00000001): 0x00800000,  # subnormal sum becomes normal
    }
    a, b = zip(*cases, strict=True)
    assert list(ref_add(a, b)) == list(cases.values())
    assert set(a) | set(b) <= set(FP32_CORNERS) | {one | 1, 0xFF812345, 0x73000000, 0x80000002}


def vectors(n_per_kind: int, seed: int) -> tuple[list[int], list[int]]:
    a, b = all_pairs(FP32_CORNERS)
    x, y = random_fp32_pairs(np.random.default_rng(seed), n_per_kind)
    extra_a = [0x3F800001, 0xFF812345, 0x7F7FFFFF]
    extra_b = [0x33800000, 0x3F800000, 0x73000000]
    return a + [int(v) for v in x] + extra_a, b + [int(v) for v in y] + extra_b


def test_stream_default_latency():
    a, b = vectors(500, seed=20)  # 3844 corner pairs + 3000 random + 3
    check_stream(Fp32Add(), {"a": a, "b": b}, ref_add(a, b))


@pytest.mark.parametrize("latency", [0, 1, 3, 5, 7])
def test_stream_other_latencies(latency):
    rng = np.random.default_rng(21 + latency)
    a, b = random_fp32_pairs(rng, 60)
    corners = rng.choice(len(FP32_CORNERS), (2, 200))
    a = [int(v) for v in a] + [FP32_CORNERS[i] for i in corners[0]]
    b = [int(v) for v in b] + [FP32_CORNERS[i] for i in corners[1]]
    check_stream(Fp32Add(latency), {"a": a, "b": b}, ref_add(a, b))
