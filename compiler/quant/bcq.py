"""Non-uniform binary-coding quantization with an offset (extended BCQ, LUT-GEMM §3.3;
shared/papers/lutgemm.md §1.2 and §1.4).

Per (group, column) of ``w[K, N]`` (groups of g consecutive inputs), find signs
``b_i in {-1, +1}^g`` and reals ``alpha_i``, ``z`` minimising ``|w - sum_i alpha_i b_i - z|^2``:

1. **Greedy start** (Xu et al. 2018, mode 0 of the official ``examples/bcq.py``), with our
   offset extension: ``z`` = the group mean, residual ``r = w - z``; for i = 1..q:
   ``b_i = sign(r)`` (+1 at 0), ``alpha_i = mean|r|``, ``r -= alpha_i b_i``.
2. **Alternating refinement**, ``rounds`` times: (a) least squares for ``alpha_1..alpha_q``
   *and z together* given B (design matrix ``[b_1 .. b_q, 1]``; normal equations per group
   with a ridge of ``1e-12 * g`` only to keep duplicate planes solvable), then (b) re-assign
   every weight to the nearest of the 2^q levels ``sum_i alpha_i (+-1) + z``; finally (a)
   once more for the last signs. Neither step can raise the squared error (the ridge aside),
   so the error never increases with rounds.
3. **Second start** (ours, when rounds >= 1): the same refinement from the uniform RTN grid
   (:mod:`.rtn`, ``alpha_i = s 2^(i-1)``); per (group, column) the start with the lower
   error is kept. Alternating least squares from the greedy start can settle in a worse local
   optimum than the uniform grid at q = 4 (measured: tests), and with this start BCQ is never
   worse than RTN of the same q and g (before FP16 rounding of the scales).

Speed: the nearest-level assignment is monotone in w, so each group is sorted once and a
round works on the 2^q level intervals only (boundary binary search, prefix sums): per round
O(ng * N * 2^q * (q^2 + log g)) instead of touching all K * N weights.

Planes whose alpha comes out negative are flipped (alpha >= 0, the paper's convention).
Columns are independent: nothing is shared across N.
"""

from __future__ import annotations

import numpy as np

from dfx.isa.golden.lutgemm import Bcq

from .rtn import rtn_int

__all__ = ["bcq", "code_stats", "greedy", "levels", "lsq_from_stats", "sq_error"]

_RIDGE = 1e-12


def greedy(wt: np.ndarray, q: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Greedy residual binarisation of ``wt[R, g]`` (one row per group and column) around the
    row mean: codes ``uint8[R, g]`` (bit i set = plane i is +1), ``alpha [q, R]``, ``z [R]``."""
    z = wt.mean(axis=-1)
    r = wt - z[:, None]
    code = np.zeros(wt.shape, dtype=np.uint8)
    alpha = np.empty((q, wt.shape[0]))
    for i in range(q):
        b = r >= 0
        a = np.abs(r).mean(axis=-1)
        code |= b.view(np.uint8) << i
        alpha[i] = a
        r -= np.where(b, a[:, None], -a[:, None])
    return code, alpha, z


def code_stats(wt: np.ndarray, code: np.ndarray, q: int) -> tuple[np.ndarray, np.ndarray]:
    """Per code and row: the count ``h`` and the sum ``s`` of the weights, ``[2^q, R]``."""
    nc, rows = 1 << q, wt.shape[0]
    flat = (code.astype(np.int64) * rows + np.arange(rows)[:, None]).ravel()
    h = np.bincount(flat, minlength=nc * rows).astype(np.float64)
    s = np.bincount(flat, weights=wt.ravel(), minlength=nc * rows)
    return h.reshape(nc, rows), s.reshape(nc, rows)


def _fwht(x: np.ndarray) -> np.ndarray:
    """Walsh-Hadamard transform along axis 0 (length 2^q): ``y[S] = sum_c x[c] (-1)^|S & c|``."""
    nc = x.shape[0]
    y = x.copy()
    h = 1
    while h < nc:
        v = y.reshape(nc // (2 * h), 2, h, -1)
        a, b = v[:, 0].copy(), v[:, 1]
        v[:, 0] += b
        v[:, 1] = a - b
        h *= 2
    return y


def levels(alpha: np.ndarray, z: np.ndarray) -> np.ndarray:
    """``[2^q, R]``: level of code c = ``sum_i alpha_i (bit_i(c) ? +1 : -1) + z``."""
    q = alpha.shape[0]
    v = np.zeros((1 << q, alpha.shape[1]))
    v[0] = z
    for i in range(q):
        v[1 << i] = -alpha[i]  # +-1 = -(-1)^bit
    return _fwht(v)


def _spd_solve(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a^-1 b`` for a batch of small symmetric positive definite ``a [m, m, R]``, ``b [m, R]``
    (Gaussian elimination without pivoting, batch last: one vector operation per step)."""
    a, b = a.copy(), b.copy()
    m = a.shape[0]
    for i in range(m):
        f = a[i + 1:, i] / a[i, i]
        a[i + 1:, i:] -= f[:, None] * a[i, i:][None]
        b[i + 1:] -= f * b[i]
    x = np.empty_like(b)
    for i in range(m - 1, -1, -1):
        x[i] = (b[i] - (a[i, i + 1:] * x[i + 1:]).sum(axis=0)) / a[i, i]
    return x


def lsq_from_stats(h: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares ``alpha [q, R]`` and ``z [R]`` for the codes whose per-code counts and
    weight sums are ``h, s [2^q, R]`` (step 2a): the normal equations of ``[b_1 .. b_q, 1]``,
    whose entries are Walsh-Hadamard coefficients of h and s (``b_i b_j = (-1)^(c_i + c_j)``)."""
    q = h.shape[0].bit_length() - 1
    hh, hs = _fwht(h), _fwht(s)
    m = q + 1
    gram = np.empty((m, m, h.shape[1]))
    rhs = np.empty((m, h.shape[1]))
    for i in range(q):
        for j in range(q):
            gram[i, j] = hh[(1 << i) ^ (1 << j)]
        gram[i, q] = gram[q, i] = -hh[1 << i]
        rhs[i] = -hs[1 << i]
    gram[q, q] = hh[0]
    rhs[q] = hs[0]
    ridge = _RIDGE * hh[0]
    for i in range(m):
        gram[i, i] += ridge
    sol = _spd_solve(gram, rhs)
    return sol[:q], sol[q]


def sq_error(w2: np.ndarray, h: np.ndarray, s: np.ndarray, lev: np.ndarray) -> np.ndarray:
    """``sum (w - level)^2`` per row from the per-code statistics (``w2 = sum w^2``)."""
    return w2 - 2.0 * (lev * s).sum(axis=0) + (h * lev * lev).sum(axis=0)


class _Sorted:
    """The rows (one group of one column each) sorted once: a nearest-level assignment is
    2^q - 1 boundaries per row (binary search), with counts and sums from prefix sums."""

    def __init__(self, wt: np.ndarray) -> None:
        rows, g = wt.shape
        self.shape, self.g = wt.shape, g
        self.perm = np.argsort(wt, axis=-1, kind="stable")
        pad = np.empty((rows, g + 2))  # pad[r, 1 + k] = sorted row r; -inf and +inf around
        pad[:, 0], pad[:, g + 1] = -np.inf, np.inf
        pad[:, 1:g + 1] = np.take_along_axis(wt, self.perm, axis=-1)
        self.flat = pad.ravel()
        self.base = (np.arange(rows, dtype=np.int64) * (g + 2))[:, None]
        cs = np.zeros((rows, g + 1))
        np.cumsum(pad[:, 1:g + 1], axis=-1, out=cs[:, 1:])
        self.cs = cs.ravel()
        self.cbase = (np.arange(rows, dtype=np.int64) * (g + 1))[:, None]

    def count_le(self, m: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """``#{k: row[r, k] <= m[i, j]}`` for ``r = rows[i]`` (branchless binary search)."""
        base = self.base[rows]
        pos = np.repeat(base, m.shape[1], axis=1)  # flat index of pad[r, count]
        n = self.g + 1  # candidates 0..g
        while n > 1:
            half = n >> 1
            np.add(pos, half, out=pos, where=np.take(self.flat, pos + half, mode="clip") <= m)
            n -= half
        return pos - base

    def assign(self, alpha: np.ndarray, z: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, ...]:
        """Nearest levels of ``alpha [q, R']``, ``z [R']`` for the rows ``rows``: ``order
        [R', 2^q]`` (codes by level), counts per level position ``hp [R', 2^q]``, per-code
        counts and sums ``h, s [2^q, R']``."""
        lev = np.ascontiguousarray(levels(alpha, z).T)  # [R', 2^q]
        nr, nc = lev.shape
        order = np.argsort(lev, axis=-1, kind="stable")
        ls = np.take_along_axis(lev, order, axis=-1)
        bnd = np.empty((nr, nc + 1), dtype=np.int64)
        bnd[:, 0], bnd[:, nc] = 0, self.g
        bnd[:, 1:nc] = self.count_le(0.5 * (ls[:, 1:] + ls[:, :-1]), rows)
        hp = np.diff(bnd, axis=-1)
        sp = np.diff(np.take(self.cs, self.cbase[rows] + bnd, mode="clip"), axis=-1)
        at = (order * nr + np.arange(nr)[:, None]).ravel()  # code-major flat index
        h, s = np.empty(nc * nr), np.empty(nc * nr)
        h[at], s[at] = hp.ravel(), sp.ravel()
        return order, hp, h.reshape(nc, nr), s.reshape(nc, nr)

    def codes(self, order: np.ndarray, hp: np.ndarray) -> np.ndarray:
        """Per-weight codes ``uint8[R, g]`` of an assignment, in the original order."""
        srt = np.repeat(order.astype(np.uint8).ravel(), hp.ravel())
        code = np.empty(self.shape, dtype=np.uint8)
        np.put_along_axis(code, self.perm, srt.reshape(self.shape), axis=-1)
        return code


def _refine(srt: _Sorted, alpha: np.ndarray, z: np.ndarray, w2: np.ndarray, rounds: int):
    """``rounds`` (>= 1) x (assign, least squares) from ``alpha, z``; returns the last
    assignment (order, hp), its least-squares alpha and z, and its squared error per row.

    A row whose assignment did not change is at a fixed point (the least squares would give
    the same scales again), so later rounds only visit the rows still moving: the result is
    the same as running every row ``rounds`` times."""
    act = np.arange(srt.shape[0])
    order, hp, h, s = srt.assign(alpha, z, act)
    alpha, z = lsq_from_stats(h, s)
    for _ in range(rounds - 1):
        o2, hp2, h2, s2 = srt.assign(alpha[:, act], z[act], act)
        moved = (o2 != order[act]).any(axis=-1) | (hp2 != hp[act]).any(axis=-1)
        if not moved.any():
            break
        act, o2, hp2, h2, s2 = act[moved], o2[moved], hp2[moved], h2[:, moved], s2[:, moved]
        order[act], hp[act], h[:, act], s[:, act] = o2, hp2, h2, s2
        alpha[:, act], z[act] = lsq_from_stats(h2, s2)
    return order, hp, alpha, z, sq_error(w2, h, s, levels(alpha, z))


def _bcq_rows(wt: np.ndarray, a_u: np.ndarray, z_u: np.ndarray, q: int, rounds: int
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Codes ``uint8[R, g]``, ``alpha [q, R]``, ``z [R]`` of rows ``wt [R, g]`` (greedy start;
    with rounds, also the RTN start ``a_u, z_u``, refined, better kept per row)."""
    code, alpha, z = greedy(wt, q)
    if not rounds:
        return code, alpha, z
    alpha, z = lsq_from_stats(*code_stats(wt, code, q))
    srt = _Sorted(wt)
    w2 = (wt * wt).sum(axis=-1)
    first = _refine(srt, alpha, z, w2, rounds)
    second = _refine(srt, a_u, z_u, w2, rounds)
    pick = second[4] < first[4]
    order, hp = (np.where(pick[:, None], y, x) for x, y in zip(first[:2], second[:2],
                                                                 strict=True))
    alpha, z = np.where(pick, second[2], first[2]), np.where(pick, second[3], first[3])
    return srt.codes(order, hp), alpha, z


#: Weights per chunk of rows: the rows are independent, and chunks keep the temporaries of a
#: round in the caches (measured on a 2-core EPYC: about 2x faster than one chunk).
CHUNK = 1 << 18


def bcq(w: np.ndarray, q: int, g: int, rounds: int = 15) -> Bcq:
    """Extended BCQ of ``w[K, N]`` in groups of ``g`` inputs (module docstring)."""
    k, n = w.shape
    ng = k // g
    # rows = (group, column) pairs, row-major over [ng, N]; last axis = the g inputs
    wt = np.ascontiguousarray(np.asarray(w, np.float64).reshape(ng, g, n).transpose(0, 2, 1))
    wt = wt.reshape(ng * n, g)
    _, s_u, z0 = rtn_int(w, q, g)
    a_u = 2.0 ** (np.arange(q) - 1)[:, None] * s_u.reshape(-1)
    z_u = (s_u * ((2**q - 1) / 2 - z0)).reshape(-1)
    rows = wt.shape[0]
    step = max(1, CHUNK // g)
    code = np.empty(wt.shape, dtype=np.uint8)
    alpha, z = np.empty((q, rows)), np.empty(rows)
    for r0 in range(0, rows, step):
        r = slice(r0, min(rows, r0 + step))
        code[r], alpha[:, r], z[r] = _bcq_rows(wt[r], a_u[:, r], z_u[r], q, rounds)
    neg = alpha < 0  # [q, R]
    if neg.any():
        flip = (neg.astype(np.uint8) << np.arange(q, dtype=np.uint8)[:, None]).sum(
            axis=0, dtype=np.uint8)
        code ^= flip[:, None]
        alpha = np.abs(alpha)
    signs = np.stack([(code >> i) & 1 for i in range(q)]).astype(bool)  # [q, R, g]
    signs = signs.reshape(q, ng, n, g).transpose(0, 1, 3, 2).reshape(q, k, n)
    return Bcq(np.ascontiguousarray(signs),
               np.ascontiguousarray(alpha.reshape(q, ng, n).transpose(1, 0, 2)),
               z.reshape(ng, n), g)
