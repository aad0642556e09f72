"""BlockDot: the MFU lane dot product (golden ``block_dot32``, docs/numerics.md §3), one vector
pair per cycle, bit for bit on Amaranth's simulator."""

from __future__ import annotations

import numpy as np
import pytest
from arith_harness import FP16_CORNERS, check_stream

from dfx.isa.config import load_core
from dfx.isa.golden import fp as gfp
from dfx.rtl.arith.block_dot import BlockDot

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


def test_geometry_and_latency() -> None:
    u = BlockDot.from_core(load_core("dfx-u280"))
    assert (u.d, u.depth, u.latency) == (64, 6, 6 + load_core("dfx-u280").mpu.dot_latency)
    assert (u.term_bits, u.sum_bits) == (23 + gfp.DOT_FRAC_BITS, 29 + gfp.DOT_FRAC_BITS)
    members = dict(BlockDot(4, mul_latency=1, dot_latency=1).signature.members)
    assert sorted(members) == ["a", "b", "en", "result", "valid_in", "valid_out"]


@pytest.mark.parametrize(
    ("kwargs", "exc", "msg"),
    [
        ({"d": 3}, ValueError, "d must be a power of two, not 3"),
        ({"mul_latency": -1}, ValueError, "mul_latency must be an integer >= 0, not -1"),
        ({"dot_latency": 1.5}, TypeError, "dot_latency must be an integer >= 0, not 1.5"),
        ({"frac_bits": 41}, ValueError, "frac_bits must be an integer in 0..40, not 41"),
    ],
)
def test_bad_parameters(kwargs: dict, exc: type, msg: str) -> None:
    args = {"d": 4, "mul_latency": 1, "dot_latency": 1} | kwargs
    with pytest.raises(exc) as info:
        BlockDot(**args)
    assert str(info.value) == msg


def vectors(d: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``k`` pairs of d FP16 patterns: every magnitude, cancellations, corner values."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 1 << 16, (k, d)).astype(np.uint16)
    b = rng.integers(0, 1 << 16, (k, d)).astype(np.uint16)
    finite = (a & 0x7C00) != 0x7C00
    a = np.where(finite | (rng.random((k, d)) < 0.02), a, a & 0x83FF)  # few inf/NaN
    b = np.where((b & 0x7C00) != 0x7C00, b, b & 0xBBFF)
    q = k // 4
    for r in range(q):  # GPT-2-like rows
        a[r] = gfp.f16_bits(rng.normal(0, 1, d).astype(np.float16))
        b[r] = gfp.f16_bits(rng.normal(0, 0.05, d).astype(np.float16))
    for r in range(q, 2 * q if d > 1 else q):  # the second half cancels the first
        a[r, d // 2 :] = a[r, : d // 2] ^ 0x8000
        b[r, d // 2 :] = b[r, : d // 2]
    corners = np.array(FP16_CORNERS, dtype=np.uint16)
    for r in range(2 * q, 3 * q):
        a[r] = rng.choice(corners, d)
        b[r] = rng.choice(corners, d)
    return a, b


@pytest.mark.parametrize(("d", "mul_latency", "dot_latency"),
                         [(1, 0, 0), (2, 1, 1), (8, 2, 2), (16, 3, 3), (8, 0, 5)])
def test_matches_golden(d: int, mul_latency: int, dot_latency: int) -> None:
    a, b = vectors(d, 48, seed=11 + d + dot_latency)
    want = gfp.f32_bits(gfp.block_dot32(gfp.bits_f16(a), gfp.bits_f16(b), axis=1))
    dut = BlockDot(d, mul_latency=mul_latency, dot_latency=dot_latency)
    inputs = {f"a[{i}]": a[:, i].tolist() for i in range(d)}
    inputs |= {f"b[{i}]": b[:, i].tolist() for i in range(d)}
    check_stream(dut, inputs, [int(x) for x in want])


@pytest.mark.slow
def test_matches_golden_full_size() -> None:
    core = load_core("dfx-u280")
    a, b = vectors(64, 24, seed=5)
    want = gfp.f32_bits(gfp.block_dot32(gfp.bits_f16(a), gfp.bits_f16(b), axis=1))
    dut = BlockDot.from_core(core)
    inputs = {f"a[{i}]": a[:, i].tolist() for i in range(64)}
    inputs |= {f"b[{i}]": b[:, i].tolist() for i in range(64)}
    check_stream(dut, inputs, [int(x) for x in want])


def signed_vectors(d: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows that exercise the signed product (the sign applied to b's significand before the
    multiply): every product negative, -0 and zero operands with either sign, full-significand
    and subnormal operands, and small negative products beside one large product (alignment
    shifts of 35 or more: floor gives -1 for a negative term, 0 for a positive one)."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 0x7C00, (k, d)).astype(np.uint16)  # finite magnitudes
    b = rng.integers(0, 0x7C00, (k, d)).astype(np.uint16)
    kinds = 6
    for r in range(k):
        kind = r % kinds
        if kind == 0:  # all negative: exactly one operand of each pair negative
            neg_a = rng.random(d) < 0.5
            a[r] = np.where(neg_a, a[r] | 0x8000, a[r])
            b[r] = np.where(neg_a, b[r], b[r] | 0x8000)
        elif kind == 1:  # zeros of either sign against anything, and -x * -y
            a[r, ::2] = rng.choice(np.array([0x0000, 0x8000], dtype=np.uint16), (d + 1) // 2)
            b[r] |= 0x8000
            a[r, 1::2] |= 0x8000
        elif kind == 2:  # full significands (0x3FF fraction) and subnormals, random signs
            a[r] = (a[r] & 0xFC00) | 0x03FF
            b[r] = rng.integers(1, 0x0400, d).astype(np.uint16)
            a[r] |= (rng.random(d) < 0.5).astype(np.uint16) << 15
            b[r] |= (rng.random(d) < 0.5).astype(np.uint16) << 15
        else:  # one large product, the rest tiny (shifts >= 35), signs random
            a[r] = rng.integers(1, 0x0400, d).astype(np.uint16)  # subnormals
            b[r] = rng.integers(0x0400, 0x1000, d).astype(np.uint16)
            j = int(rng.integers(d))
            a[r, j], b[r, j] = 0x7800 | rng.integers(0x400), 0x7800 | rng.integers(0x400)
            a[r] |= (rng.random(d) < (0.5 if kind == 3 else 1.0)).astype(np.uint16) << 15
            if kind == 5:
                b[r, j] ^= 0x8000  # the large product positive, every tiny one negative
    return a, b


@pytest.mark.parametrize(("d", "mul_latency", "dot_latency"), [(8, 2, 2), (16, 6, 7)])
def test_signed_products(d: int, mul_latency: int, dot_latency: int) -> None:
    a, b = signed_vectors(d, 60, seed=3 + d)
    want = gfp.f32_bits(gfp.block_dot32(gfp.bits_f16(a), gfp.bits_f16(b), axis=1))
    dut = BlockDot(d, mul_latency=mul_latency, dot_latency=dot_latency)
    inputs = {f"a[{i}]": a[:, i].tolist() for i in range(d)}
    inputs |= {f"b[{i}]": b[:, i].tolist() for i in range(d)}
    check_stream(dut, inputs, [int(x) for x in want])
