"""Uniform asymmetric int-q round-to-nearest (RTN) and its exact conversion to BCQ
(LUT-GEMM §3.3, extended BCQ; shared/papers/lutgemm.md §1.3).

Per (group, column) of ``w[K, N]`` with groups of g consecutive inputs, as GPTQ's
``Quantizer`` that the official ``RTNParameter`` uses: the range is widened to contain 0
(``lo = min(w_min, 0)``, ``hi = max(w_max, 0)``), ``s = (hi - lo) / (2^q - 1)`` rounded to
FP16 (so the alphas below are exact FP16 values; FP32 below FP16's normal range),
``z0 = clip(round(-lo / s), 0, 2^q - 1)`` and ``Q = clip(round(w / s) + z0, 0, 2^q - 1)``, so
``w ~ s * (Q - z0)``. An all-zero group has s = 0 (Q = z0 = 0, reconstructed exactly); a
constant non-zero group c is reconstructed to within one rounding (s = |c| / (2^q - 1)).

With ``Q = sum_i 2^i t_i`` and signs ``b_i = 2 t_i - 1``::

    s * (Q - z0) = sum_i (s * 2^(i-1)) * b_i + s * ((2^q - 1) / 2 - z0)

so ``alpha_i = s * 2^(i-1)`` (plane i = bit i of Q, LSB first) and
``z = s * ((2^q - 1) / 2 - z0)``. With s's short significand both are exact in float64, and so
is every partial sum of ``dequantize``: it reproduces ``s * (Q - z0)`` bit for bit. In FP16
the alphas stay exact; z needs up to 4 more significant bits than s and is rounded
(relative error <= 2^-11, i.e. at most 7.5 * s * 2^-11 per group).
"""

from __future__ import annotations

import numpy as np

from dfx.isa.golden.lutgemm import Bcq

__all__ = ["rtn_int", "int_to_bcq", "rtn"]


def _short_scale(s: np.ndarray) -> np.ndarray:
    """``s`` rounded to FP16 (to FP32 outside FP16's normal range), so that every
    ``alpha_i = s * 2^(i-1)`` is stored exactly by ``Bcq.to_fp16`` and the float64 sums of
    ``dequantize`` are exact (a short significand times a small half-integer)."""
    with np.errstate(over="ignore"):
        s16 = s.astype(np.float16).astype(np.float64)
    normal = np.isfinite(s16) & (s16 >= 2.0**-14)
    return np.where(normal, s16, s.astype(np.float32).astype(np.float64))


def rtn_int(w: np.ndarray, q: int, g: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Integer RTN of ``w[K, N]``: codes ``Q uint8[K, N]``, scales ``s float64[ng, N]`` and
    zero-points ``z0 float64[ng, N]`` (integers) with ``w ~ s * (Q - z0)`` per group."""
    k, n = w.shape
    ng = k // g
    wg = np.asarray(w, dtype=np.float64).reshape(ng, g, n)
    top = float(2**q - 1)
    lo = np.minimum(wg.min(axis=1), 0.0)
    hi = np.maximum(wg.max(axis=1), 0.0)
    s = _short_scale((hi - lo) / top)
    safe = np.where(s > 0, s, 1.0)
    z0 = np.clip(np.round(-lo / safe), 0.0, top)
    qv = np.clip(np.round(wg / safe[:, None, :]) + z0[:, None, :], 0.0, top)
    return qv.astype(np.uint8).reshape(k, n), s, z0


def int_to_bcq(qv: np.ndarray, s: np.ndarray, z0: np.ndarray, q: int, g: int) -> Bcq:
    """The exact BCQ form of ``s * (Q - z0)`` (module docstring; float64 alpha and z)."""
    k, n = qv.shape
    planes = np.stack([(qv >> i) & 1 for i in range(q)]).astype(bool)  # [q, K, N]
    pw = np.array([2.0 ** (i - 1) for i in range(q)])  # s/2, s, 2s, ...
    alpha = s[:, None, :] * pw[None, :, None]  # [ng, q, N]
    z = s * ((2**q - 1) / 2 - z0)
    return Bcq(planes, alpha, z, g)


def rtn(w: np.ndarray, q: int, g: int) -> Bcq:
    """RTN int-q of ``w[K, N]`` in groups of ``g`` inputs, converted exactly to BCQ."""
    qv, s, z0 = rtn_int(w, q, g)
    return int_to_bcq(qv, s, z0, q, g)
