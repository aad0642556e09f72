"""FP16/FP32 primitives of the DFX datapath (the normative numerics; see docs/numerics.md).

DFX (Hong et al., MICRO 2022) computes in FP16 "everywhere" (digest §1.1, §2.4, §2.5). This
project fixes the details the paper leaves open:

* storage is IEEE binary16 (``np.float16``), internal arithmetic and scalar registers are IEEE
  binary32 (``np.float32``);
* every rounding point is round-to-nearest-even with gradual underflow (no FTZ/DAZ);
* every NaN result is canonicalised (FP16 ``0x7E00``, FP32 ``0x7FC00000``).

All functions are vectorised over numpy arrays. They return numpy arrays, or numpy scalars when
given scalars. Compare results by bit pattern (:func:`f16_bits`, :func:`f32_bits`), never by
value: ``-0.0 == 0.0`` and ``nan != nan``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

__all__ = [
    "NAN16_BITS",
    "NAN32_BITS",
    "NEG_MAX16_BITS",
    "NEG_MAX16",
    "canon16",
    "canon32",
    "f16_bits",
    "bits_f16",
    "f32_bits",
    "bits_f32",
    "widen16",
    "round32",
    "round16",
    "add16",
    "sub16",
    "mul16",
    "sq16",
    "adds16",
    "subs16",
    "muls16",
    "add32",
    "sub32",
    "mul32",
    "DOT_FRAC_BITS",
    "dot_exp16",
    "block_dot32",
    "block_dot32_products",
]

NAN16_BITS = 0x7E00
"""Canonical FP16 NaN (positive quiet NaN)."""
NAN32_BITS = 0x7FC00000
"""Canonical FP32 NaN (positive quiet NaN)."""
NEG_MAX16_BITS = 0xFBFF
"""-65504, the finite FP16 value closest to -inf: the causal-mask fill (DFX §2.4 SFU_M)."""
NEG_MAX16 = np.uint16(NEG_MAX16_BITS).view(np.float16)

_NAN16 = np.uint16(NAN16_BITS).view(np.float16)
_NAN32 = np.uint32(NAN32_BITS).view(np.float32)

ArrayLike = npt.ArrayLike
_F = TypeVar("_F", bound=Callable[..., Any])


def quiet(fn: _F) -> _F:
    """Decorator: run ``fn`` with numpy FP warnings off (overflow, NaN, underflow are data here)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with np.errstate(all="ignore"):
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _ret(a: np.ndarray) -> Any:
    """Unwrap 0-d arrays to numpy scalars, leave other arrays alone."""
    return a[()] if a.ndim == 0 else a


def _as16(x: ArrayLike) -> np.ndarray:
    a = np.asarray(x)
    if a.dtype != np.float16:
        raise TypeError(f"expected a float16 array, got dtype {a.dtype}")
    return a


def _as32(x: ArrayLike) -> np.ndarray:
    """Coerce to float32. A float64 input is rounded to FP32 here (one RNE rounding)."""
    return np.asarray(x, dtype=np.float32)


# --------------------------------------------------------------------------------- bit views


def f16_bits(x: ArrayLike) -> Any:
    """Bit patterns (``uint16``) of an FP16 array."""
    return _ret(np.asarray(_as16(x)).view(np.uint16))


def bits_f16(b: ArrayLike) -> Any:
    """FP16 values from bit patterns (any integer array, taken modulo 2^16)."""
    return _ret(np.asarray(b).astype(np.uint16).view(np.float16))


def f32_bits(x: ArrayLike) -> Any:
    """Bit patterns (``uint32``) of an FP32 array."""
    a = np.asarray(x)
    if a.dtype != np.float32:
        raise TypeError(f"expected a float32 array, got dtype {a.dtype}")
    return _ret(a.view(np.uint32))


def bits_f32(b: ArrayLike) -> Any:
    """FP32 values from bit patterns (any integer array, taken modulo 2^32)."""
    return _ret(np.asarray(b).astype(np.uint32).view(np.float32))


# ------------------------------------------------------------------------- canonicalisation


def canon16(x: ArrayLike) -> Any:
    """Replace every FP16 NaN (any sign or payload) by the canonical NaN ``0x7E00``."""
    a = _as16(x)
    return _ret(np.where(np.isnan(a), _NAN16, a).astype(np.float16))


@quiet
def canon32(x: ArrayLike) -> Any:
    """Replace every FP32 NaN (any sign or payload) by the canonical NaN ``0x7FC00000``."""
    a = _as32(x)
    bits = np.where(np.isnan(a), np.uint32(NAN32_BITS), a.view(np.uint32))
    return _ret(bits.astype(np.uint32).view(np.float32))


# ------------------------------------------------------------------------------ conversions


@quiet
def widen16(x: ArrayLike) -> Any:
    """FP16 -> FP32 (exact; NaNs canonicalised)."""
    return canon32(_as16(x).astype(np.float32))


@quiet
def round32(x: ArrayLike) -> Any:
    """Anything -> FP32 by one RNE rounding (numpy's float64->float32 cast), NaN canonical."""
    return canon32(np.asarray(x, dtype=np.float64).astype(np.float32))


@quiet
def round16(x32: ArrayLike) -> Any:
    """FP32 -> FP16: IEEE RNE, subnormals kept, |x| >= 65520 -> inf, NaN canonical.

    numpy's ``float32 -> float16`` cast implements exactly this rounding (tests check it against
    an integer reference over all FP16 rounding boundaries; docs/numerics.md records an
    exhaustive check over all 2^32 FP32 patterns). The input is coerced to float32 first.
    """
    return canon16(_as32(x32).astype(np.float16))


# -------------------------------------------------------------- VFU element-wise (DFX §2.5)


@quiet
def add16(a: ArrayLike, b: ArrayLike) -> Any:
    """Vector add: ``round16(round32(f32(a) + f32(b)))`` (double rounding is intended)."""
    return round16(_as16(a).astype(np.float32) + _as16(b).astype(np.float32))


@quiet
def sub16(a: ArrayLike, b: ArrayLike) -> Any:
    """Vector sub: ``round16(round32(f32(a) - f32(b)))``."""
    return round16(_as16(a).astype(np.float32) - _as16(b).astype(np.float32))


@quiet
def mul16(a: ArrayLike, b: ArrayLike) -> Any:
    """Vector mul: ``round16(f32(a) * f32(b))``; the FP32 product of two FP16 values is exact."""
    return round16(_as16(a).astype(np.float32) * _as16(b).astype(np.float32))


def sq16(a: ArrayLike) -> Any:
    """Vector square (the VFU's fourth op, DFX §2.5): ``mul16(a, a)``."""
    return mul16(a, a)


@quiet
def adds16(x: ArrayLike, s: ArrayLike) -> Any:
    """Vector + FP32 scalar: ``round16(round32(f32(x) + s))``."""
    return round16(_as16(x).astype(np.float32) + _as32(s))


@quiet
def subs16(x: ArrayLike, s: ArrayLike) -> Any:
    """Vector - FP32 scalar: ``round16(round32(f32(x) - s))``."""
    return round16(_as16(x).astype(np.float32) - _as32(s))


@quiet
def muls16(x: ArrayLike, s: ArrayLike) -> Any:
    """Vector * FP32 scalar: ``round16(round32(f32(x) * s))``."""
    return round16(_as16(x).astype(np.float32) * _as32(s))


# ---------------------------------------------------------------- SFU_V scalar (DFX §2.5)


@quiet
def add32(a: ArrayLike, b: ArrayLike) -> Any:
    """Scalar FP32 add (IEEE RNE, NaN canonical)."""
    return canon32(_as32(a) + _as32(b))


@quiet
def sub32(a: ArrayLike, b: ArrayLike) -> Any:
    """Scalar FP32 sub (IEEE RNE, NaN canonical)."""
    return canon32(_as32(a) - _as32(b))


@quiet
def mul32(a: ArrayLike, b: ArrayLike) -> Any:
    """Scalar FP32 mul (IEEE RNE, NaN canonical)."""
    return canon32(_as32(a) * _as32(b))


# ------------------------------------------------------- MFU lane dot product (DFX §2.4)

DOT_FRAC_BITS = 12
"""F: bits kept below the largest product's exponent in :func:`block_dot32_products` (the MFU
lane's alignment window; docs/numerics.md §3)."""
_DOT_NONE = -64  # dot_exp16 of a zero or non-finite operand: below every real exponent


def _dot_exp_table() -> np.ndarray:
    bits = np.arange(1 << 16, dtype=np.uint32)
    exp = (bits >> 10) & 31
    table = np.maximum(exp, 1).astype(np.int8)
    table[((bits & 0x7FFF) == 0) | (exp == 31)] = _DOT_NONE
    table.setflags(write=False)
    return table


_DOT_EXP = _dot_exp_table()  # FP16 bit pattern -> dot_exp16


def dot_exp16(x: ArrayLike) -> np.ndarray:
    """The effective exponent field of FP16 values, ``max(exponent bits, 1)`` in 1..30, as
    ``int8``; zero, inf and NaN give -64 (their products take no part in the maximum)."""
    return _DOT_EXP[np.ascontiguousarray(_as16(x)).view(np.uint16)]


@quiet
def block_dot32_products(
    p: np.ndarray, e: np.ndarray, axis: int = 0, *, overwrite: bool = False
) -> Any:
    """The MFU lane's sum of d exact products (DFX §2.4 MAC tree; docs/numerics.md §3).

    ``p``: the products ``a_i * b_i`` of FP16 pairs, exact (float32 or float64); ``e``: their
    exponent sums ``dot_exp16(a_i) + dot_exp16(b_i)``; reduced along ``axis``. With ``E`` the
    largest ``e_i`` of a non-zero finite product and ``F`` = :data:`DOT_FRAC_BITS`, each product
    is aligned to ``E`` with ``F`` more fraction bits and rounded down (two's complement
    truncation), ``t_i = floor(p_i · 2^(50 + F - E))``; the integers are summed exactly and the
    sum is rounded once, ``RN32(sum · 2^(E - 50 - F))`` (always in FP32's normal range; a zero
    sum is +0). Inf and NaN products follow IEEE addition (NaN canonical). ``overwrite``: ``p``
    (a float array) may be used as scratch space.
    """
    p = np.asarray(p)
    emax = np.maximum(np.asarray(e).max(axis=axis, keepdims=True), 2).astype(np.int32)
    # p_i 2^(50+F-E) is exact in p's type: at most 22 + F significant bits, normal range
    scale = np.ldexp(1.0, 50 + DOT_FRAC_BITS - emax).astype(p.dtype)
    t = np.multiply(p, scale, out=p) if overwrite else p * scale  # inf and NaN stay so
    np.floor(t, out=t)
    s = t.sum(axis=axis, keepdims=True, dtype=np.float64)  # integers < 2^53: exact
    unit = np.ldexp(1.0, emax - 50 - DOT_FRAC_BITS)
    r = ((s + 0.0) * unit).astype(np.float32)  # + 0.0: -0 -> +0
    if not np.isfinite(r).all():  # an inf or NaN product (finite sums cannot overflow)
        fin = np.isfinite(t)
        special = np.where(fin, 0.0, t).sum(axis=axis, keepdims=True)
        s = np.where(fin, t, 0.0).sum(axis=axis, keepdims=True, dtype=np.float64)
        ok = ((s + 0.0) * unit).astype(np.float32)
        r = np.where(np.isfinite(special), ok, special.astype(np.float32))
    return canon32(np.squeeze(r, axis=axis))


def block_dot32(a: ArrayLike, b: ArrayLike, axis: int = -1) -> Any:
    """The MFU lane dot product of FP16 vectors ``a`` and ``b`` (broadcast) along ``axis``:
    :func:`block_dot32_products` of their exact products."""
    a16, b16 = _as16(a), _as16(b)
    with np.errstate(all="ignore"):
        p = a16.astype(np.float32) * b16.astype(np.float32)  # exact
    return block_dot32_products(p, dot_exp16(a16) + dot_exp16(b16), axis=axis)
