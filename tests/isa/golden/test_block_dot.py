"""The MFU lane dot product ``block_dot32`` (docs/numerics.md §3) against an integer reference
written from the definition: align to the largest exponent with F fraction bits, floor, sum
exactly, round once to FP32."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from dfx.isa.golden import fp

F = fp.DOT_FRAC_BITS


def _fields(h: int) -> tuple[int, int, int, bool]:
    """(sign, significand, effective exponent, finite) of FP16 bits ``h``."""
    s, e, f = h >> 15, (h >> 10) & 31, h & 1023
    return s, f | (1024 if e else 0), max(e, 1), e != 31


def _rn32(v: Fraction) -> int:
    """FP32 bits of the RNE rounding of a non-zero ``v`` in FP32's normal range."""
    sign = v < 0
    a = abs(v)
    k = a.numerator.bit_length() - a.denominator.bit_length()
    if Fraction(2) ** k > a:
        k -= 1
    q = a / Fraction(2) ** (k - 23)  # in [2^23, 2^24)
    m = q.numerator // q.denominator
    rem = q - m
    if rem > Fraction(1, 2) or (rem == Fraction(1, 2) and m & 1):
        m += 1
    if m == 1 << 24:
        m, k = m >> 1, k + 1
    return (sign << 31) | ((k + 127) << 23) | (m - (1 << 23))


def reference(a16: np.ndarray, b16: np.ndarray) -> int:
    """FP32 bits of the definition, for finite FP16 vectors."""
    terms = []
    for x, y in zip(a16.view(np.uint16).tolist(), b16.view(np.uint16).tolist(), strict=True):
        sx, mx, ex, _ = _fields(x)
        sy, my, ey, _ = _fields(y)
        terms.append((-1 if sx ^ sy else 1, mx * my, ex + ey))
    live = [e for _, m, e in terms if m]
    if not live:
        return 0
    big = max(live)
    total = sum((s * m << F) >> (big - e) for s, m, e in terms)  # >> on ints is floor
    if total == 0:
        return 0
    return _rn32(Fraction(total) * Fraction(2) ** (big - 50 - F))


def _random16(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Finite FP16 values of every magnitude: normals, subnormals, zeros of both signs."""
    bits = rng.integers(0, 0x7C00, size=shape, dtype=np.uint16)
    bits |= (rng.integers(0, 2, size=shape, dtype=np.uint16) << 15).astype(np.uint16)
    return bits.view(np.float16)


@pytest.mark.parametrize("d", [1, 2, 8, 64])
def test_matches_the_integer_definition(d: int) -> None:
    rng = np.random.default_rng(7 + d)
    cases = [_random16(rng, (d,)) for _ in range(2)] + [
        rng.normal(0, s, d).astype(np.float16) for s in (1e-6, 1e-3, 1.0, 30.0)
    ]
    for a in cases:
        for b in (_random16(rng, (d,)), rng.normal(0, 0.5, d).astype(np.float16), a):
            got = int(fp.f32_bits(fp.block_dot32(a, b)))
            assert got == reference(a, b), (a, b)


def test_batched_along_any_axis() -> None:
    rng = np.random.default_rng(3)
    a = rng.normal(0, 1, (5, 16)).astype(np.float16)
    b = rng.normal(0, 1, (16, 7)).astype(np.float16)
    got = fp.f32_bits(fp.block_dot32(a[:, :, None], b[None, :, :], axis=1))
    want = [[reference(a[i], b[:, j]) for j in range(7)] for i in range(5)]
    assert np.array_equal(got, np.array(want, dtype=np.uint32))


def test_exact_when_the_window_holds_every_product() -> None:
    # products within F bits of each other's exponents are exact: one rounding of the true sum
    a = np.float16([1.0, 2.0 ** -10, 3.0, -1.5])
    b = np.float16([1.0, 1.0, 1.0 / 3, 2.0 ** -11])
    exact = sum(Fraction(float(x)) * Fraction(float(y)) for x, y in zip(a, b, strict=True))
    assert int(fp.f32_bits(fp.block_dot32(a, b))) == _rn32(exact)


def test_cancellation_and_the_example_of_the_old_tree() -> None:
    # [1e4, 1, -1e4, 1] sums to 2 exactly (the old FP32 tree of §3 gave 2 too, halves 0)
    a = np.float16([10000.0, 1.0, -10000.0, 1.0])
    assert float(fp.block_dot32(a, np.ones(4, np.float16))) == 2.0
    # truncation: a tiny negative term far below the window floors to -1 unit, 2^(E-50-F)
    # (E = 30 for 1 x 1), where the exact sum is -2^-48
    a = np.float16([1.0, -1.0, -(2.0 ** -24)])
    got = float(fp.block_dot32(a, np.float16([1.0, 1.0, 2.0 ** -24])))
    assert got == -(2.0 ** (30 - 50 - F))


def test_zero_sums_are_positive() -> None:
    assert int(fp.f32_bits(fp.block_dot32(np.float16([-0.0, -0.0]), np.float16([1, 1])))) == 0
    assert int(fp.f32_bits(fp.block_dot32(np.float16([2, -2]), np.float16([3, 3])))) == 0
    assert int(fp.f32_bits(fp.block_dot32(np.zeros(8, np.float16), np.zeros(8, np.float16)))) == 0


@pytest.mark.parametrize(
    ("a", "b", "want"),
    [
        ([np.inf, 1.0], [1.0, 5.0], 0x7F800000),
        ([np.inf, 1.0], [-1.0, 5.0], 0xFF800000),
        ([np.inf, np.inf], [1.0, -1.0], fp.NAN32_BITS),
        ([np.inf, 1.0], [0.0, 1.0], fp.NAN32_BITS),
        ([np.nan, 1.0], [1.0, 1.0], fp.NAN32_BITS),
        ([65504.0, np.inf], [65504.0, 2.0], 0x7F800000),
    ],
)
def test_inf_and_nan_follow_ieee_addition(a: list, b: list, want: int) -> None:
    assert int(fp.f32_bits(fp.block_dot32(np.float16(a), np.float16(b)))) == want


def test_largest_and_smallest_products_stay_normal() -> None:
    big = np.full(64, 65504.0, np.float16)
    assert float(fp.block_dot32(big, big)) == float(np.float32(64 * 65504.0 ** 2))
    tiny = np.full(4, 2.0 ** -24, np.float16)
    assert float(fp.block_dot32(tiny, tiny)) == 4 * 2.0 ** -48


def test_dot_exp16() -> None:
    x = np.float16([1.0, 2.0 ** -14, 2.0 ** -15, 2.0 ** -24, 65504.0, 0.0, -0.0, np.inf, np.nan])
    assert fp.dot_exp16(x).tolist() == [15, 1, 1, 1, 30, -64, -64, -64, -64]
