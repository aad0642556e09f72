"""The golden LUT-GEMM definition (isa/golden/lutgemm.py, docs/lutgemm.md)."""

from __future__ import annotations

import numpy as np
import pytest

from dfx.isa.golden import lutgemm as lg
from dfx.isa.golden.fp import round16


def _random_bcq(rng: np.random.Generator, q: int, k: int, n: int, g: int) -> lg.Bcq:
    signs = rng.random((q, k, n)) < 0.5
    alpha = (rng.random((k // g, q, n)) * 0.05 + 0.001).astype(np.float16)
    z = (rng.standard_normal((k // g, n)) * 0.01).astype(np.float16)
    return lg.Bcq(signs, alpha, z, g)


@pytest.mark.parametrize("q,k,n,g,s", [(1, 32, 5, 32, 32), (3, 256, 40, 64, 32),
                                       (4, 96, 7, 8, 8), (2, 64, 3, 64, 16)])
def test_pack_unpack_round_trip(q: int, k: int, n: int, g: int, s: int) -> None:
    w = _random_bcq(np.random.default_rng(q * k + n), q, k, n, g)
    stream = lg.pack(w, s)
    assert stream.size == lg.stream_bytes(n, k // g, g // s, q, s)
    assert stream.size % lg.SECTION_ALIGN == 0
    u = lg.unpack(stream, n, k // g, g // s, q, s)
    assert (u.signs == w.signs).all()
    assert (u.alpha.view(np.uint16) == w.alpha.view(np.uint16)).all()
    assert (u.z.view(np.uint16) == w.z.view(np.uint16)).all()


def test_packed_bit_conventions() -> None:
    """Sign bit 1 = +1; bit j of byte i is input 8i + j of the lane word (docs/lutgemm.md)."""
    q, k, n, g = 1, 16, 1, 16
    signs = np.zeros((q, k, n), dtype=bool)
    signs[0, 0, 0] = signs[0, 9, 0] = True
    w = lg.Bcq(signs, np.ones((1, 1, 1), np.float16), np.zeros((1, 1), np.float16), g)
    stream = lg.pack(w, 16)
    assert stream[0] == 0b0000_0001 and stream[1] == 0b0000_0010
    # scales follow the signs: alpha then z, FP16 little endian
    assert stream[2:4].view("<f2")[0] == 1.0 and stream[4:6].view("<f2")[0] == 0.0


def test_group_sums_are_exact_and_match_the_dense_product() -> None:
    rng = np.random.default_rng(1)
    w = _random_bcq(rng, 3, 512, 24, 128)
    x = (rng.standard_normal((2, 512)) * 3).astype(np.float16)
    p, xs = lg.group_sums(w, x)
    dense = x.astype(np.float64) @ lg.dequantize(w)
    via = (p * w.alpha.astype(np.float64)[None]).sum(axis=(1, 2)) + xs @ w.z.astype(np.float64)
    assert np.allclose(via, dense, rtol=1e-12, atol=1e-12)
    # exactness: integer multiples of 2^-24
    assert (p * 2.0**24 == np.round(p * 2.0**24)).all()


def test_lut_acc_order_and_rounding() -> None:
    """Spell out step 2 for one row with scalars and compare bits."""
    rng = np.random.default_rng(2)
    w = _random_bcq(rng, 2, 64, 1, 32)
    x = rng.standard_normal(64).astype(np.float16)
    p, xs = lg.group_sums(w, x[None])
    acc = None
    for g in range(2):
        for b in range(2):
            t = np.float32(p[0, g, b, 0]) * np.float32(w.alpha[g, b, 0])
            acc = t if acc is None else np.float32(acc + t)
        acc = np.float32(acc + np.float32(xs[0, g]) * np.float32(w.z[g, 0]))
    got = lg.lut_acc(w, x[None])
    assert got.view(np.uint32)[0, 0] == np.float32(acc).view(np.uint32)
    h = lg.lutmv(w, x, bias=np.array([0.5], np.float16))
    assert h.view(np.uint16)[0] == round16(np.float32(acc + np.float32(0.5))).view(np.uint16)


def test_non_finite_input_poisons_its_group() -> None:
    rng = np.random.default_rng(3)
    w = _random_bcq(rng, 2, 64, 3, 32)
    x = rng.standard_normal((1, 64)).astype(np.float16)
    x[0, 40] = np.inf
    out = lg.lut_acc(w, x)
    assert np.isnan(out).all()
    assert (out.view(np.uint32) == 0x7FC00000).all()


def test_bad_geometry_is_rejected() -> None:
    with pytest.raises(ValueError, match="exceeds 8192"):
        lg.section_bytes(4, 1024, 3, 16)
    with pytest.raises(ValueError, match="does not divide"):
        lg.Bcq(np.zeros((1, 10, 2), bool), np.zeros((1, 1, 2)), np.zeros((1, 2)), 4)
