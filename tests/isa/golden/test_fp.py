"""FP16/FP32 primitives vs independent references (integer bit arithmetic, exact fractions)."""

from __future__ import annotations

import math
import os
from fractions import Fraction

import numpy as np
import pytest

from dfx.isa.golden import fp

# ----------------------------------------------------------------------- references (tests)


def ref_round_bits16(x: np.ndarray) -> np.ndarray:
    """RNE to binary16 of float32 or float64 values, by integer arithmetic on the bit fields.

    Independent of numpy's float casts. NaN -> 0x7E00, overflow -> inf, subnormals kept.
    """
    x = np.asarray(x)
    if x.dtype == np.float32:
        bits = x.view(np.uint32).astype(np.int64)
        sign, ebits, mbits, bias = bits >> 31, (bits >> 23) & 0xFF, bits & 0x7FFFFF, 127
        p, emax_field = 23, 0xFF
    else:
        x = x.astype(np.float64)
        bits = x.view(np.uint64)
        sign = (bits >> np.uint64(63)).astype(np.int64)
        ebits = ((bits >> np.uint64(52)) & np.uint64(0x7FF)).astype(np.int64)
        mbits = (bits & np.uint64((1 << 52) - 1)).astype(np.int64)
        bias, p, emax_field = 1023, 52, 0x7FF
    sig = np.where(ebits > 0, mbits | (1 << p), mbits)
    exp2 = np.where(ebits > 0, ebits, 1) - bias - p  # value = sig * 2^exp2
    blen = np.frexp(sig.astype(np.float64))[1].astype(np.int64)  # bit_length (sig < 2^53: exact)
    e = exp2 + blen - 1  # floor(log2 |x|)
    q = np.maximum(e, -14) - 10  # FP16 quantum exponent
    shift = np.clip(q - exp2, 1, 62)  # >= 13 for nonzero inputs here
    r = sig >> shift
    rem = sig & ((np.int64(1) << shift) - 1)
    half = np.int64(1) << (shift - 1)
    r = r + ((rem > half) | ((rem == half) & (r & 1 == 1)))
    out = ((q + 24) << 10) + r  # carries into the exponent field naturally
    out = np.where(sig == 0, 0, out)
    out = np.where(out >= 0x7C00, 0x7C00, out)
    inf_nan = ebits == emax_field
    out = np.where(inf_nan, np.where(mbits == 0, 0x7C00, 0x7E00), out)
    out = out | np.where(inf_nan & (mbits != 0), 0, sign << 15)
    return out.astype(np.uint16)


def frac_round(v: Fraction, p: int, emin: int, emax: int) -> Fraction | float:
    """Exact RNE of a rational to a binary format with p-bit significands (subnormals, inf)."""
    if v == 0:
        return Fraction(0)
    neg, a = v < 0, abs(v)
    e = math.floor(math.log2(a))
    while Fraction(2) ** e > a:
        e -= 1
    while Fraction(2) ** (e + 1) <= a:
        e += 1
    q = Fraction(2) ** (max(e, emin) - (p - 1))
    r = math.floor(a / q)
    rem = a / q - r
    if rem > Fraction(1, 2) or (rem == Fraction(1, 2) and r % 2 == 1):
        r += 1
    out = r * q
    if out >= Fraction(2) ** (emax + 1):
        return -math.inf if neg else math.inf
    return -out if neg else out


def frac16(v: Fraction) -> Fraction | float:
    return frac_round(v, 11, -14, 15)


def frac32(v: Fraction) -> Fraction | float:
    return frac_round(v, 24, -126, 127)


def bits16_of(v: Fraction | float, negative_zero: bool = False) -> int:
    return int(np.float16(-0.0 if (v == 0 and negative_zero) else float(v)).view(np.uint16))


def b16(a) -> np.ndarray:
    return np.asarray(a).view(np.uint16)


def b32(a) -> np.ndarray:
    return np.asarray(a).view(np.uint32)


def f16(bits) -> np.ndarray:
    return np.asarray(bits, dtype=np.uint32).astype(np.uint16).view(np.float16)


def f32(bits) -> np.ndarray:
    return np.asarray(bits, dtype=np.uint64).astype(np.uint32).view(np.float32)


ALL16 = f16(np.arange(1 << 16))


# ---------------------------------------------------------------------------------- round16


def test_reference_agrees_with_fractions_on_handpicked():
    vals = [
        1 + 2**-11,
        1 + 3 * 2**-11,
        65504,
        65519.99,
        65520,
        2**-25,
        3 * 2**-25,
        2**-24,
        1.5 * 2**-25,
        2**-14 - 2**-25,
        0.1,
        -7.3,
        1e-30,
        3e38,
    ]
    x = np.array(vals + [-v for v in vals], dtype=np.float32)
    ref = ref_round_bits16(x)
    for xv, rb in zip(x, ref, strict=True):
        want = frac16(Fraction(float(xv)))
        assert bits16_of(want, negative_zero=xv < 0) == rb, float(xv)


def test_round16_roundtrip_all_f16_patterns():
    got = b16(fp.round16(ALL16.astype(np.float32)))
    want = np.where(np.isnan(ALL16), 0x7E00, b16(ALL16))
    assert np.array_equal(got, want)
    assert np.array_equal(ref_round_bits16(ALL16.astype(np.float32)), want)


def test_round16_all_rounding_boundaries():
    pos = ALL16[:0x7C00].astype(np.float64)  # finite, >= +0
    nxt = np.append(pos[1:], 65536.0)  # 65536 stands in for the next binade above 65504
    mid = ((pos + nxt) / 2).astype(np.float32)  # exact in FP32
    cand = [
        mid,
        np.nextafter(mid, np.float32(0)),
        np.nextafter(mid, np.float32(np.inf)),
        pos.astype(np.float32),
    ]
    x = np.concatenate(cand)
    x = np.concatenate([x, -x])
    assert np.array_equal(b16(fp.round16(x)), ref_round_bits16(x))


def test_round16_random_fp32_patterns():
    rng = np.random.default_rng(1)
    x = f32(rng.integers(0, 1 << 32, size=400_000, dtype=np.uint64))
    assert np.array_equal(b16(fp.round16(x)), ref_round_bits16(x))
    # concentrated on the FP16 range, where most rounding happens
    y = (rng.standard_normal(200_000) * np.exp2(rng.uniform(-30, 17, 200_000))).astype(np.float32)
    assert np.array_equal(b16(fp.round16(y)), ref_round_bits16(y))


@pytest.mark.parametrize(
    "x, bits",
    [
        (1 + 2**-11, 0x3C00),  # tie -> even (down)
        (1 + 3 * 2**-11, 0x3C02),  # tie -> even (up)
        (1 + 2**-11 + 2**-23, 0x3C01),  # just above the tie
        (65504.0, 0x7BFF),
        (65519.99, 0x7BFF),  # rounds to float32 65519.9921875, below the tie
        (65520.0, 0x7C00),  # the tie at the top rounds to "even" = inf
        (-65520.0, 0xFC00),
        (1e10, 0x7C00),
        (2**-24, 0x0001),  # smallest subnormal
        (2**-25, 0x0000),  # tie with 0 -> even
        (-(2**-25), 0x8000),
        (2**-25 * (1 + 2**-23), 0x0001),
        (3 * 2**-25, 0x0002),  # tie 1.5 ulp -> 2
        (2**-14 - 2**-25, 0x0400),  # top subnormal tie rounds up into min normal
        (0.0, 0x0000),
        (-0.0, 0x8000),
        (-1e-30, 0x8000),
        (math.inf, 0x7C00),
        (-math.inf, 0xFC00),
    ],
)
def test_round16_handpicked(x, bits):
    assert int(b16(fp.round16(np.float32(x)))) == bits


def test_round16_nan_canonical_any_payload_and_sign():
    nans = f32([0x7FC00000, 0xFFC00000, 0x7F800001, 0xFF800001, 0x7FFFFFFF, 0x7FA00000])
    assert np.all(b16(fp.round16(nans)) == 0x7E00)
    assert np.all(b16(fp.canon16(f16([0x7C01, 0xFE00, 0x7FFF, 0xFC01]))) == 0x7E00)
    assert np.all(b32(fp.canon32(nans)) == 0x7FC00000)


def test_round16_scalar_and_dtype():
    r = fp.round16(np.float32(1.0))
    assert isinstance(r, np.float16) and r.view(np.uint16) == 0x3C00
    assert fp.round16(np.zeros((2, 3), np.float32)).shape == (2, 3)


def exhaustive_round16_check(progress=None) -> None:
    """round16 vs the integer reference on all 2^32 FP32 patterns (the reference once per
    magnitude, both signs checked). About 13 CPU-minutes."""
    step = 1 << 24
    for start in range(0, 1 << 31, step):
        xp = f32(np.arange(start, start + step, dtype=np.uint64))
        want = ref_round_bits16(xp)
        assert np.array_equal(b16(fp.round16(xp)), want), hex(start)
        want_neg = np.where(want == 0x7E00, want, want | 0x8000)
        assert np.array_equal(b16(fp.round16(-xp)), want_neg), hex(start | 1 << 31)
        if progress:
            progress(start + step)


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("DFX_EXHAUSTIVE"), reason="DFX_EXHAUSTIVE=1: 13 CPU-min")
def test_round16_exhaustive_all_fp32():
    exhaustive_round16_check()


# ------------------------------------------------------------------- element-wise FP16 ops


def _random16(rng, n):
    """Random FP16 bit patterns plus a dense slice of 'interesting' values."""
    special = f16(
        [
            0x0000,
            0x8000,
            0x0001,
            0x8001,
            0x03FF,
            0x0400,
            0x3C00,
            0xBC00,
            0x7BFF,
            0xFBFF,
            0x7C00,
            0xFC00,
            0x7E00,
            0x7C01,
            0xFE00,
        ]
    )
    r = f16(rng.integers(0, 1 << 16, size=n))
    return np.concatenate([special, r])


@pytest.mark.parametrize(
    "op, ref",
    [
        (fp.add16, lambda a, b: a + b),
        (fp.sub16, lambda a, b: a - b),
        (fp.mul16, lambda a, b: a * b),
    ],
)
def test_binary16_ops_vs_float64_exact(op, ref):
    # Sums/products of two FP16 values are exact in float64; a single RNE to FP16 of the exact
    # result must equal round16(round32(.)) (double rounding is innocuous: 24 >= 2*11 + 2).
    rng = np.random.default_rng(2)
    a = _random16(rng, 100_000)
    b = np.concatenate([a[:15][::-1], f16(rng.integers(0, 1 << 16, size=100_000))])
    grid_a, grid_b = np.meshgrid(a[:15], a[:15])
    a = np.concatenate([a, grid_a.ravel()])
    b = np.concatenate([b, grid_b.ravel()])
    with np.errstate(all="ignore"):
        exact = ref(a.astype(np.float64), b.astype(np.float64))
    assert np.array_equal(b16(op(a, b)), ref_round_bits16(exact))


def test_add_ties_and_signed_zero_rules():
    one, tiny = np.float16(1.0), f16(0x1000)  # 2^-11
    assert b16(fp.add16(one, tiny)) == 0x3C00  # 1 + 2^-11: tie to even
    assert b16(fp.add16(f16(0x3C01), tiny)) == 0x3C02
    x = f16([0x3C00, 0x0001, 0x7BFF, 0x1234])
    assert np.all(b16(fp.add16(x, -x)) == 0x0000)  # x + (-x) = +0
    assert np.all(b16(fp.sub16(x, x)) == 0x0000)
    assert b16(fp.add16(np.float16(-0.0), np.float16(-0.0))) == 0x8000
    assert b16(fp.add16(np.float16(-0.0), np.float16(0.0))) == 0x0000
    assert b16(fp.sub16(np.float16(-0.0), np.float16(0.0))) == 0x8000
    assert b16(fp.mul16(np.float16(-0.0), np.float16(5))) == 0x8000
    assert b16(fp.mul16(np.float16(-2), np.float16(-0.0))) == 0x0000
    assert b16(fp.sq16(np.float16(-0.0))) == 0x0000
    assert b16(fp.mul16(np.float16(-1e-4), np.float16(1e-4))) == 0x8000  # underflow keeps sign


def test_special_values():
    inf, ninf = np.float16(np.inf), np.float16(-np.inf)
    assert b16(fp.sub16(inf, inf)) == 0x7E00
    assert b16(fp.add16(inf, ninf)) == 0x7E00
    assert b16(fp.mul16(np.float16(0), inf)) == 0x7E00
    assert b16(fp.mul16(np.float16(-0.0), ninf)) == 0x7E00
    assert b16(fp.add16(inf, np.float16(-65504))) == 0x7C00
    assert b16(fp.mul16(np.float16(256), np.float16(256))) == 0x7C00  # 65536 overflows
    assert b16(fp.add16(np.float16(65504), np.float16(16))) == 0x7C00  # 65520: tie -> inf
    assert b16(fp.add16(np.float16(65504), np.float16(8))) == 0x7BFF  # 65512 -> 65504
    assert b16(fp.add16(f16(0xFE01), np.float16(1))) == 0x7E00  # NaN payload/sign canonical
    assert b16(fp.muls16(inf, np.float32(0))) == 0x7E00


def _frac_vs(x16: np.ndarray, s32: np.ndarray, opname: str) -> np.ndarray:
    """round16(round32(x op s)) by exact rational arithmetic (x, s finite and nonzero)."""
    out = []
    for xv, sv in zip(x16, s32, strict=True):
        fx, fs = Fraction(float(xv)), Fraction(float(sv))
        v = {"add": fx + fs, "sub": fx - fs, "mul": fx * fs}[opname]
        r32 = frac32(v)
        r16 = r32 if isinstance(r32, float) else frac16(r32)
        out.append(bits16_of(r16, negative_zero=v < 0))  # exact zero sums are +0
    return np.array(out, dtype=np.uint16)


@pytest.mark.parametrize("name", ["add", "sub", "mul"])
def test_vector_scalar_ops_vs_fractions(name):
    op = {"add": fp.adds16, "sub": fp.subs16, "mul": fp.muls16}[name]
    rng = np.random.default_rng(3)
    n = 1500
    x = (rng.standard_normal(n) * np.exp2(rng.integers(-20, 12, n))).astype(np.float16)
    s = (rng.standard_normal(n) * np.exp2(rng.integers(-30, 12, n))).astype(np.float32)
    s[: n // 4] = rng.standard_normal(n // 4).astype(np.float32)  # similar magnitudes
    x = x[np.isfinite(x) & (x != 0)]
    s = s[: x.size]
    assert np.array_equal(b16(op(x, s)), _frac_vs(x, s, name))


def test_vector_scalar_double_rounding_is_the_definition():
    # 1 + (2^-11 + 2^-30): round32 -> 1 + 2^-11 (a tie in FP16) -> even = 1.0
    s = np.float32(2**-11 + 2**-30)
    assert b16(fp.adds16(np.float16(1), s)) == 0x3C00
    assert b16(fp.muls16(np.float16(3), np.float32(0.1))) == ref_round_bits16(
        np.float32(3 * np.float32(0.1))
    )


# ------------------------------------------------------------------------------ scalar FP32


@pytest.mark.parametrize("name", ["add", "sub", "mul"])
def test_scalar32_ops_vs_fractions(name):
    op = {"add": fp.add32, "sub": fp.sub32, "mul": fp.mul32}[name]
    rng = np.random.default_rng(4)
    a = f32(rng.integers(0, 1 << 32, size=3000, dtype=np.uint64))
    b = f32(rng.integers(0, 1 << 32, size=3000, dtype=np.uint64))
    with np.errstate(all="ignore"):
        b[:1000] = (a[:1000] * np.float32(1.0001)).astype(np.float32)  # cancellation
    b[1000:1500] = f32(rng.integers(0, 1 << 23, size=500, dtype=np.uint64))  # subnormals
    got = b32(op(a, b))
    for av, bv, g in zip(a, b, got, strict=True):
        if not (np.isfinite(av) and np.isfinite(bv)):
            continue
        fa, fb = Fraction(float(av)), Fraction(float(bv))
        v = {"add": fa + fb, "sub": fa - fb, "mul": fa * fb}[name]
        r = frac32(v)
        if r == 0:
            if name == "mul":
                want = 0x80000000 if (av < 0) != (bv < 0) else 0
            else:
                want = 0  # exact zero sums are +0 under RNE (both-negative-zero excluded)
        else:
            want = int(np.float32(float(r)).view(np.uint32))
        assert int(g) == want, (float(av), float(bv))


def test_scalar32_specials():
    inf = np.float32(np.inf)
    assert b32(fp.sub32(inf, inf)) == 0x7FC00000
    assert b32(fp.mul32(np.float32(0), inf)) == 0x7FC00000
    assert b32(fp.add32(f32(0xFFC00001), np.float32(1))) == 0x7FC00000
    assert b32(fp.add32(np.float32(-0.0), np.float32(-0.0))) == 0x80000000
    assert b32(fp.add32(np.float32(2.5), np.float32(-2.5))) == 0
    assert b32(fp.mul32(np.float32(2**-100), np.float32(2**-49))) == 1  # subnormal, no FTZ
    assert b32(fp.round32(0.1)) == np.float32(0.1).view(np.uint32)


# ------------------------------------------------------------------------------ adder tree


def test_bit_helpers():
    assert fp.f16_bits(np.float16(1.0)) == 0x3C00
    assert fp.bits_f16(0xFBFF) == np.float16(-65504)
    assert fp.f32_bits(np.float32(1.0)) == 0x3F800000
    assert fp.bits_f32(0x7F800000) == np.inf
    assert fp.NEG_MAX16.view(np.uint16) == 0xFBFF
    assert b32(fp.widen16(f16(0xFE01))) == 0x7FC00000
    with pytest.raises(TypeError):
        fp.add16(np.float32(1), np.float16(1))
