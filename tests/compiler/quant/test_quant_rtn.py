"""RTN int-q and its exact conversion to BCQ (LUT-GEMM §3.3; shared/papers/lutgemm.md §1.3)."""

from __future__ import annotations

import numpy as np
import pytest

from dfx.compiler.quant import QuantSpec, quantize
from dfx.compiler.quant.rtn import int_to_bcq, rtn, rtn_int
from dfx.isa.golden.lutgemm import dequantize


def _weights(k: int, n: int, seed: int = 0) -> np.ndarray:
    """Mixed columns: normal, heavy-tailed with outliers, all-positive, an all-zero column and
    a constant column (so some groups are degenerate)."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((k, n)) * 0.02
    w[:, 1::5] = rng.standard_t(3, (k, len(range(1, n, 5)))) * 0.05
    w[:, 2::5] = np.abs(w[:, 2::5]) + 0.1  # no zero in range: the zero-point clips
    w[:, 3] = 0.0
    w[:, 4] = -0.037
    return w


def _expand(a: np.ndarray, g: int) -> np.ndarray:
    return np.repeat(a, g, axis=0)


@pytest.mark.parametrize("q", [1, 2, 3, 4])
@pytest.mark.parametrize("g", [8, 32, 64, 256])
def test_exact_conversion(q, g):
    w = _weights(256, 40, seed=q * 100 + g)
    qv, s, z0 = rtn_int(w, q, g)
    b = rtn(w, q, g)
    assert b.alpha.dtype == np.float64 and b.z.dtype == np.float64
    ref = _expand(s, g) * (qv - _expand(z0, g))
    assert np.array_equal(dequantize(b), ref)  # bit for bit, not approximately
    # and the planes are the bits of Q, LSB first; alpha_i = s * 2^(i-1)
    assert np.array_equal(sum(b.signs[i].astype(int) << i for i in range(q)), qv)
    assert np.array_equal(b.alpha, s[:, None, :] * 2.0 ** (np.arange(q) - 1)[None, :, None])


@pytest.mark.parametrize("q", [1, 2, 3, 4])
def test_rtn_definition(q):
    g = 32
    w = _weights(128, 30, seed=q)
    qv, s, z0 = rtn_int(w, q, g)
    top = 2**q - 1
    assert qv.dtype == np.uint8 and qv.max() <= top
    assert np.array_equal(z0, np.round(z0)) and z0.min() >= 0 and z0.max() <= top
    assert np.array_equal(s.astype(np.float16).astype(np.float64), s)  # FP16 scale
    # every weight is within the widened range [min(w,0), max(w,0)], so the error is half a
    # step, up to the FP16 rounding of s (the top code may sit 2^-11 * range off)
    err = np.abs(dequantize(rtn(w, q, g)) - w)
    ws = w.reshape(-1, g, w.shape[1])
    rng_ = np.maximum(ws.max(axis=1), 0) - np.minimum(ws.min(axis=1), 0)
    assert (err <= _expand(0.5 * s + rng_ * 2.0**-10, g) + 1e-18).all()


def test_degenerate_groups():
    w = np.zeros((64, 3))
    w[:, 1] = -0.037
    w[:32, 2] = 0.5
    b = rtn(w, 3, 32)
    d = dequantize(b)
    assert np.array_equal(d[:, 0], np.zeros(64))  # all-zero group: s = 0, exact
    assert np.array_equal(d[32:, 2], np.zeros(32))
    assert np.allclose(d[:, 1], -0.037, rtol=2**-10)  # constant group: one rounding of s
    assert np.allclose(d[:32, 2], 0.5, rtol=2**-10)
    assert np.isfinite(b.alpha).all() and np.isfinite(b.z).all()


def test_error_decreases_with_q():
    w = _weights(512, 64, seed=7)
    errs = [np.sqrt(((dequantize(rtn(w, q, 64)) - w) ** 2).mean()) for q in (1, 2, 3, 4)]
    assert all(a > b for a, b in zip(errs, errs[1:], strict=False)), errs


def test_columns_independent():
    w = _weights(256, 50, seed=3)
    full = quantize(w, QuantSpec("rtn", 3, 64), 64)
    for cols in (slice(0, 13), slice(13, 50), np.array([7, 2, 49])):
        part = quantize(w[:, cols], QuantSpec("rtn", 3, 64), 64)
        assert np.array_equal(part.signs, full.signs[:, :, cols])
        assert np.array_equal(part.alpha, full.alpha[:, :, cols])
        assert np.array_equal(part.z, full.z[:, cols])


def test_fp16_storage():
    """``to_fp16`` (what the packed stream stores): alpha = s * 2^(i-1) with s an FP16 value
    stays exact; z = s * ((2^q-1)/2 - z0) needs up to 4 more significant bits than s and is
    rounded: |dz| <= 2^-11 |z| <= 7.5 * s * 2^-11 (q = 4), a tiny fraction of the step s."""
    w = _weights(256, 64, seed=11)
    for q in (1, 2, 3, 4):
        b = rtn(w, q, 64)
        b16 = b.to_fp16()
        normal = b.alpha >= 2.0**-14  # s/2 of a small s may be subnormal in FP16
        assert np.array_equal(b16.alpha.astype(np.float64)[normal], b.alpha[normal])
        _, s, _ = rtn_int(w, q, 64)
        dz = np.abs(b16.z.astype(np.float64) - b.z)
        assert (dz <= np.abs(b.z) * 2.0**-11).all()
        assert (dz <= (2**q - 1) / 2 * s * 2.0**-11 + 2.0**-25).all()
        shift = np.abs(dequantize(b16) - dequantize(b))
        assert (shift <= _expand((2**q - 1) / 2 * s * 2.0**-11 + 2.0**-25, 64)).all()


def test_int_to_bcq_symmetric_gptq():
    """Symmetric GPTQ (z0 = 2^(q-1)) gives the constant offset z = -s/2 (digest §1.3)."""
    rng = np.random.default_rng(5)
    qv = rng.integers(0, 8, (64, 4)).astype(np.uint8)
    s = np.full((2, 4), 0.125)
    b = int_to_bcq(qv, s, np.full((2, 4), 4.0), 3, 32)
    assert np.array_equal(b.z, np.full((2, 4), -0.0625))
    assert np.array_equal(dequantize(b), 0.125 * (qv - 4.0))
