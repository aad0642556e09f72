"""Fp32ToFp16: FP32 -> FP16 RNE, bit-exact against the golden ``round16``, streamed one value
per cycle: FP16 values, rounding midpoints and their FP32 neighbours (ties to even), subnormal
results, the overflow threshold 65520, FP32 subnormals, inf, NaN payloads, random patterns."""

import numpy as np
import pytest
from amaranth.hdl import Shape
from arith_harness import FP32_CORNERS, check_stream, ref_round16

from dfx.isa.golden import fp as gfp
from dfx.rtl.arith import DEFAULT_CVT_LATENCY, Fp32ToFp16

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


def test_signature_and_default():
    dut = Fp32ToFp16()
    assert dut.latency == DEFAULT_CVT_LATENCY == 2
    members = dict(dut.signature.members)
    assert {k: (m.flow.name, Shape.cast(m.shape).width) for k, m in members.items()} == {
        "a": ("In", 32),
        "valid_in": ("In", 1),
        "en": ("In", 1),
        "result": ("Out", 16),
        "valid_out": ("Out", 1),
    }
    with pytest.raises(AttributeError):
        dut.latency = 1


@pytest.mark.parametrize(
    ("latency", "exc", "msg"),
    [
        (-1, ValueError, "latency must be an integer >= 0, not -1"),
        (None, TypeError, "latency must be an integer >= 0, not None"),
    ],
)
def test_bad_latency(latency, exc, msg):
    with pytest.raises(exc) as info:
        Fp32ToFp16(latency)
    assert str(info.value) == msg


SPECIAL = {
    0x477FE000: 0x7BFF,  # 65504, the largest FP16
    0x477FEFFF: 0x7BFF,  # just below 65520
    0x477FF000: 0x7C00,  # 65520: the tie rounds to even = inf
    0x47800000: 0x7C00,  # 65536
    0x33000000: 0x0000,  # 2^-25: half the smallest subnormal, tie to even = 0
    0x33000001: 0x0001,  # just above it
    0x33C00000: 0x0002,  # 3 * 2^-25: tie between 1 and 2 subnormal ulps -> 2
    0x387FE000: 0x0400,  # largest subnormal + half ulp: tie -> smallest normal (even)
    0x00000001: 0x0000,  # FP32 subnormal -> 0
    0x807FFFFF: 0x8000,  # -> -0
    0x3F801000: 0x3C00,  # 1 + 2^-11: tie -> 1
    0x3F803000: 0x3C02,  # 1 + 3 * 2^-11: tie -> up to even
    0x3F801001: 0x3C01,  # above the tie (needs the sticky bit)
    0xFF800001: 0x7E00,  # signalling NaN with sign -> canonical
    0x7FC12345: 0x7E00,  # quiet NaN with payload -> canonical
}


def test_reference_covers_the_policy():
    assert list(ref_round16(list(SPECIAL))) == list(SPECIAL.values())


def vectors(step: int, n_random: int, seed: int) -> list[int]:
    """Every ``step``-th FP16 value (both signs) as FP32, the midpoints to the next FP16 value,
    one FP32 ulp either side of value and midpoint; corners; random FP32 patterns."""
    rng = np.random.default_rng(seed)
    h = np.concatenate([np.arange(0, 0x7C00, step), [0x3FF, 0x400, 0x7BFE, 0x7BFF]])
    h = np.unique(h).astype(np.uint16)
    lo = gfp.f32_bits(gfp.bits_f16(h).astype(np.float32)).astype(np.int64)
    hi = gfp.f32_bits(gfp.bits_f16((h + 1).astype(np.uint16)).astype(np.float32)).astype(np.int64)
    hi[h == 0x7BFF] = 0x47800000  # "next value" after 65504 is 65536 for rounding purposes
    mid = gfp.f32_bits(((gfp.bits_f32(lo) + gfp.bits_f32(hi)) / 2).astype(np.float32))
    mid = mid.astype(np.int64)
    vals = np.concatenate([lo, lo + 1, lo - 1, mid, mid - 1, mid + 1])
    vals = np.concatenate([vals[vals > 0], (vals[vals > 0] | 0x80000000)])
    vals = np.concatenate([vals, rng.integers(0, 1 << 32, n_random), FP32_CORNERS, list(SPECIAL)])
    return [int(v) & 0xFFFFFFFF for v in vals]


def test_stream_default_latency():
    vals = vectors(step=23, n_random=3000, seed=30)  # ~20k values
    check_stream(Fp32ToFp16(), {"a": vals}, ref_round16(vals), hexw=8)


@pytest.mark.parametrize("latency", [0, 1, 3, 4])
def test_stream_other_latencies(latency):
    vals = vectors(step=211, n_random=300, seed=31 + latency)
    check_stream(Fp32ToFp16(latency), {"a": vals}, ref_round16(vals), hexw=8)
