"""Instruction-level ops (matvec, accum, reduce-max, argmax, tiling) vs slow explicit loops."""

from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
import pytest
from golden_helpers import rn32

from dfx.isa.golden import fp, ops, tables


def b16(a) -> np.ndarray:
    return np.asarray(a).view(np.uint16)


def b32(a) -> np.ndarray:
    return np.asarray(a).view(np.uint32)


def rand16(rng: np.random.Generator, shape, spread: int = 6) -> np.ndarray:
    """FP16 values with a wide dynamic range (exercises rounding in every adder)."""
    v = rng.standard_normal(shape) * np.exp2(rng.integers(-spread, spread + 1, shape))
    return v.astype(np.float16)


# ------------------------------------------------------------------------------- tiling


def test_tile_layout_and_roundtrip():
    rng = np.random.default_rng(10)
    k, n, d, l = 19, 13, 8, 4  # noqa: E741
    w = rand16(rng, (k, n))
    t = ops.tile_matrix(w, d, l)
    assert t.shape == (4, 3, l, d) and t.dtype == np.float16 and t.flags.c_contiguous
    for nt, kt, j, i in itertools.product(range(4), range(3), range(l), range(d)):
        kk, nn = kt * d + i, nt * l + j
        want = w[kk, nn] if (kk < k and nn < n) else np.float16(0)
        assert b16(t[nt, kt, j, i]) == b16(want)
    flat = t.reshape(-1, l, d)  # flat tile index nt*KT + kt
    assert np.array_equal(b16(flat[2 * 3 + 1]), b16(t[2, 1]))
    assert np.array_equal(b16(ops.untile(t, k, n)), b16(w))
    assert ops.untile(t).shape == (24, 16)


# ------------------------------------------------------------------------------- matvec


def rec_tree(v: list) -> np.float32:
    if len(v) == 1:
        return np.float32(v[0])
    h = len(v) // 2
    return np.float32(rec_tree(v[:h]) + rec_tree(v[h:]))


def ref_matvec(w, x, d, l, *, bias=None, scale=None, mask_limit=None, gelu_tab=None):  # noqa: E741
    """Explicit loops over rows, columns, tiles and lanes; FP32 scalar arithmetic."""
    k, n = w.shape
    kt_n = -(-k // d)
    out = np.zeros((x.shape[0], n), dtype=np.float16)
    for b in range(x.shape[0]):
        for c in range(n):
            acc = None
            for kt in range(kt_n):
                prods = []
                for i in range(d):
                    kk = kt * d + i
                    xv = np.float32(x[b, kk]) if kk < x.shape[1] else np.float32(0)
                    wv = np.float32(w[kk, c]) if kk < k else np.float32(0)
                    prods.append(np.float32(xv * wv))
                s = rec_tree(prods)
                acc = s if acc is None else np.float32(acc + s)
            if bias is not None:
                acc = np.float32(acc + np.float32(bias[c]))
            if scale is not None:
                acc = np.float32(acc * np.float32(scale))
            h = np.float16(acc)
            if mask_limit is not None and c > mask_limit + b:
                h = np.float16(-65504)
            if gelu_tab is not None:
                h = tables.gelu16(np.float16(h), gelu_tab)
            out[b, c] = h
    return out


@pytest.mark.parametrize(
    "bias, scale, mask, gelu",
    list(itertools.product([False, True], [False, True], [False, True], [False, True])),
)
def test_matvec_vs_reference(bias, scale, mask, gelu):
    rng = np.random.default_rng(11)
    k, n, d, l, bsz = 19, 13, 8, 4, 3  # noqa: E741
    w = rand16(rng, (k, n))
    x = rand16(rng, (bsz, k))
    bv = rand16(rng, n) if bias else None
    sc = np.float32(0.125 * 1.1) if scale else None
    lim = 4 if mask else None
    gt = tables.table("gelu", -8, 8, 256) if gelu else None
    tiles = ops.tile_matrix(w, d, l)
    h, rmax = ops.matvec(tiles, x, n_out=n, bias=bv, scale=sc, mask_limit=lim, gelu_table=gt)
    want = ref_matvec(w, x, d, l, bias=bv, scale=sc, mask_limit=lim, gelu_tab=gt)
    assert h.shape == (bsz, n) and h.dtype == np.float16
    assert np.array_equal(b16(h), b16(want))
    assert rmax.dtype == np.float32 and rmax.shape == (bsz,)
    assert np.array_equal(b32(rmax), b32(ops.reduce_max16(want)))
    h2, r2 = ops.matvec(
        ops.prepare_tiles(tiles), x, n_out=n, bias=bv, scale=sc, mask_limit=lim, gelu_table=gt
    )
    assert np.array_equal(b16(h2), b16(h)) and np.array_equal(b32(r2), b32(rmax))
    if mask:
        for b in range(bsz):
            assert np.all(b16(h[b, lim + b + 1 :]) == (0 if gelu else 0xFBFF))


def test_matvec_tile_dot_and_sequential_accumulation():
    # one lane, d = 8: products [2^30, 1, -2^30, 1, 0...]. Within a tile the products are
    # aligned and summed exactly (block_dot32): 2, where an FP32 adder tree would lose both 1s
    x = np.array([2**15, 1, 2**15, 1, 0, 0, 0, 0], np.float16)
    w = np.array([[2**15], [1], [-(2**15)], [1], [0], [0], [0], [0]], np.float16)
    h, _ = ops.matvec(ops.tile_matrix(w, 8, 1), x)
    assert b16(h[0]) == 0x4000  # 2.0
    # across tiles the sums are accumulated in FP32, in kt order: (2^25 + 1) - 2^25 = 0
    one = np.zeros(8, np.float16)
    one[0] = 1
    x3 = np.concatenate([one * 2**15, one, one * 2**15])
    w3 = np.concatenate([one * 2**10, one, one * -(2**10)])[:, None]
    h3, _ = ops.matvec(ops.tile_matrix(w3, 8, 1), x3)
    assert b16(h3[0]) == 0x0000 and float(x3.astype(np.float64) @ w3[:, 0]) == 1.0


def test_matvec_small_integers_exact():
    rng = np.random.default_rng(13)
    k, n = 50, 21
    w = rng.integers(-3, 4, (k, n)).astype(np.float16)
    x = rng.integers(-3, 4, (5, k)).astype(np.float16)
    bias = rng.integers(-100, 100, n).astype(np.float16)
    h, rmax = ops.matvec(ops.tile_matrix(w, 8, 4), x, n_out=n, bias=bias)
    exact = x.astype(np.float64) @ w.astype(np.float64) + bias.astype(np.float64)
    assert np.array_equal(h.astype(np.float64), exact)
    assert np.array_equal(rmax.astype(np.float64), exact.max(axis=1))


def test_matvec_one_d_input_and_rowmax_ignores_padding():
    w = -np.ones((8, 5), dtype=np.float16)  # all outputs negative; padded columns would be 0
    x = np.ones(8, dtype=np.float16)
    h, rmax = ops.matvec(ops.tile_matrix(w, 8, 4), x, n_out=5)
    assert h.shape == (5,) and np.all(h == -8) and rmax == np.float32(-8)
    assert isinstance(rmax, np.float32)
    _, rmax_pad = ops.matvec(ops.tile_matrix(w, 8, 4), x)  # n_out defaults to NT*l = 8
    assert rmax_pad == 0.0


def test_matvec_mask_limit_per_row():
    w = np.eye(8, dtype=np.float16)
    x = np.tile(np.arange(1, 9, dtype=np.float16), (3, 1))
    h, rmax = ops.matvec(ops.tile_matrix(w, 8, 4), x, mask_limit=2, scale=np.float32(0.5))
    for b in range(3):
        assert np.all(h[b, : 3 + b] == np.arange(1, 4 + b) * 0.5)
        assert np.all(b16(h[b, 3 + b :]) == 0xFBFF)
        assert rmax[b] == (3 + b) * 0.5


def test_matvec_specials_and_errors():
    w = np.ones((8, 4), dtype=np.float16)
    x = np.array([np.inf] + [0] * 7, dtype=np.float16)
    w[0, 1] = 0
    w[0, 2] = -1
    h, rmax = ops.matvec(ops.tile_matrix(w, 8, 4), x)
    assert list(b16(h)) == [0x7C00, 0x7E00, 0xFC00, 0x7C00]  # inf*0 -> NaN, canonical
    assert b32(rmax) == 0x7FC00000
    with pytest.raises(ValueError, match="x: K"):
        ops.matvec(ops.tile_matrix(w, 8, 4), np.zeros(9, np.float16))
    with pytest.raises(ValueError, match="n_out"):
        ops.matvec(ops.tile_matrix(w, 8, 4), np.zeros(8, np.float16), n_out=5)
    with pytest.raises(ValueError, match="bias"):
        ops.matvec(ops.tile_matrix(w, 8, 4), np.zeros(8, np.float16), bias=np.zeros(2, np.float16))


# -------------------------------------------------------------------------------- accum


def ref_accum(x, n, mode):
    """The exact sum (of squares) of the first n elements, rounded once to FP32 (rationals)."""
    if n == 0:
        return np.float32(0)
    s = sum((Fraction(float(v)) ** (2 if mode == "sumsq" else 1) for v in x[:n]), Fraction(0))
    return rn32(s)


@pytest.mark.parametrize("mode", ["sum", "sumsq"])
def test_accum_is_the_exact_sum_rounded_once(mode):
    rng = np.random.default_rng(14)
    d = 8
    for n in (0, 1, 7, 8, 9, 30, 64):
        x = rand16(rng, 70, 8)
        got = ops.accum(x, n, d, mode)
        assert isinstance(got, np.float32)
        assert b32(got) == b32(ref_accum(x, n, mode)), n
    xb = rand16(rng, (3, 2, 40), 8)
    got = ops.accum(xb, 37, d, mode)
    assert got.shape == (3, 2)
    for i, j in itertools.product(range(3), range(2)):
        assert b32(got[i, j]) == b32(ref_accum(xb[i, j], 37, mode))


def test_accum_does_not_depend_on_order_and_cancels_exactly():
    """What a sequential FP32 sum loses: 65504 + 2^-24 - 65504 + 2^-24 is 2^-23 in any order."""
    x = np.array([65504, 2.0**-24, -65504, 2.0**-24], dtype=np.float16)
    assert ops.accum(x, 4, 4, "sum") == np.float32(2.0**-23)
    assert ops.accum(x[::-1].copy(), 4, 4, "sum") == np.float32(2.0**-23)
    rng = np.random.default_rng(3)
    y = rand16(rng, 256, 8)
    assert b32(ops.accum(y, 256, 8, "sumsq")) == b32(ops.accum(rng.permutation(y), 256, 64,
                                                                "sumsq"))


def test_accum_ignores_elements_beyond_n_and_specials():
    x = np.array([1, 2, 3, np.nan, np.inf], dtype=np.float16)
    assert ops.accum(x, 3, 4, "sum") == 6.0
    assert b32(ops.accum(x, 4, 4, "sum")) == 0x7FC00000
    assert ops.accum(np.array([-0.0, -0.0], np.float16), 2, 2, "sum") == 0.0
    inf = np.array([1, np.inf, 2, 3], dtype=np.float16)
    assert ops.accum(inf, 4, 4, "sum") == np.inf
    assert ops.accum(-inf, 4, 4, "sum") == -np.inf
    assert ops.accum(-inf, 4, 4, "sumsq") == np.inf
    both = np.array([np.inf, -np.inf], dtype=np.float16)
    assert b32(ops.accum(both, 2, 2, "sum")) == 0x7FC00000
    big = np.full(64, 65504, np.float16)  # squares exceed FP16, not FP32
    assert ops.accum(big, 64, 8, "sumsq") == ref_accum(big, 64, "sumsq")
    assert ops.accum(np.full(64, 32768, np.float16), 64, 8, "sumsq") == np.float32(2.0**36)
    with pytest.raises(ValueError, match="mode"):
        ops.accum(x, 3, 4, "max")


# ---------------------------------------------------------------------- reduce-max/argmax


def test_reduce_max_signed_zero_nan_order_independent():
    v = np.array([-0.0, 0.0, -1.0], np.float16)
    for perm in itertools.permutations(range(3)):
        assert b32(ops.reduce_max16(v[list(perm)])) == 0x00000000
    assert b32(ops.reduce_max16(np.array([-0.0, -0.0], np.float16))) == 0x80000000
    assert b32(ops.reduce_max16(np.array([1, np.nan, 2], np.float16))) == 0x7FC00000
    assert ops.reduce_max16(np.array([-np.inf, -65504], np.float16)) == -65504
    assert ops.reduce_max16(np.array([1, 5, 9], np.float16), n=2) == 5
    rng = np.random.default_rng(15)
    x = rand16(rng, (10, 33), 12)
    assert np.array_equal(ops.reduce_max16(x), x.astype(np.float32).max(axis=1))


def test_argmax():
    assert ops.argmax16(np.array([1, 3, 3, 2], np.float16)) == 1
    assert ops.argmax16(np.array([1, 3, np.nan, 9, np.nan], np.float16)) == 2
    assert ops.argmax16(np.array([-0.0, 0.0], np.float16)) == 1
    assert ops.argmax16(np.array([0.0, -0.0], np.float16)) == 0
    assert ops.argmax16(np.array([1, 2, 9], np.float16), n=2) == 1
    assert ops.argmax16(np.array([-np.inf, -np.inf], np.float16)) == 0
    rng = np.random.default_rng(16)
    x = rand16(rng, (20, 100))
    assert np.array_equal(ops.argmax16(x), np.argmax(x.astype(np.float32), axis=1))
    assert isinstance(ops.argmax16(x[0]), int)
    with pytest.raises(ValueError):
        ops.argmax16(np.zeros(3, np.float16), n=0)


def test_order_key_is_monotone():
    allx = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16)
    fin = allx[~np.isnan(allx)]
    key = ops.order_key16(fin)
    order = np.argsort(key, kind="stable")
    vals = fin[order].astype(np.float64)
    assert np.all(np.diff(vals) >= 0)
    assert np.unique(key).size == fin.size
    assert fp.NEG_MAX16 == -65504
