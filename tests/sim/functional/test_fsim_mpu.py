"""The simulator's fast matrix unit is bit-identical to the golden ``matvec``; the
prepared-weight cache."""

from __future__ import annotations

import numpy as np
import pytest

from dfx.isa.golden import ops as gops
from dfx.isa.golden import tables as gtab
from dfx.sim.functional import mpu


def _rand(rng, shape, scale=1.0, specials=False):
    x = (rng.standard_normal(shape) * scale).astype(np.float16)
    if specials:
        flat = x.reshape(-1)
        sp = np.array([np.nan, np.inf, -np.inf, -0.0, 6e-8, 65504, -65504], np.float16)
        idx = rng.choice(flat.size, size=min(flat.size, sp.size), replace=False)
        flat[idx] = sp[:idx.size]
    return x


@pytest.mark.parametrize("d, l, kt, nt, batch", [
    (8, 4, 1, 1, 1), (8, 4, 3, 5, 2), (64, 16, 12, 12, 1), (64, 16, 3, 40, 3), (16, 16, 5, 2, 1),
])
@pytest.mark.parametrize("scale_range", [1.0, 3000.0])
def test_fast_matvec_equals_golden(d, l, kt, nt, batch, scale_range) -> None:  # noqa: E741
    rng = np.random.default_rng(kt * 100 + nt)
    w = _rand(rng, (kt * d, nt * l), scale_range)
    tiles = gops.tile_matrix(w, d, l)
    x = _rand(rng, (batch, kt * d), scale_range)
    bias = _rand(rng, nt * l)
    p = mpu.prepare(tiles)
    for kw in ({}, {"bias": bias}, {"bias": bias, "gelu_table": gtab.default_table("gelu")},
               {"scale": np.float32(0.125), "mask_limit": 3}):
        h0, m0 = gops.matvec(tiles, x, **kw)
        h1, m1 = mpu.matvec(p, x, **kw)
        assert (h0.view(np.uint16) == h1.view(np.uint16)).all(), kw
        assert (m0.view(np.uint32) == m1.view(np.uint32)).all(), kw


def test_fast_matvec_special_values() -> None:
    rng = np.random.default_rng(7)
    for trial in range(20):
        d, l = 8, 4  # noqa: E741
        tiles = gops.tile_matrix(_rand(rng, (2 * d, 3 * l), 100.0, specials=trial % 2 == 0),
                                 d, l)
        x = _rand(rng, (2, 2 * d), 1000.0, specials=True)
        h0, m0 = gops.matvec(tiles, x, scale=np.float32(3.0), mask_limit=-1 + trial % 5)
        h1, m1 = mpu.matvec(mpu.prepare(tiles), x, scale=np.float32(3.0),
                            mask_limit=-1 + trial % 5)
        assert (h0.view(np.uint16) == h1.view(np.uint16)).all()
        assert (m0.view(np.uint32) == m1.view(np.uint32)).all()


def test_blocking_paths(monkeypatch) -> None:
    """Small blocks exercise the column-blocked and tile-blocked paths of ``mac``."""
    rng = np.random.default_rng(3)
    d, l, kt, nt = 16, 4, 6, 20  # noqa: E741
    tiles = gops.tile_matrix(_rand(rng, (kt * d, nt * l), 10.0), d, l)
    x = _rand(rng, (2, kt * d), 10.0)
    want, _ = gops.matvec(tiles, x)
    for block in (16, 100, d * nt * l * 2, 1 << 20):
        monkeypatch.setattr(mpu, "_BLOCK_ELEMS", block)
        got, _ = mpu.matvec(mpu.prepare(tiles), x, row_max=False)
        assert (got.view(np.uint16) == want.view(np.uint16)).all(), block


def test_tile_cache_policy() -> None:
    c = mpu.TileCache(capacity=1000, page_bits=4)
    k1, k2 = ("hbm", 0, 1, 1, 1), ("hbm", 100, 1, 1, 1)
    p400 = mpu.Prepared(np.zeros(80, np.float32), np.zeros(80, np.int8), 1, 1, 1, 1)
    assert c.get(k1) is None
    c.offer(k1, 0, 64, p400)  # first use: only remembered
    assert c.get(k1) is None and c.bytes == 0
    c.offer(k1, 0, 64, p400, lambda: np.array([64]))  # second use: stored
    e = c.get(k1)
    assert e is not None and e.prepared is p400 and e.split.tolist() == [64]
    c.invalidate("ddr", 0, 64)  # another space
    c.invalidate("hbm", 64, 100)  # adjacent, not overlapping
    assert c.get(k1) is not None
    c.invalidate("hbm", 63, 64)
    assert c.get(k1) is None and c.bytes == 0
    # bounded: the least recently used entry goes
    for k in (k1, k2):
        c.offer(k, k[1], k[1] + 64, p400)
        c.offer(k, k[1], k[1] + 64, p400)
    k3 = ("hbm", 200, 1, 1, 1)
    c.offer(k3, 200, 264, p400)
    c.offer(k3, 200, 264, p400)
    assert c.bytes <= 1000 and c.get(k1) is None and c.get(k3) is not None
    c.retain(lambda e: e.key != k3)
    assert c.get(k3) is None
