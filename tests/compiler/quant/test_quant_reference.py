"""The numpy LUT-GEMM (doubling-recurrence tables, sign-bit keys, symmetric half tables)
against the dense product and the golden exact group sums."""

from __future__ import annotations

import numpy as np
import pytest

from dfx.compiler.quant import QuantSpec, quantize
from dfx.compiler.quant.reference import build_tables, combine, lut_group_sums, lut_matvec
from dfx.isa.golden.lutgemm import Bcq, dequantize, group_sums

U = 2.0**-53  # float64 unit roundoff


def _gamma(n: int) -> float:
    return n * U / (1 - n * U)


def _bound(w: Bcq, x: np.ndarray, mu: int) -> np.ndarray:
    """|lut_matvec - x @ dequantize(w)| bound (Higham's gamma_n for sums in any order).

    With ``A[n] = sum_k |x_k| (sum_b |alpha[G(k), b, n]| + |z[G(k), n]|)``:

    * LUT path: a table entry is ``-sum x_j`` plus up to mu terms ``2 x_s`` (<= 2 mu
      roundings, |terms| <= 3 sum |x_j|); P adds g/mu entries, alpha*P is one product, and the
      (q + 1) * ng products are summed: error <= gamma(2 mu + g/mu + (q+1) ng + 2) * 3 A.
    * Dense path: W = sum_b alpha s + z (q roundings), then a K-term dot product:
      error <= gamma(K + q + 2) * A.
    The difference is at most the sum of the two."""
    a = np.abs(w.alpha).sum(axis=1) + np.abs(w.z)  # [ng, N]
    big_a = np.abs(x).reshape(-1, w.ng, w.g).sum(axis=2) @ a  # [B, N]
    d_lut = 2 * mu + w.g // mu + (w.q + 1) * w.ng + 2
    return (3 * _gamma(d_lut) + _gamma(w.k + w.q + 2)) * big_a


def _random_bcq(rng, q: int, k: int, n: int, g: int) -> Bcq:
    return Bcq(rng.random((q, k, n)) < 0.5, rng.random((k // g, q, n)) * 0.1,
               rng.standard_normal((k // g, n)) * 0.01, g)


def _table_direct(x: np.ndarray, mu: int) -> np.ndarray:
    keys = np.arange(1 << mu)
    sgn = np.where((keys[:, None] >> np.arange(mu)) & 1, 1.0, -1.0)  # [2^mu, mu]
    return np.einsum("bcj,ij->bci", x.reshape(x.shape[0], -1, mu), sgn)


@pytest.mark.parametrize("mu", [1, 2, 4, 8])
def test_tables(mu):
    rng = np.random.default_rng(mu)
    x = rng.standard_normal((2, 4 * mu)).astype(np.float16)  # FP16: every entry exact
    t = build_tables(x, mu)
    assert np.array_equal(t, _table_direct(x, mu))
    assert np.array_equal(t[..., -1], x.astype(np.float64).reshape(2, 4, mu).sum(-1))
    assert np.array_equal(t[..., ::-1], -t)  # LUT[~i] = -LUT[i]
    assert np.array_equal(build_tables(x, mu, symmetric=True), t[..., : 1 << (mu - 1)])


@pytest.mark.parametrize("mu", [1, 2, 4, 8])
@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize(("q", "k", "n", "g", "batch"),
                         [(1, 64, 5, 64, 1), (3, 256, 17, 32, 3), (4, 128, 9, 8, 2),
                          (2, 512, 33, 256, 1)])
def test_equals_dense_product(mu, symmetric, q, k, n, g, batch):
    if g % mu:
        pytest.skip("mu must divide g")
    rng = np.random.default_rng(q * 1000 + k + mu)
    w = _random_bcq(rng, q, k, n, g)
    x = rng.standard_normal((batch, k))
    y = lut_matvec(w, x, mu=mu, symmetric=symmetric)
    dense = x @ dequantize(w)
    bound = _bound(w, x, mu)
    assert (np.abs(y - dense) <= bound).all()
    assert bound.max() < 1e-11 * np.abs(dense).max()  # the bound is not vacuous
    assert np.array_equal(lut_matvec(w, x[0], mu=mu, symmetric=symmetric), y[0])


@pytest.mark.parametrize("mu", [1, 2, 4, 8])
def test_symmetric_equals_plain(mu):
    rng = np.random.default_rng(40 + mu)
    w = _random_bcq(rng, 3, 128, 11, 32)
    x16 = (rng.standard_normal((2, 128)) * 3).astype(np.float16)
    # FP16 inputs: both table forms are exact, so they agree bit for bit
    assert np.array_equal(lut_matvec(w, x16, mu, True), lut_matvec(w, x16, mu, False))
    x = rng.standard_normal((2, 128))  # float64 inputs: equal within the rounding bound
    d = np.abs(lut_matvec(w, x, mu, True) - lut_matvec(w, x, mu, False))
    assert (d <= 2 * _bound(w, x, mu)).all()


@pytest.mark.parametrize("mu", [1, 2, 4, 8])
@pytest.mark.parametrize("symmetric", [False, True])
def test_group_sums_equal_golden(mu, symmetric):
    """For FP16 inputs the table look-ups give the golden exact group sums bit for bit, and
    so the same result as combining the golden sums."""
    rng = np.random.default_rng(7 + mu)
    w = quantize(rng.standard_normal((256, 24)) * 0.02, QuantSpec("bcq", 3, 64), 64).to_fp16()
    x16 = (rng.standard_normal((3, 256)) * 2).astype(np.float16)
    x16[1, :5] = [65504, -65504, 6e-8, -6e-8, 0]  # FP16 extremes: still exact
    p, xs = lut_group_sums(w, x16, mu, symmetric)
    gp, gxs = group_sums(w, x16)
    assert np.array_equal(p, gp) and np.array_equal(xs, gxs)
    assert np.array_equal(lut_matvec(w, x16, mu, symmetric), combine(w, gp, gxs))


def test_rtn_weights_through_lut():
    rng = np.random.default_rng(3)
    w = rng.standard_normal((256, 16)) * 0.02
    b = quantize(w, QuantSpec("rtn", 4, 64), 64)
    x = rng.standard_normal(256)
    y = lut_matvec(b, x)
    assert (np.abs(y - x @ dequantize(b)) <= _bound(b, x[None], 8)[0]).all()


def test_errors():
    rng = np.random.default_rng(0)
    w = _random_bcq(rng, 2, 64, 3, 32)
    with pytest.raises(ValueError, match="mu = 3"):
        lut_matvec(w, np.zeros(64), mu=3)
    with pytest.raises(ValueError, match=r"expected \[B, 64\]"):
        lut_matvec(w, np.zeros(60))


def test_close_to_golden_fp32_accumulator():
    """The golden ``lut_acc`` rounds the exact sum once to FP32; the float64 LUT result is
    within its own rounding bound of the exact sum, so the two differ by at most half an FP32
    ulp plus that bound."""
    from dfx.isa.golden.lutgemm import lut_acc

    rng = np.random.default_rng(21)
    w = quantize(rng.standard_normal((512, 40)) * 0.02, QuantSpec("bcq", 4, 128), 128).to_fp16()
    x16 = rng.standard_normal((2, 512)).astype(np.float16)
    y = lut_matvec(w, x16)
    acc = np.asarray(lut_acc(w, x16), dtype=np.float64)
    half_ulp = np.abs(acc) * 2.0**-24
    assert (np.abs(y - acc) <= half_ulp + _bound(w, x16.astype(np.float64), 8)).all()
