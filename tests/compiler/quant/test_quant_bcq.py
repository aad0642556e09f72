"""Non-uniform BCQ with offset: greedy start, alternating least squares, the RTN start, speed."""

from __future__ import annotations

import time

import numpy as np
import pytest

from dfx.compiler.quant import QuantError, QuantSpec, quantize
from dfx.compiler.quant import bcq as B
from dfx.compiler.quant.rtn import rtn
from dfx.isa.golden.lutgemm import dequantize


def _w(k: int, n: int, seed: int, heavy: bool = False) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_t(4, (k, n)) if heavy else rng.standard_normal((k, n))) * 0.02


def _err(w: np.ndarray, b) -> float:
    return float(((dequantize(b) - w) ** 2).sum())


def _group_err(w: np.ndarray, b) -> np.ndarray:
    d = (dequantize(b) - w) ** 2
    return d.reshape(b.ng, b.g, b.n).sum(axis=1)


@pytest.mark.parametrize("heavy", [False, True])
@pytest.mark.parametrize("g", [32, 128])
def test_error_decreases_with_q(heavy, g):
    w = _w(256, 48, 1, heavy)
    errs = [_err(w, B.bcq(w, q, g)) for q in (1, 2, 3, 4)]
    assert all(a > b for a, b in zip(errs, errs[1:], strict=False)), errs


@pytest.mark.parametrize("q", [1, 2, 3, 4])
def test_error_never_increases_with_rounds(q):
    w = _w(256, 48, q, heavy=True)
    errs = [_err(w, B.bcq(w, q, 64, r)) for r in (0, 1, 2, 5, 15)]
    for a, b in zip(errs, errs[1:], strict=False):
        assert b <= a * (1 + 1e-12), errs
    assert errs[-1] < errs[0]  # refinement beats greedy
    if q >= 2:
        assert errs[-1] < 0.9 * errs[0], errs


@pytest.mark.parametrize("q", [1, 2, 3, 4])
@pytest.mark.parametrize("g", [8, 64])
def test_never_worse_than_rtn(q, g):
    """The RTN-grid start makes BCQ at least as good as RTN per (group, column)."""
    w = _w(128, 40, 10 + q, heavy=True)
    eb, er = _group_err(w, B.bcq(w, q, g)), _group_err(w, rtn(w, q, g))
    assert (eb <= er * (1 + 1e-9) + 1e-30).all()


def _naive_refine(wt: np.ndarray, alpha: np.ndarray, z: np.ndarray, rounds: int):
    """The alternating algorithm written plainly, one row at a time: nearest of all 2^q
    levels per weight, then ``lstsq`` of ``[b_1 .. b_q, 1]``."""
    q = alpha.shape[0]
    pm = np.where((np.arange(1 << q)[:, None] >> np.arange(q)) & 1, 1.0, -1.0)
    out = np.empty(wt.shape[0])
    for r in range(wt.shape[0]):
        a, zz, x = alpha[:, r], z[r], wt[r]
        for _ in range(rounds):
            lev = pm @ a + zz
            code = np.argmin(np.abs(x[:, None] - lev[None, :]), axis=1)
            d = np.concatenate([pm[code], np.ones((len(x), 1))], axis=1)
            sol = np.linalg.lstsq(d, x, rcond=None)[0]
            a, zz = sol[:q], sol[q]
        out[r] = ((x - (pm[code] @ a + zz)) ** 2).sum()
    return out


@pytest.mark.parametrize("q", [1, 2, 3, 4])
def test_fast_refinement_matches_plain_algorithm(q):
    """The sorted-interval rounds (Walsh-Hadamard normal equations, fixed-point rows skipped)
    give the errors of the plain per-weight algorithm from the same greedy start."""
    g, n = 32, 12
    w = _w(2 * g, n, 20 + q, heavy=True)
    wt = np.ascontiguousarray(w.reshape(2, g, n).transpose(0, 2, 1)).reshape(-1, g)
    code, alpha, z = B.greedy(wt, q)
    alpha, z = B.lsq_from_stats(*B.code_stats(wt, code, q))
    for rounds in (1, 4, 15):
        fast = B._refine(B._Sorted(wt), alpha.copy(), z.copy(), (wt * wt).sum(-1), rounds)[4]
        slow = _naive_refine(wt, alpha, z, rounds)
        np.testing.assert_allclose(fast, slow, rtol=1e-9, atol=1e-16)


def test_lsq_from_stats_matches_lstsq():
    rng = np.random.default_rng(4)
    q, g = 3, 40
    wt = rng.standard_normal((5, g))
    code = rng.integers(0, 1 << q, (5, g)).astype(np.uint8)
    alpha, z = B.lsq_from_stats(*B.code_stats(wt, code, q))
    pm = np.where((np.arange(1 << q)[:, None] >> np.arange(q)) & 1, 1.0, -1.0)
    for r in range(5):
        d = np.concatenate([pm[code[r]], np.ones((g, 1))], axis=1)
        sol = np.linalg.lstsq(d, wt[r], rcond=None)[0]
        np.testing.assert_allclose(alpha[:, r], sol[:q], rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(z[r], sol[q], rtol=1e-10, atol=1e-14)


def test_levels_are_the_code_values():
    alpha = np.array([[0.5], [0.25], [2.0]])
    lev = B.levels(alpha, np.array([0.1]))
    for c in range(8):
        want = sum((1 if (c >> i) & 1 else -1) * alpha[i, 0] for i in range(3)) + 0.1
        assert lev[c, 0] == pytest.approx(want)


def test_format_and_degenerate_groups():
    w = _w(64, 6, 3)
    w[:, 0] = 0.0  # all zero
    w[:, 1] = 0.25  # constant
    w[:32, 2] = w[0, 2]  # one constant group
    for q in (1, 4):
        for g in (1, 8, 64):
            b = quantize(w, QuantSpec("bcq", q, g), g)
            assert b.signs.shape == (q, 64, 6) and b.alpha.shape == (64 // g, q, 6)
            assert b.alpha.dtype == np.float64 and b.z.dtype == np.float64
            assert np.isfinite(b.alpha).all() and np.isfinite(b.z).all()
            assert (b.alpha >= 0).all()
            d = dequantize(b)
            np.testing.assert_allclose(d[:, :2], w[:, :2], atol=1e-12)
            if g == 1:
                np.testing.assert_allclose(d, w, atol=1e-12)
            b.to_fp16()


def test_columns_independent():
    w = _w(192, 40, 8, heavy=True)
    spec = QuantSpec("bcq", 3, 64)
    full = quantize(w, spec, 64)
    for cols in (slice(0, 10), slice(10, 40), np.array([39, 0, 17])):
        part = quantize(w[:, cols], spec, 64)
        assert np.array_equal(part.signs, full.signs[:, :, cols])
        assert np.array_equal(part.alpha, full.alpha[:, :, cols])
        assert np.array_equal(part.z, full.z[:, cols])


def test_quantize_errors():
    spec = QuantSpec("bcq", 2, 64)
    with pytest.raises(QuantError, match="does not divide K = 100"):
        quantize(np.zeros((100, 4)), spec, 64)
    with pytest.raises(QuantError, match=r"expected a \[K, N\] weight matrix"):
        quantize(np.zeros(64), spec, 64)
    bad = np.zeros((64, 2))
    bad[3, 1] = np.nan
    with pytest.raises(QuantError, match="infinity or a NaN"):
        quantize(bad, spec, 64)


@pytest.mark.slow
def test_speed_gpt2_xl_matrix():
    """One GPT-2 1.5B MLP matrix (1600 x 6400), q = 4, g = 64, 15 rounds: a few seconds
    (about 5 s CPU on a busy 2-core EPYC; the bound leaves room for a busier machine)."""
    w = _w(1600, 6400, 0)
    t = time.process_time()
    quantize(w, QuantSpec("bcq", 4, 64), 64)
    assert time.process_time() - t < 40


def test_fp16_storage_bound():
    """``to_fp16`` rounds every alpha and z with relative error <= 2^-11 (normal range), so a
    weight moves by at most 2^-11 (sum_b |alpha_b| + |z|) of its group: small against the
    quantization error itself."""
    w = _w(256, 32, 9, heavy=True)
    for q in (1, 2, 3, 4):
        b = B.bcq(w, q, 64)
        b16 = b.to_fp16()
        bound = 2.0**-11 * (np.abs(b.alpha).sum(axis=1) + np.abs(b.z)) + (q + 1) * 2.0**-25
        shift = np.abs(dequantize(b16) - dequantize(b))
        assert (shift <= np.repeat(bound, 64, axis=0)).all()
        assert _err(w, b16) < _err(w, b) * 1.01


def test_chunks_do_not_change_the_result(monkeypatch):
    w = _w(128, 50, 12, heavy=True)
    ref = B.bcq(w, 3, 32)
    monkeypatch.setattr(B, "CHUNK", 32 * 7)  # 7 rows per chunk, the last one shorter
    b = B.bcq(w, 3, 32)
    assert np.array_equal(b.signs, ref.signs)
    assert np.array_equal(b.alpha, ref.alpha) and np.array_equal(b.z, ref.z)
