"""Piecewise-linear tables: construction, validation, evaluation vs exact-rational references."""

from __future__ import annotations

import importlib.util
import math
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from dfx.isa.golden import fp, tables
from dfx.isa.golden.tables import DEFAULT_SPECS, table


def _load_fp_refs():
    """The reference helpers of test_fp.py (loaded by path: tests/ has no packages)."""
    spec = importlib.util.spec_from_file_location(
        "_dfx_golden_fp_refs", Path(__file__).with_name("test_fp.py")
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


_R = _load_fp_refs()
ALL16, b16, b32, f32 = _R.ALL16, _R.b16, _R.b32, _R.f32
frac32, ref_round_bits16 = _R.frac32, _R.ref_round_bits16

TINY_SPECS = {  # boards/cores/tiny.yaml
    "gelu": (-8.0, 8.0, 256),
    "exp": (-16.0, 16.0, 512),
    "recip": (1.0, 2.0, 64),
    "rsqrt": (1.0, 4.0, 192),
}

F64 = {
    "gelu": tables.gelu_f64,
    "exp": np.exp,
    "recip": lambda x: 1.0 / x,
    "rsqrt": lambda x: 1.0 / np.sqrt(x),
}

ALL_SPECS = [(fn, spec) for fn, spec in DEFAULT_SPECS.items()] + list(TINY_SPECS.items())


def ulp32(y: np.ndarray) -> np.ndarray:
    a = np.abs(y.astype(np.float32))
    return (np.nextafter(a, np.float32(np.inf)) - a).astype(np.float64)


# ------------------------------------------------------------------------------ construction


@pytest.mark.parametrize("fn, spec", ALL_SPECS, ids=lambda v: str(v))
def test_breakpoints_values_slopes(fn, spec):
    lo, hi, n = spec
    t = table(fn, lo, hi, n)
    h = (hi - lo) / n
    assert t.h == h and math.frexp(h)[0] == 0.5
    assert t.x.dtype == t.y.dtype == t.m.dtype == np.float32
    assert t.x.shape == t.y.shape == (n + 1,) and t.m.shape == (n,)
    assert np.array_equal(t.x.astype(np.float64), lo + np.arange(n + 1) * h)
    f = F64[fn](t.x.astype(np.float64))
    err = np.abs(t.y.astype(np.float64) - f)
    assert np.all(err <= 0.5 * ulp32(t.y) * (1 + 1e-6))  # y_i = RN32(f(x_i))
    assert np.mean(t.y == f.astype(np.float32)) > 0.999
    # m_i = RN32((y_{i+1} - y_i) / h); the float64 difference of neighbours is exact here
    d = t.y[1:].astype(np.float64) - t.y[:-1].astype(np.float64)
    assert np.array_equal(b32(t.m), b32((d / h).astype(np.float32)))


def test_rn32_helper_vs_numpy_cast():
    rng = np.random.default_rng(6)
    v = rng.standard_normal(1000) * np.exp2(rng.integers(-160, 130, 1000))
    v = np.concatenate([v, [2.0**-150, 3 * 2.0**-150, 2.0**128 * (1 - 2**-25)]])
    with np.errstate(over="ignore"):
        want = v.astype(np.float32)
    got = np.array([tables._rn32(Fraction(float(x))) for x in v]).astype(np.float32)
    assert np.array_equal(b32(got), b32(want))


@pytest.mark.parametrize(
    "args, match",
    [
        (("gelu", -8.0, 8.0, 2000), r"points: step h = .* not an exact power of two"),
        (("gelu", -8.0, 8.0, 0), r"points: must be a positive integer"),
        (("gelu", -8.0, 8.0, 1.5), r"points: must be a positive integer"),
        (("gelu", 8.0, -8.0, 16), r"lo, hi"),
        (("gelu", -8.0, math.inf, 16), r"lo, hi"),
        (("tanh", -8.0, 8.0, 16), r"fn: unknown"),
        (("exp", -16 + 2**-8, 16 + 2**-8, 2048), r"lo: .* multiple of the step"),
        (("recip", 1.0, 1.5, 512), r"recip table must cover \[1, 2\]"),
        (("rsqrt", 1.0, 2.0, 1024), r"rsqrt table must cover \[1, 4\]"),
    ],
)
def test_parameter_validation(args, match):
    with pytest.raises(ValueError, match=match):
        table(*args)


def test_cache_and_spec_forms():
    a = table("gelu", -8, 8, 2048)
    assert a is table("gelu", -8.0, 8.0, 2048) is tables.default_table("gelu")
    assert tables.table_from_spec("gelu", SimpleNamespace(lo=-8.0, hi=8.0, points=2048)) is a
    assert tables.table_from_spec("gelu", {"lo": -8.0, "hi": 8.0, "points": 2048}) is a
    assert tables.table_from_spec("gelu", a) is a
    with pytest.raises(ValueError, match="fn: table is for 'gelu'"):
        tables.table_from_spec("exp", a)
    assert not a.y.flags.writeable


# -------------------------------------------------------------------------------- evaluation


def ref_pwl(t: tables.PwlTable, x: float) -> int:
    """FP32 bits of the segment evaluation, by exact rationals (x inside [lo, hi))."""
    fx, lo, h = Fraction(x), Fraction(t.lo), Fraction(t.h)
    i = math.floor((fx - lo) / h)
    xi = lo + i * h
    assert Fraction(float(t.x[i])) == xi
    tt = frac32(fx - xi)
    mt = frac32(Fraction(float(t.m[i])) * tt)
    y = frac32(Fraction(float(t.y[i])) + mt)
    return int(np.float32(float(y)).view(np.uint32))


def _sample_inside(t: tables.PwlTable, rng: np.random.Generator) -> np.ndarray:
    x16 = ALL16.astype(np.float32)
    in16 = x16[(x16 >= t.lo) & (x16 < t.hi)]
    bp = t.x[:-1]
    below = np.nextafter(t.x[1:], np.float32(-np.inf))  # last FP32 of each segment
    above = np.nextafter(t.x[:-1], np.float32(np.inf))
    rnd = rng.uniform(t.lo, t.hi, 600).astype(np.float32)
    pick = np.concatenate([in16[::37], bp[::9], below[::9], above[::13], rnd])
    return pick[(pick >= t.lo) & (pick < t.hi)]


@pytest.mark.parametrize("fn", tables.FUNCTIONS)
def test_pwl_eval_vs_exact_reference(fn):
    t = tables.default_table(fn)
    x = _sample_inside(t, np.random.default_rng(7))
    got = b32(tables.pwl_eval(t, x))
    want = np.array([ref_pwl(t, float(v)) for v in x], dtype=np.uint32)
    assert np.array_equal(got, want)


def test_pwl_eval_outside_is_nan():
    t = tables.default_table("exp")
    x = np.float32([-16.0 - 2**-10, 16.0, np.inf, -np.inf, np.nan])
    assert np.all(b32(tables.pwl_eval(t, x)) == 0x7FC00000)
    assert b32(tables.pwl_eval(t, np.float32(-16.0))) == b32(t.y[0])
    assert b32(tables.pwl_eval(t, np.float32(0.0))) == 0x3F800000  # exp(0) = 1 exactly


# ------------------------------------------------------------------------------ gelu16/exp16


@pytest.mark.parametrize("fn", ["gelu", "exp"])
@pytest.mark.parametrize("specs", [DEFAULT_SPECS, TINY_SPECS], ids=["default", "tiny"])
def test_fp16_functions_all_inputs(fn, specs):
    t = table(fn, *specs[fn])
    f16fn = {"gelu": tables.gelu16, "exp": tables.exp16}[fn]
    x32 = ALL16.astype(np.float32)
    got = b16(f16fn(ALL16, t))
    inside = (x32 >= t.lo) & (x32 < t.hi)
    want_in = ref_round_bits16(np.asarray(tables.pwl_eval(t, x32[inside])))
    assert np.array_equal(got[inside], want_in)  # round16(pwl(x)) on [lo, hi)
    low = x32 < t.lo
    assert np.all(got[low] == 0x0000)
    high = x32 >= t.hi
    if fn == "gelu":
        assert np.array_equal(got[high], b16(ALL16[high]))
    else:
        assert np.all(got[high] == 0x7C00)
    assert np.all(got[np.isnan(x32)] == 0x7E00)
    # the 64K-entry cache equals the direct definition
    direct = {"gelu": tables._gelu16_direct, "exp": tables._exp16_direct}[fn](ALL16, t)
    assert np.array_equal(got, b16(direct))


@pytest.mark.parametrize("fn", ["gelu", "exp"])
def test_fp16_functions_accuracy_default(fn):
    t = tables.default_table(fn)
    x32 = ALL16.astype(np.float32)
    sel = (x32 >= t.lo) & (x32 < t.hi) & (x32 <= 11.0)  # exp overflows FP16 above ~11.09
    f16fn = {"gelu": tables.gelu16, "exp": tables.exp16}[fn]
    got = f16fn(ALL16[sel]).astype(np.float64)
    f = F64[fn](x32[sel].astype(np.float64))
    ulp16 = np.maximum(np.spacing(np.abs(f).astype(np.float16)).astype(np.float64), 2.0**-24)
    err = np.abs(got - f)
    if fn == "exp":  # interpolation error h^2/8 e^x is 0.06 ulp: at most 1 ulp after rounding
        assert np.max(err / ulp16) <= 1.0
    else:  # |f''| <= 0.8: interpolation error <= h^2/8 * 0.8, plus the FP16 rounding
        bound = t.h**2 / 8 * 0.8 * 1.01 + 0.5 * ulp16
        assert np.all(err <= bound)


def test_gelu_exp_specials():
    g = tables.gelu16(np.float16([0.0, -0.0, 8.0, -8.0, 100.0, -100.0, np.inf, -np.inf]))
    assert list(b16(g)) == [
        0x0000,
        0x0000,
        0x4800,
        b16(tables.gelu16(np.float16(-8.0))),
        0x5640,
        0x0000,
        0x7C00,
        0x0000,
    ]
    e = tables.exp16(np.float16([0.0, -0.0, 16.0, -17.0, np.inf, -np.inf, 12.0]))
    assert list(b16(e)) == [0x3C00, 0x3C00, 0x7C00, 0x0000, 0x7C00, 0x0000, 0x7C00]
    assert tables.gelu16(np.float16(1.0)).shape == ()


# ---------------------------------------------------------------------------- recip / rsqrt


def ref_recip(t: tables.PwlTable, x: float) -> int:
    if x != x:
        return 0x7FC00000
    if x == 0 or math.isinf(x):
        v = math.copysign(0.0 if math.isinf(x) else math.inf, x)
        return int(np.float32(v).view(np.uint32))
    mant, ex = math.frexp(abs(x))  # exact, subnormals included
    m, e = mant * 2, ex - 1
    r = Fraction(float(np.uint32(ref_pwl(t, m)).view(np.float32)))
    v = frac32(r / Fraction(2) ** e)
    v = float(v) if isinstance(v, Fraction) else v
    return int(np.float32(math.copysign(v, x)).view(np.uint32))


def ref_rsqrt(t: tables.PwlTable, x: float) -> int:
    if x != x or x < 0:
        return 0x7FC00000
    if x == 0:
        return int(np.float32(math.copysign(math.inf, x)).view(np.uint32))
    if math.isinf(x):
        return 0
    mant, ex = math.frexp(x)
    m, e = mant * 2, ex - 1
    if e % 2:
        m, e = m * 2, e - 1
    r = Fraction(float(np.uint32(ref_pwl(t, m)).view(np.float32)))
    v = frac32(r / Fraction(2) ** (e // 2))
    return int(np.float32(float(v)).view(np.uint32))


def _fp32_sample(rng: np.random.Generator) -> np.ndarray:
    bits = rng.integers(0, 1 << 32, size=600, dtype=np.uint64)
    sub = rng.integers(1, 1 << 23, size=100, dtype=np.uint64)  # subnormals
    special = np.float32(
        [
            0.0,
            -0.0,
            np.inf,
            -np.inf,
            np.nan,
            1.0,
            2.0,
            3.0,
            0.5,
            2**-149,
            2**-126,
            2**-127,
            2**127,
            1.5 * 2**127,
            3.4e38,
            4.0,
            0.25,
            1e-40,
        ]
    )
    return np.concatenate([f32(bits), f32(sub), -f32(sub), special, -special])


@pytest.mark.parametrize("fn", ["recip", "rsqrt"])
@pytest.mark.parametrize("specs", [DEFAULT_SPECS, TINY_SPECS], ids=["default", "tiny"])
def test_recip_rsqrt_vs_reference(fn, specs):
    t = table(fn, *specs[fn])
    x = _fp32_sample(np.random.default_rng(8))
    f = {"recip": tables.recip32, "rsqrt": tables.rsqrt32}[fn]
    ref = {"recip": ref_recip, "rsqrt": ref_rsqrt}[fn]
    got = b32(f(x, t))
    want = np.array([ref(t, float(v)) for v in x], dtype=np.uint32)
    assert np.array_equal(got, want)


def test_recip_rsqrt_exact_points_and_specials():
    k = np.arange(-126, 127)
    p2 = np.ldexp(np.float32(1), k).astype(np.float32)
    assert np.array_equal(b32(tables.recip32(p2)), b32(np.ldexp(np.float32(1), -k)))
    assert np.array_equal(b32(tables.recip32(-p2)), b32(-np.ldexp(np.float32(1), -k)))
    k2 = np.arange(-74, 64)
    assert np.array_equal(
        b32(tables.rsqrt32(np.ldexp(np.float32(1), 2 * k2))), b32(np.ldexp(np.float32(1), -k2))
    )
    sp = np.float32([0.0, -0.0, np.inf, -np.inf, np.nan, 2**-149])
    assert list(b32(tables.recip32(sp))) == [
        0x7F800000,
        0xFF800000,
        0,
        0x80000000,
        0x7FC00000,
        0x7F800000,
    ]
    sp2 = np.float32([0.0, -0.0, np.inf, -np.inf, np.nan, -1.0, -(2**-149)])
    assert list(b32(tables.rsqrt32(sp2))) == [
        0x7F800000,
        0xFF800000,
        0,
        0x7FC00000,
        0x7FC00000,
        0x7FC00000,
        0x7FC00000,
    ]


def test_recip_rsqrt_accuracy():
    rng = np.random.default_rng(9)
    x = (np.exp2(rng.uniform(-120, 120, 20000))).astype(np.float32)
    r = tables.recip32(x).astype(np.float64)
    assert np.max(np.abs(r * x.astype(np.float64) - 1)) < 2**-20
    s = tables.rsqrt32(x).astype(np.float64)
    assert np.max(np.abs(s * np.sqrt(x.astype(np.float64)) - 1)) < 2**-20
    assert tables.recip32(np.float32(4.0)) == 0.25 and isinstance(tables.recip32(4.0), np.float32)


def test_scalar_inputs_round_to_fp32_first():
    assert b32(tables.recip32(0.1)) == b32(tables.recip32(np.float32(0.1)))
    assert fp.f32_bits(tables.rsqrt32(np.float32(4.0))) == 0x3F000000
