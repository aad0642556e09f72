"""Non-uniform binary-coding quantization with an offset (extended BCQ, LUT-GEMM §3.3;
shared/papers/lutgemm.md §1.2 and §1.4).

Per (group, column) of ``w[K, N]`` (groups of g consecutive inputs), find signs
``b_i in {-1, +1}^g`` and reals ``alpha_i``, ``z`` minimising ``|w - sum_i alpha_i b_i - z|^2``:

1. **Greedy** (Xu et al. 2018, the official ``examples/bcq.py``): ``z`` = the group mean (our
   offset extension: the greedy code is then fitted to the centred weights), residual
   ``r = w - z``; for i = 1..q: ``b_i = sign(r)`` (+1 at 0), ``alpha_i = mean|r|``,
   ``r -= alpha_i b_i``.
2. **Alternating refinement**, ``rounds`` times: (a) least squares for ``alpha_1..alpha_q``
   *and z together* given B (design matrix ``[b_1 .. b_q, 1]``, normal equations per group,
   a ridge of ``1e-12 * g`` only to keep duplicate planes solvable), then (b) re-assign every
   weight to the nearest of the 2^q levels ``sum_i alpha_i (+-1) + z``. Each step can only
   lower the squared error (the ridge aside), so the error never increases with rounds.

Planes whose alpha comes out negative are flipped (alpha >= 0, the paper's convention).
Columns are independent: nothing is shared across N.
"""

from __future__ import annotations

import numpy as np

from dfx.isa.golden.lutgemm import Bcq

__all__ = ["bcq", "greedy", "refine_lsq", "assign_nearest"]

_RIDGE = 1e-12


def greedy(wg: np.ndarray, q: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Greedy residual binarisation of ``wg[ng, g, N]`` around the group mean:
    ``signs bool[q, ng, g, N]``, ``alpha [ng, q, N]``, ``z [ng, N]``."""
    ng, g, n = wg.shape
    z = wg.mean(axis=1)
    r = wg - z[:, None, :]
    signs = np.empty((q, ng, g, n), dtype=bool)
    alpha = np.empty((ng, q, n), dtype=wg.dtype)
    for i in range(q):
        b = r >= 0
        a = np.abs(r).mean(axis=1)
        signs[i], alpha[:, i] = b, a
        r -= np.where(b, a[:, None, :], -a[:, None, :])
    return signs, alpha, z


def refine_lsq(wg: np.ndarray, signs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares ``alpha [ng, q, N]`` and ``z [ng, N]`` given the signs (step 2a)."""
    q, ng, g, n = signs.shape
    m = q + 1
    gram = np.empty((ng, n, m, m))
    rhs = np.empty((ng, n, m))
    wsum = wg.sum(axis=1)
    pos = [np.where(signs[i], wg, 0.0).sum(axis=1) for i in range(q)]
    cnt = [signs[i].sum(axis=1, dtype=np.int32) for i in range(q)]
    for i in range(q):
        rhs[:, :, i] = 2.0 * pos[i] - wsum  # sum b_i w
        gram[:, :, i, q] = gram[:, :, q, i] = 2.0 * cnt[i] - g  # sum b_i
        gram[:, :, i, i] = g
        for j in range(i):
            diff = (signs[i] != signs[j]).sum(axis=1, dtype=np.int32)
            gram[:, :, i, j] = gram[:, :, j, i] = g - 2.0 * diff
    rhs[:, :, q] = wsum
    gram[:, :, q, q] = g
    gram += _RIDGE * g * np.eye(m)
    sol = np.linalg.solve(gram, rhs[..., None])[..., 0]  # [ng, N, m]
    return np.ascontiguousarray(sol[:, :, :q].transpose(0, 2, 1)), sol[:, :, q]


def assign_nearest(wg: np.ndarray, alpha: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Signs ``bool[q, ng, g, N]`` of the nearest level ``sum_i alpha_i b_i + z`` (step 2b)."""
    ng, q, n = alpha.shape
    codes = np.arange(1 << q)
    pm = np.where((codes[:, None] >> np.arange(q)) & 1, 1.0, -1.0)  # [2^q, q]
    levels = np.einsum("cq,gqn->gcn", pm, alpha) + z[:, None, :]  # [ng, 2^q, N]
    order = np.argsort(levels, axis=1)
    ls = np.take_along_axis(levels, order, axis=1)
    mid = 0.5 * (ls[:, 1:] + ls[:, :-1])  # [ng, 2^q - 1, N]
    idx = np.zeros(wg.shape, dtype=np.uint8)
    for j in range(mid.shape[1]):
        idx += wg > mid[:, j:j + 1, :]
    code = np.take_along_axis(order.astype(np.uint8), idx, axis=1)  # [ng, g, N]
    return np.stack([(code >> i) & 1 for i in range(q)]).astype(bool)


def bcq(w: np.ndarray, q: int, g: int, rounds: int = 15) -> Bcq:
    """Extended BCQ of ``w[K, N]`` in groups of ``g`` inputs (module docstring)."""
    k, n = w.shape
    wg = np.asarray(w, dtype=np.float64).reshape(k // g, g, n)
    signs, alpha, z = greedy(wg, q)
    for _ in range(rounds):
        alpha, z = refine_lsq(wg, signs)
        signs = assign_nearest(wg, alpha, z)
    alpha, z = refine_lsq(wg, signs) if rounds else (alpha, z)
    neg = alpha < 0  # [ng, q, N]
    if neg.any():
        signs ^= neg.transpose(1, 0, 2)[:, :, None, :]
        alpha = np.abs(alpha)
    return Bcq(signs.reshape(q, k, n), alpha, z, g)
