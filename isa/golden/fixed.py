"""Exact fixed-point accumulation, rounded once to FP32: the arithmetic of every dfx reduction
that sums many terms (``vacc``/``vaccsq``, docs/numerics.md; ``lutmv``, docs/lutgemm.md).

FP16 values are integers in units of 2^-24 and their exact squares and scale products integers
in units of 2^-48, so sums of them are exact in a wide fixed-point accumulator (a Kulisch
accumulator). The hardware keeps one such accumulator; here it is emulated with ``int64``
limbs of 31 bits, and :func:`round_fixed32` rounds the exact value once to FP32 (RNE).
"""

from __future__ import annotations

import numpy as np

__all__ = ["LIMB", "LIMBS", "fixed16", "new_limbs", "add_shifted", "round_fixed32"]

LIMB = 31  # bits per limb
LIMBS = 6  # 186 bits: room for every sum dfx forms


def fixed16(v: np.ndarray) -> np.ndarray:
    """Exact ``int64`` in units of 2^-24 of finite values that are FP16 numbers or exact sums
    of them (below 2^53 units)."""
    return np.ldexp(np.asarray(v, dtype=np.float64), 24).astype(np.int64)


def new_limbs(shape: tuple[int, ...]) -> np.ndarray:
    """A zero accumulator for values of ``shape``."""
    return np.zeros((LIMBS, *shape), dtype=np.int64)


def normalize(limbs: np.ndarray) -> None:
    """Carry-propagate ``int64[L, ...]`` base-2^31 limbs in place: all but the top in
    [0, 2^31)."""
    for i in range(limbs.shape[0] - 1):
        c = limbs[i] >> LIMB
        limbs[i] -= c << LIMB
        limbs[i + 1] += c


def add_shifted(limbs: np.ndarray, v: np.ndarray, shift: int) -> None:
    """``limbs += v · 2^shift`` for ``int64`` ``|v| < 2^63``, ``shift >= 0`` (normalised)."""
    q, r = divmod(shift, LIMB)
    lo = v & ((1 << LIMB) - 1)
    hi = v >> LIMB  # floor: v = hi·2^31 + lo
    limbs[q] += lo << r
    limbs[q + 1] += hi << r
    normalize(limbs)


def round_fixed32(limbs: np.ndarray, unit_exp: int) -> np.ndarray:
    """RNE of ``sum_i limbs[i]·2^(31·i + unit_exp)`` to ``float32`` (normalised limbs; the
    value must be 0 or lie in FP32's normal range). Zero is +0."""
    limbs = limbs.copy()
    neg = limbs[-1] < 0
    limbs[:, neg] = -limbs[:, neg]
    normalize(limbs)
    nl = limbs.shape[0]
    nz = limbs != 0
    h = np.where(nz.any(axis=0), nl - 1 - np.argmax(nz[::-1], axis=0), 0)  # top limb index
    pad = np.concatenate([np.zeros((1,) + limbs.shape[1:], np.int64), limbs])  # pad[i+1]=limbs[i]
    top = np.take_along_axis(pad, (h + 1)[None], 0)[0]
    below = np.take_along_axis(pad, h[None], 0)[0]
    window = (top << LIMB) | below  # bits 31·(h-1) .. 31·h + 30 (< 2^62)
    bl = np.frexp(top.astype(np.float64))[1]  # bit length of the top limb (0 for 0)
    sh = np.maximum(bl + LIMB - 24, 0)  # window bits below the 24 kept
    m = window >> sh
    rem = window & ((np.int64(1) << sh) - 1)
    half = np.where(sh > 0, np.int64(1) << np.maximum(sh - 1, 0), 0)
    idx = np.arange(nl)[(slice(None),) + (None,) * (limbs.ndim - 1)]
    sticky = ((limbs != 0) & (idx < h - 1)).any(axis=0)
    up = (sh > 0) & ((rem > half) | ((rem == half) & (sticky | ((m & 1) == 1))))
    mag = np.ldexp((m + up).astype(np.float64), sh + LIMB * (h - 1) + unit_exp)
    return np.where(neg, -mag, mag).astype(np.float32)
