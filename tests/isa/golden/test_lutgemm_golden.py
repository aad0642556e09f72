"""The golden LUT-GEMM definition (isa/golden/lutgemm.py, docs/lutgemm.md)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from golden_helpers import rn32

from dfx.isa.golden import lutgemm as lg
from dfx.isa.golden.fixed import add_shifted, round_fixed32
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


@pytest.mark.parametrize("seed", range(40))
def test_lut_acc_is_the_exact_product_rounded_once(seed: int) -> None:
    """Step 2: the FP32 nearest to the exact product with the dequantized weights (checked
    with rational arithmetic), over wide magnitude ranges and the FP16 extremes."""
    rng = np.random.default_rng(seed)
    ng, q, n, g = int(rng.integers(1, 5)), int(rng.integers(1, 5)), 3, 8
    mag = 10.0 ** rng.uniform(-7, 4)
    w = lg.Bcq(rng.random((q, ng * g, n)) < 0.5,
               (rng.random((ng, q, n)) * mag).astype(np.float16),
               (rng.standard_normal((ng, n)) * mag).astype(np.float16), g)
    x = (rng.standard_normal((1, ng * g)) * 10.0 ** rng.uniform(-7, 4)).astype(np.float16)
    if seed % 5 == 0:
        x[0, :3] = [65504, -65504, 2.0**-24]
    got = lg.lut_acc(w, x)
    wd = [[sum((Fraction(float(w.alpha[k // g, b, m])) * (1 if w.signs[b, k, m] else -1)
                for b in range(q)), Fraction(float(w.z[k // g, m]))) for m in range(n)]
          for k in range(ng * g)]
    for m in range(n):
        exact = sum((Fraction(float(x[0, k])) * wd[k][m] for k in range(ng * g)), Fraction(0))
        assert got[0, m].view(np.uint32) == rn32(exact).view(np.uint32)


def test_round_fixed32_ties_and_signs() -> None:
    """RNE on the limb accumulator: ties to even, sticky bits, negative values, zero."""
    vals = [0, 1, -1, (1 << 24) + 1, (1 << 25) + 1, (1 << 25) + 3, (1 << 25) + 2,
            -((1 << 25) + 3), (1 << 90) + (1 << 66) + 1, (1 << 90) + (1 << 66)]
    limbs = np.zeros((6, len(vals)), dtype=np.int64)
    for i, v in enumerate(vals):
        add_shifted(limbs[:, i:i + 1], np.array([v & ((1 << 62) - 1)], np.int64), 0)
        add_shifted(limbs[:, i:i + 1], np.array([v >> 62], np.int64), 62)
    got = round_fixed32(limbs, 0)
    for v, r in zip(vals, got, strict=True):
        assert r.view(np.uint32) == rn32(Fraction(v)).view(np.uint32), v


def test_lutmv_epilogue() -> None:
    rng = np.random.default_rng(2)
    w = _random_bcq(rng, 2, 64, 1, 32)
    x = rng.standard_normal(64).astype(np.float16)
    acc = lg.lut_acc(w, x[None])[0, 0]
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
