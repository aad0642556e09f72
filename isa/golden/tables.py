"""Piecewise-linear function tables of the SFUs (DFX §2.4 GELU, §2.5 exp/recip/rsqrt, §6).

DFX evaluates GELU "by linear approximation from a lookup table, 2048 points over [-8, 8]"
(digest §2.4); the VPU's exp, reciprocal and reciprocal square root are table functions too
(§2.5). This module is the normative definition of every table and of its evaluation
(docs/numerics.md §5).

Table ``(fn, lo, hi, N)``: step ``h = (hi - lo) / N`` must be an exact power of two.

* breakpoints ``x_i = lo + i*h`` (i = 0..N), each exactly representable in FP32;
* values ``y_i = RN32(f(x_i))``: ``f`` evaluated to 50 significant decimal digits
  (``decimal``, platform independent) and rounded once to FP32;
* slopes ``m_i = RN32((y_{i+1} - y_i) / h)`` (i = 0..N-1): exact difference of the stored
  values, rounded once;
* evaluation of an FP32 ``x`` in ``[lo, hi)``: ``i = floor((x - lo) / h)`` (exact),
  ``t = round32(x - x_i)``, ``y = round32(y_i + round32(m_i * t))``.

``RN32`` is round-to-nearest-even to binary32 with subnormals.
"""

from __future__ import annotations

import decimal
import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import numpy.typing as npt

from .fp import _NAN16, _NAN32, _as16, _as32, _ret, canon16, canon32, quiet, round16

__all__ = [
    "FUNCTIONS",
    "DEFAULT_SPECS",
    "PwlTable",
    "table",
    "table_from_spec",
    "default_table",
    "pwl_eval",
    "gelu16",
    "exp16",
    "recip32",
    "rsqrt32",
    "gelu_f64",
]

FUNCTIONS = ("gelu", "exp", "recip", "rsqrt")
"""Names of the table functions."""

DEFAULT_SPECS: dict[str, tuple[float, float, int]] = {
    "gelu": (-8.0, 8.0, 2048),  # DFX §2.4: 2048 points over [-8, 8]  (h = 2^-7)
    "exp": (-16.0, 16.0, 2048),  # h = 2^-6
    "recip": (1.0, 2.0, 1024),  # mantissa in [1, 2), h = 2^-10
    "rsqrt": (1.0, 4.0, 3072),  # mantissa in [1, 4), h = 2^-10
}
"""Default ``(lo, hi, points)`` per function (the dfx-u280 core configuration)."""

# -------------------------------------------------------------------- exact reference maths

_DIGITS = 50
_PI = decimal.Decimal("3.14159265358979323846264338327950288419716939937510582097494459")
_GELU_C = decimal.Decimal("0.044715")


def _ctx() -> decimal.Context:
    return decimal.Context(prec=_DIGITS, rounding=decimal.ROUND_HALF_EVEN, Emin=-99999, Emax=99999)


def _f_exact(fn: str, x: float) -> Fraction:
    """f(x) to ~50 significant digits, as an exact rational (x is an exact binary float)."""
    c = _ctx()
    dx = decimal.Decimal(x)  # exact
    if fn == "gelu":
        # 0.5 x (1 + tanh(z)) == x / (1 + exp(-2z)),  z = sqrt(2/pi) (x + 0.044715 x^3)
        k = c.sqrt(c.divide(2, _PI))
        z = c.multiply(k, c.add(dx, c.multiply(_GELU_C, c.power(dx, 3))))
        val = c.divide(dx, c.add(1, c.exp(c.minus(c.multiply(2, z)))))
    elif fn == "exp":
        val = c.exp(dx)
    elif fn == "recip":
        return 1 / Fraction(x)
    elif fn == "rsqrt":
        val = c.divide(1, c.sqrt(dx))
    else:
        raise ValueError(f"unknown table function {fn!r}; expected one of {FUNCTIONS}")
    return Fraction(val)


def _rn32(v: Fraction) -> float:
    """Round an exact rational to binary32 (RNE, subnormals, overflow to inf). Returns a float."""
    if v == 0:
        return 0.0
    neg = v < 0
    a = -v if neg else v
    e = a.numerator.bit_length() - a.denominator.bit_length()
    if Fraction(2) ** e > a:
        e -= 1  # now 2^e <= a < 2^(e+1)
    q = max(e, -126) - 23  # quantum exponent
    s = a / Fraction(2) ** q
    r = s.numerator // s.denominator
    rem = s - r
    if rem > Fraction(1, 2) or (rem == Fraction(1, 2) and r % 2):
        r += 1
    out = math.inf if r * Fraction(2) ** q >= 2**128 else math.ldexp(r, q)
    return -out if neg else out


def gelu_f64(x: npt.ArrayLike) -> np.ndarray:
    """GPT-2 ``gelu_new`` in float64 (numpy), written as ``x / (1 + exp(-2z))`` with
    ``z = sqrt(2/pi) (x + 0.044715 x^3)``: equal to 0.5 x (1 + tanh(z)) but without the
    cancellation of ``1 + tanh(z)`` for very negative x (a float64 reference for tests/bench)."""
    x = np.asarray(x, dtype=np.float64)
    z = math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)
    with np.errstate(over="ignore"):
        return x / (1.0 + np.exp(-2.0 * z))


# ------------------------------------------------------------------------------- the table


@dataclass(frozen=True, eq=False)
class PwlTable:
    """A built piecewise-linear table (see the module docstring for the definition).

    ``x``: float32[N+1] breakpoints, ``y``: float32[N+1] values, ``m``: float32[N] slopes.
    Instances are cached by :func:`table` and compare by identity.
    """

    fn: str
    lo: float
    hi: float
    points: int
    h: float
    x: np.ndarray
    y: np.ndarray
    m: np.ndarray

    @functools.cached_property
    def lut16(self) -> np.ndarray:
        """For FP16-input functions (gelu, exp): the output bits for all 2^16 input patterns.

        A pure cache of :func:`gelu16` / :func:`exp16` evaluated directly (the definition);
        a ROM of this content would be an exact hardware implementation.
        """
        allx = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16)
        if self.fn == "gelu":
            out = _gelu16_direct(allx, self)
        elif self.fn == "exp":
            out = _exp16_direct(allx, self)
        else:
            raise ValueError(f"lut16 only exists for FP16-input tables, not {self.fn!r}")
        return out.view(np.uint16)


def _check_params(fn: str, lo: float, hi: float, points: int) -> float:
    if fn not in FUNCTIONS:
        raise ValueError(f"fn: unknown table function {fn!r}; expected one of {FUNCTIONS}")
    if isinstance(points, bool) or int(points) != points or points < 1:
        raise ValueError(f"points: must be a positive integer, got {points!r}")
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"lo, hi: need finite lo < hi, got lo={lo!r}, hi={hi!r}")
    h_exact = (Fraction(hi) - Fraction(lo)) / int(points)
    num, den = h_exact.numerator, h_exact.denominator
    if not ((num & (num - 1)) == 0 and (den & (den - 1)) == 0):
        raise ValueError(
            f"points: step h = (hi - lo) / points = ({hi!r} - {lo!r}) / {points} = "
            f"{float(h_exact)!r} is not an exact power of two; choose points so that it is "
            f"(e.g. points = (hi - lo) * 2^k)"
        )
    h = float(h_exact)
    for i in (0, int(points)):
        xi = Fraction(lo) + i * h_exact
        if Fraction(float(np.float32(float(xi)))) != xi:
            raise ValueError(f"lo: breakpoint lo + {i}*h = {float(xi)!r} is not exact in FP32")
    if Fraction(lo) / h_exact != int(Fraction(lo) / h_exact):
        # keeps every x_i a multiple of h, so all breakpoints are exact in FP32
        raise ValueError(f"lo: {lo!r} must be an integer multiple of the step h = {h!r}")
    if fn == "recip" and not (lo <= 1.0 and hi >= 2.0):
        raise ValueError(f"lo, hi: the recip table must cover [1, 2], got [{lo}, {hi}]")
    if fn == "rsqrt" and not (lo <= 1.0 and hi >= 4.0):
        raise ValueError(f"lo, hi: the rsqrt table must cover [1, 4], got [{lo}, {hi}]")
    if fn in ("recip", "rsqrt") and lo <= 0.0:
        raise ValueError(f"lo: the {fn} table needs lo > 0, got {lo}")
    return h


@functools.lru_cache(maxsize=64)
def _build(fn: str, lo: float, hi: float, points: int) -> PwlTable:
    h = _check_params(fn, lo, hi, points)
    hq = Fraction(h)
    xs = [Fraction(lo) + i * hq for i in range(points + 1)]
    ys = [_rn32(_f_exact(fn, float(xi))) for xi in xs]
    ms = [_rn32((Fraction(ys[i + 1]) - Fraction(ys[i])) / hq) for i in range(points)]
    x = np.array([float(v) for v in xs], dtype=np.float32)
    y = np.array(ys, dtype=np.float32)
    m = np.array(ms, dtype=np.float32)
    for arr in (x, y, m):
        arr.setflags(write=False)
    return PwlTable(fn=fn, lo=lo, hi=hi, points=points, h=h, x=x, y=y, m=m)


def table(fn: str, lo: float, hi: float, points: int) -> PwlTable:
    """Build (cached) the table of ``fn`` in {gelu, exp, recip, rsqrt} on [lo, hi] with ``points``
    segments. Raises ``ValueError`` naming the bad parameter (e.g. step not a power of two)."""
    if isinstance(points, bool) or not float(points).is_integer():
        raise ValueError(f"points: must be a positive integer, got {points!r}")
    return _build(str(fn), float(lo), float(hi), int(points))


def table_from_spec(fn: str, spec: Any) -> PwlTable:
    """:func:`table` from an object with attributes ``lo, hi, points`` (a core-config
    ``TableSpec``) or a mapping with those keys (the ``tables:`` entries of a core YAML)."""
    if isinstance(spec, PwlTable):
        if spec.fn != fn:
            raise ValueError(f"fn: table is for {spec.fn!r}, expected {fn!r}")
        return spec
    if isinstance(spec, Mapping):
        return table(fn, spec["lo"], spec["hi"], spec["points"])
    return table(fn, spec.lo, spec.hi, spec.points)


def default_table(fn: str) -> PwlTable:
    """The table of ``fn`` with :data:`DEFAULT_SPECS` parameters (dfx-u280)."""
    return table(fn, *DEFAULT_SPECS[fn])


def _resolve(fn: str, tab: Any) -> PwlTable:
    return default_table(fn) if tab is None else table_from_spec(fn, tab)


# ------------------------------------------------------------------------------ evaluation


@quiet
def pwl_eval(tab: PwlTable, x: npt.ArrayLike) -> Any:
    """Evaluate the segments of ``tab`` at FP32 ``x`` (module docstring). ``x`` outside
    ``[lo, hi)`` or NaN gives canonical NaN; callers apply the function's range rules."""
    x32 = _as32(x)
    x64 = x32.astype(np.float64)
    inside = (x64 >= tab.lo) & (x64 < tab.hi)
    xin = np.where(inside, x64, tab.lo)
    n = tab.points
    i = np.floor((xin - tab.lo) / tab.h).astype(np.int64)
    # floor() above is exact for the FP16 / mantissa inputs used here; this fix-up makes the
    # index exact for any FP32 x (the float64 subtraction can round up across a breakpoint).
    i = np.clip(i, 0, n - 1)
    xb = tab.x.astype(np.float64)
    i = i - (xin < xb[i])
    i = i + ((xin >= xb[i + 1]) & (i < n - 1))
    t = np.where(inside, x32, tab.x[0]) - tab.x[i]
    y = tab.y[i] + tab.m[i] * t
    return canon32(np.where(inside, y, _NAN32))


@quiet
def _gelu16_direct(x16: np.ndarray, tab: PwlTable) -> np.ndarray:
    x32 = x16.astype(np.float32)
    y = round16(np.asarray(pwl_eval(tab, x32)))
    y = np.where(x32 < tab.lo, np.float16(0.0), y)
    y = np.where(x32 >= tab.hi, x16, y)
    return np.asarray(canon16(np.where(np.isnan(x32), _NAN16, y).astype(np.float16)))


@quiet
def _exp16_direct(x16: np.ndarray, tab: PwlTable) -> np.ndarray:
    x32 = x16.astype(np.float32)
    y = round16(np.asarray(pwl_eval(tab, x32)))
    y = np.where(x32 < tab.lo, np.float16(0.0), y)
    y = np.where(x32 >= tab.hi, np.float16(np.inf), y)
    return np.asarray(canon16(np.where(np.isnan(x32), _NAN16, y).astype(np.float16)))


def gelu16(x: npt.ArrayLike, tab: Any = None) -> Any:
    """GELU of an FP16 array (DFX §2.4 SFU_M): ``round16(pwl(x))`` on [lo, hi);
    ``x < lo -> +0``, ``x >= hi -> x``, NaN -> NaN. ``tab``: PwlTable / spec / None (default)."""
    t = _resolve("gelu", tab)
    a = _as16(x)
    return _ret(t.lut16[a.view(np.uint16)].view(np.float16))


def exp16(x: npt.ArrayLike, tab: Any = None) -> Any:
    """exp of an FP16 array (DFX §2.5 VPU): ``round16(pwl(x))`` on [lo, hi);
    ``x < lo -> +0``, ``x >= hi -> +inf``, NaN -> NaN."""
    t = _resolve("exp", tab)
    a = _as16(x)
    return _ret(t.lut16[a.view(np.uint16)].view(np.float16))


@quiet
def _scale_pow2(r: np.ndarray, k: np.ndarray) -> np.ndarray:
    """``RN32(r * 2^k)``: exact in float64 (|k| <= 300), then one RNE rounding to FP32."""
    return np.ldexp(r.astype(np.float64), k.astype(np.int64)).astype(np.float32)


@quiet
def recip32(x: npt.ArrayLike, tab: Any = None) -> Any:
    """1/x of FP32 ``x`` (DFX §2.5 SFU_V): ``x = ±m 2^e``, m in [1, 2) exact (subnormals too),
    ``r = pwl(m)``, result ``±RN32(r 2^-e)``. ±0 -> ±inf, ±inf -> ±0, NaN -> NaN."""
    t = _resolve("recip", tab)
    x32 = _as32(x)
    a = np.abs(x32)
    normal = np.isfinite(a) & (a > 0)
    mant, ex = np.frexp(np.where(normal, a, np.float32(1.0)))
    m = mant * np.float32(2.0)  # exact, in [1, 2)
    e = ex.astype(np.int64) - 1
    r = np.asarray(pwl_eval(t, m))
    out = _scale_pow2(r, -e)
    out = np.where(a == 0, np.float32(np.inf), out)
    out = np.where(np.isinf(a), np.float32(0.0), out)
    out = np.copysign(out, x32)
    return canon32(np.where(np.isnan(x32), _NAN32, out))


@quiet
def rsqrt32(x: npt.ArrayLike, tab: Any = None) -> Any:
    """1/sqrt(x) of FP32 ``x`` (DFX §2.5 SFU_V): ``x = m 2^e``, e even, m in [1, 4);
    ``r = pwl(m)``, result ``RN32(r 2^(-e/2))``. +0 -> +inf, -0 -> -inf, x < 0 -> NaN,
    +inf -> +0, NaN -> NaN."""
    t = _resolve("rsqrt", tab)
    x32 = _as32(x)
    normal = np.isfinite(x32) & (x32 > 0)
    mant, ex = np.frexp(np.where(normal, x32, np.float32(1.0)))
    m = mant * np.float32(2.0)  # [1, 2), exact
    e = ex.astype(np.int64) - 1
    odd = e & 1
    m = np.where(odd == 1, m * np.float32(2.0), m)  # [1, 4), exact
    e = e - odd  # even
    r = np.asarray(pwl_eval(t, m))
    out = _scale_pow2(r, -(e // 2))
    out = np.where(x32 == 0, np.copysign(np.float32(np.inf), x32), out)
    out = np.where(np.isposinf(x32), np.float32(0.0), out)
    out = np.where(x32 < 0, _NAN32, out)
    return canon32(np.where(np.isnan(x32), _NAN32, out))
