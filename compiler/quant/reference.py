"""A numpy LUT-GEMM: the paper's table look-up matrix-vector product for BCQ weights
(Park et al., ICLR 2024, §3.1-§3.2 and Fig. 2; shared/papers/lutgemm.md §2).

For every sub-vector ``x_c = x[c*mu : (c+1)*mu]`` one table of the 2^mu signed sums
``LUT_c[i] = sum_j (bit_j(i) ? +1 : -1) * x_c[j]`` is built by the doubling recurrence
``LUT[0] = -sum_j x_c[j]``, ``LUT[i + 2^s] = LUT[i] + 2 x_c[s]`` (i < 2^s). The key of weight
plane b, output n and sub-vector c is the mu sign bits of that plane (bit j <-> element j).
With ``symmetric`` only the 2^(mu-1) entries with the MSB clear are stored; a key with the MSB
set reads ``-LUT[(~key) & (2^mu - 1)]`` (``LUT[~i] = -LUT[i]``, our design option, §2.2).

Then ``P[G, b, n] = sum_{c in G} LUT_c[key]``, ``X[G] = sum_{c in G} LUT_c[all ones]`` and
``y[n] = sum_G (sum_b alpha[G, b, n] P[G, b, n] + z[G, n] X[G])``, all in float64. For FP16
inputs every table entry and group sum is exact (integers in units of 2^-24 below 2^53 for
g <= 8192), so P and X equal :func:`dfx.isa.golden.lutgemm.group_sums` bit for bit.
"""

from __future__ import annotations

import numpy as np

from dfx.isa.golden.lutgemm import Bcq

__all__ = ["build_tables", "combine", "lut_group_sums", "lut_matvec"]


def build_tables(x: np.ndarray, mu: int, symmetric: bool = False) -> np.ndarray:
    """Tables ``float64[B, K/mu, 2^mu]`` (or ``2^(mu-1)`` entries with ``symmetric``) of
    ``x [B, K]`` by the doubling recurrence."""
    b, k = x.shape
    xs = x.astype(np.float64).reshape(b, k // mu, mu)
    size = 1 << (mu - 1 if symmetric else mu)
    t = np.empty((b, k // mu, size))
    t[..., 0] = -xs.sum(axis=-1)
    for s in range(mu - 1 if symmetric else mu):
        h = 1 << s
        t[..., h:2 * h] = t[..., :h] + 2.0 * xs[..., s, None]
    return t


def _keys(w: Bcq, mu: int) -> np.ndarray:
    """``int64[q, K/mu, N]``: the mu sign bits of every (plane, sub-vector, output)."""
    s = w.signs.reshape(w.q, w.k // mu, mu, w.n).astype(np.int64)
    return (s << np.arange(mu)[None, None, :, None]).sum(axis=2)


def lut_group_sums(w: Bcq, x: np.ndarray, mu: int = 8, symmetric: bool = False
                   ) -> tuple[np.ndarray, np.ndarray]:
    """``P float64[B, ng, q, N]`` and ``X float64[B, ng]`` by table look-ups (module
    docstring); ``x [B, K]``."""
    if not 1 <= mu <= 16 or w.g % mu:
        raise ValueError(f"mu = {mu} must be in 1..16 and divide the group size {w.g}")
    tab = build_tables(x, mu, symmetric)  # [B, C, T]
    keys = _keys(w, mu)  # [q, C, N]
    full = (1 << mu) - 1
    if symmetric:
        top = (keys >> (mu - 1)) & 1
        idx = np.where(top == 1, ~keys & full, keys)
        sign = np.where(top == 1, -1.0, 1.0)
    else:
        idx, sign = keys, 1.0
    c = np.arange(keys.shape[1])[None, :, None]
    looked = tab[:, c, idx] * sign  # [B, q, C, N]
    ones = -tab[:, :, 0]  # LUT[all ones] = sum x = -LUT[0] (also the symmetric read)
    bsz, per = x.shape[0], w.g // mu
    p = looked.reshape(bsz, w.q, w.ng, per, w.n).sum(axis=3).transpose(0, 2, 1, 3)
    xs = ones.reshape(bsz, w.ng, per).sum(axis=2)
    return p, xs


def combine(w: Bcq, p: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """``y float64[B, N] = sum_G (sum_b alpha P + z X)`` from the group sums."""
    a = w.alpha.astype(np.float64)
    z = w.z.astype(np.float64)
    return np.einsum("bgqn,gqn->bn", p, a) + np.einsum("bg,gn->bn", xs, z)


def lut_matvec(w: Bcq, x: np.ndarray, mu: int = 8, symmetric: bool = False) -> np.ndarray:
    """``y = x @ W`` for BCQ ``w`` by LUT-GEMM (float64); ``x [K]`` or ``[B, K]``."""
    xa = np.asarray(x)
    one = xa.ndim == 1
    x2 = xa[None, :] if one else xa
    if x2.ndim != 2 or x2.shape[1] != w.k:
        raise ValueError(f"x: expected [B, {w.k}] or [{w.k}], got shape {xa.shape}")
    y = combine(w, *lut_group_sums(w, x2, mu, symmetric))
    return y[0] if one else y
