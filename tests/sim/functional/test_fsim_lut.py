"""The simulator's fast LUT-GEMM path (:mod:`dfx.sim.functional.lut`) is bit-identical to the
golden ``lutmv`` (docs/lutgemm.md), alone and as the ``lutmv`` instruction; its weights are
cached like the MPU's tiles."""

from __future__ import annotations

import numpy as np
import pytest

from dfx.isa.golden import lutgemm as glut
from dfx.isa.golden import tables as gtab
from dfx.sim.functional import Appliance, lut

GELU = gtab.default_table("gelu")


def _bcq(rng: np.random.Generator, q: int, k: int, n: int, g: int, scale: float = 1.0
         ) -> glut.Bcq:
    signs = rng.random((q, k, n)) < 0.5
    ng = k // g
    a = (np.abs(rng.standard_normal((ng, q, n))) * scale).astype(np.float16)
    z = (rng.standard_normal((ng, n)) * scale).astype(np.float16)
    return glut.Bcq(signs, a, z, g)


def _x(rng: np.random.Generator, shape: tuple[int, ...], scale: float, specials: bool = False
       ) -> np.ndarray:
    x = (rng.standard_normal(shape) * scale).astype(np.float16)
    if specials:
        flat = x.reshape(-1)
        sp = np.array([np.nan, np.inf, -np.inf, -0.0, 6e-8, -6e-8, 65504, -65504, 1e-5],
                      np.float16)
        idx = rng.choice(flat.size, size=min(flat.size, sp.size), replace=False)
        flat[idx] = sp[:idx.size]
    return x


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype == np.float16 and (a.view(np.uint16) == b.view(np.uint16)).all()


def _forms(q: int, g: int) -> list[bool]:
    """The prepared forms that exist for (q, g): planes always, packed where exact."""
    return [False] + ([True] if lut.packed_limb_bits(q, g) else [])


def test_limb_bits() -> None:
    assert lut.limb_bits(128) == 17
    assert lut.limb_bits(8192) == 11
    for g in (1, 8, 100, 128, 129, 4096, 8192):
        assert g * (1 << lut.limb_bits(g)) <= 1 << 24
    assert lut.packed_limb_bits(3, 128) == 9 and lut.packed_limb_bits(4, 128) == 5
    assert lut.packed_limb_bits(2, 128) == 0 and lut.packed_limb_bits(3, 8192) == 0
    for q in range(3, 8):
        for g in (8, 32, 128, 1024, 8192):
            w = lut.packed_limb_bits(q, g)
            if w:  # every plane's sum is a digit below 2^(c-1), all digits fit 53 bits
                c = w + (g - 1).bit_length() + 1
                assert g * (1 << w) <= 1 << (c - 1) and c * q <= 53


def test_packed_form_is_smaller() -> None:
    w = _bcq(np.random.default_rng(0), 3, 256, 40, 128)
    planes, packed = lut.prepare(w, packed=False), lut.prepare(w)
    assert packed.c and not planes.c
    assert packed.s.nbytes * 3 == planes.s.nbytes * 2  # 8 bytes per weight vs 4 per sign
    with pytest.raises(ValueError, match="no exact packed form"):
        lut.prepare(_bcq(np.random.default_rng(0), 2, 256, 4, 128), packed=True)


@pytest.mark.parametrize("q, k, n, g, batch", [
    (1, 8, 1, 8, 1), (3, 768, 192, 128, 1), (2, 256, 17, 32, 2), (4, 512, 33, 512, 3),
    (3, 3072, 101, 64, 2), (7, 64, 9, 16, 1), (4, 768, 64, 128, 2), (3, 2048, 24, 1024, 1),
    (5, 64, 8, 8, 2),
])
@pytest.mark.parametrize("scale", [1.0, 3000.0, 1e-4])
def test_fast_lutmv_equals_golden(q, k, n, g, batch, scale) -> None:
    rng = np.random.default_rng(q * 1000 + n)
    w = _bcq(rng, q, k, n, g, scale=0.05)
    x = _x(rng, (batch, k), scale)
    bias = _x(rng, (n,), 1.0)
    for packed in _forms(q, g):
        p = lut.prepare(w, packed=packed)
        for kw in ({}, {"bias": bias}, {"gelu_table": GELU},
                   {"bias": bias, "gelu_table": GELU}):
            assert _same(glut.lutmv(w, x, **kw), lut.lutmv(p, x, **kw)), (packed, kw)
        with np.errstate(all="ignore"):
            acc = lut.lut_acc(p, x)
        assert (glut.lut_acc(w, x).view(np.uint32) == acc.view(np.uint32)).all()


def test_fast_lutmv_special_values() -> None:
    rng = np.random.default_rng(5)
    for trial in range(24):
        q, g = 1 + trial % 4, (8, 16, 64)[trial % 3]
        w = _bcq(rng, q, 4 * g, 7, g, scale=(0.01, 100.0)[trial % 2])
        x = _x(rng, (3, 4 * g), (1.0, 1000.0, 1e-6)[trial % 3], specials=trial % 4 != 3)
        for packed in _forms(q, g):
            p = lut.prepare(w, packed=packed)
            for kw in ({}, {"bias": _x(rng, (7,), 10.0, specials=True)}, {"gelu_table": GELU}):
                assert _same(glut.lutmv(w, x, **kw), lut.lutmv(p, x, **kw)), (trial, kw)


@pytest.mark.parametrize("q, g, packed", [(2, 8192, False), (3, 1024, True), (4, 128, True),
                                          (4, 128, False), (5, 8, True)])
def test_group_sums_exact_at_the_limits(q, g, packed) -> None:
    """Groups of the largest FP16 values mixed with the smallest (all 40 + log2 g bits; for
    g = 8192 all 53 bits of float64), all signs equal (the largest digits): the limbs and
    digits must not lose a bit."""
    rng = np.random.default_rng(11)
    w = _bcq(rng, q, 2 * g, 3, g)
    signs = w.signs.copy()
    signs[:, :g, 0] = True
    signs[:, :g, 1] = False
    w = glut.Bcq(signs, w.alpha, w.z, g)
    x = np.full((3, 2 * g), 65504, np.float16)
    x[0, ::3] = np.float16(6e-8)
    x[1] = _x(rng, (2 * g,), 1.0)
    x[1, ::7] = np.float16(-65504)
    x[2, :g] = np.float16(-65504)
    p = lut.prepare(w, packed=packed)
    p0, x0 = glut.group_sums(w, x)
    p1, x1 = lut.group_sums(p, x)
    assert (p0 == p1).all() and (x0 == x1).all()
    assert _same(glut.lutmv(w, x), lut.lutmv(p, x))


def test_zero_inputs_give_positive_zero() -> None:
    rng = np.random.default_rng(2)
    w = _bcq(rng, 3, 64, 5, 32)
    x = np.full((1, 64), -0.0, np.float16)
    w0 = glut.Bcq(w.signs, np.zeros_like(w.alpha), np.zeros_like(w.z), 32)
    assert _same(glut.lutmv(w0, x), lut.lutmv(lut.prepare(w0), x))
    assert _same(glut.lutmv(w, x), lut.lutmv(lut.prepare(w), x))


def test_non_finite_scales_give_nan_rows() -> None:
    """A row with a non-finite alpha or z (any group) is NaN; the other rows are unchanged
    (docs/lutgemm.md)."""
    rng = np.random.default_rng(5)
    w = _bcq(rng, 2, 64, 6, 32)
    a, z = w.alpha.copy(), w.z.copy()
    a[1, 0, 2], z[0, 4] = np.inf, np.nan
    bad = glut.Bcq(w.signs, a, z, 32)
    x = _x(rng, (2, 64), 1.0)
    want = glut.lutmv(bad, x)
    assert np.isnan(want[:, [2, 4]]).all()
    assert _same(want[:, [0, 1, 3, 5]], glut.lutmv(w, x)[:, [0, 1, 3, 5]])
    for packed in _forms(2, 32):
        assert _same(want, lut.lutmv(lut.prepare(bad, packed=packed), x))


# -- the instruction -------------------------------------------------------------------------


def _lut_program(sim, rng, *, n: int, ng: int, gs: int, q: int, batch: int, bias: bool,
                 gelu: bool, x_specials: bool = False):
    s = sim.core.lutgemm.slice
    k = ng * gs * s
    d = sim.d
    kv = -(-k // d)
    w = _bcq(rng, q, k, n, gs * s, scale=0.1)
    stream = glut.pack(w, s)
    x = np.zeros((batch, kv * d), np.float16)
    x[:, :k] = _x(rng, (batch, k), 2.0, specials=x_specials)
    b = _x(rng, (n,), 1.0)
    flags = (", bias" if bias else "") + (", gelu" if gelu else "")
    text = f"""
        load dst=vrf[r0+0], src=hbm[r0+0x40000], n={batch * kv * d}
        li rd=r7, imm={ng}
        lutmv y=v[r0+200], x=v[r0+0], w=hbm[r0+0x1000], b=ddr[r0+64], n={n}, ng=r7, \
gs={gs}, q={q}, batch={batch}{flags}
        halt"""
    segs = [("hbm", 0x1000, stream), ("hbm", 0x40000, x), ("ddr", 64, b)]
    want = glut.lutmv(w.to_fp16(), x[:, :k], bias=b if bias else None,
                      gelu_table=gtab.table_from_spec("gelu", sim.core.tables.gelu) if gelu
                      else None)
    return text, segs, want


@pytest.mark.parametrize("n, ng, gs, q, batch, bias, gelu", [
    (12, 2, 1, 3, 1, True, False), (5, 3, 2, 1, 2, False, True), (17, 1, 4, 4, 3, True, True),
    (8, 4, 1, 2, 1, False, False),
])
def test_lutmv_instruction(sim, rng, n, ng, gs, q, batch, bias, gelu) -> None:
    text, segs, want = _lut_program(sim, rng, n=n, ng=ng, gs=gs, q=q, batch=batch, bias=bias,
                                    gelu=gelu, x_specials=n == 17)
    yv = -(-n // sim.d)
    for golden in (False, True):
        app = Appliance(sim.binary(text, segs), golden_matvec=golden)
        app.run(max_instructions=100)
        y = app.cards[0].vrf[200:200 + batch * yv].reshape(batch, yv * sim.d)
        assert _same(y[:, :n], want), golden
        assert (sim.bits16(y[:, n:]) == 0).all()  # +0 past n
        st = app.stats()["cards"][0]
        assert st["lutgemm"]["stream_bytes"] == glut.stream_bytes(n, ng, gs, q,
                                                                  sim.core.lutgemm.slice)


def test_lutmv_weights_are_cached(sim, rng) -> None:
    text, segs, want = _lut_program(sim, rng, n=12, ng=2, gs=1, q=3, batch=1, bias=True,
                                    gelu=False)
    app = Appliance(sim.binary(text, segs))
    app.run(max_instructions=100)
    assert len(app.cache) == 1 and app.cache.misses == 1
    hbm_read = app.stats()["cards"][0]["memory"]["hbm"]
    app.reset()
    app.run(max_instructions=100)
    assert app.cache.hits == 1  # the stream was never written: kept across requests
    assert app.stats()["cards"][0]["memory"]["hbm"] == hbm_read  # reads still counted
    y = app.cards[0].vrf[200:202].reshape(1, 2 * sim.d)
    assert _same(y[:, :12], want)


def test_lutmv_weights_rewritten_by_the_program_are_not_stale(sim, rng) -> None:
    text, segs, want = _lut_program(sim, rng, n=8, ng=1, gs=1, q=1, batch=1, bias=False,
                                    gelu=False)
    # run lutmv, then overwrite the first 16 sign bytes with zeros (all -1), run it again
    text2 = text.replace("halt", """
        load dst=vrf[r0+300], src=hbm[r0+0x40000], n=8
        vsub y=v[r0+300], a=v[r0+300], b=v[r0+300], n=1
        store dst=hbm[r0+0x1000], src=vrf[r0+300], n=8
        lutmv y=v[r0+210], x=v[r0+0], w=hbm[r0+0x1000], b=ddr[r0+64], n=8, ng=r7, gs=1, q=1
        halt""")
    for golden in (False, True):
        app = Appliance(sim.binary(text2, segs), golden_matvec=golden)
        app.run(max_instructions=100)
        y0 = app.cards[0].vrf[200:201]
        y1 = app.cards[0].vrf[210:211]
        stream = app.read(0, "hbm", 0x1000, glut.stream_bytes(8, 1, 1, 1, 8))
        w1 = glut.unpack(np.frombuffer(stream, np.uint8), 8, 1, 1, 1, 8)
        x = app.cards[0].vrf[0:1]
        assert _same(y0[:, :8], want)
        assert _same(y1[:, :8], glut.lutmv(w1, x))
        assert not _same(y1[:, :8], want)


def test_scale_sum_near_rounding_boundaries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Exact sums on an FP32 rounding midpoint, cancellation to zero and exact zeros: the
    int64 path rounds them exactly by itself; the float64 path (for sums too wide for int64)
    sends them to the golden exact accumulator."""
    calls = []
    real = glut.scale_sum

    def counting(*a, **k):  # noqa: ANN002, ANN003
        calls.append(a[0].shape[-1])
        return real(*a, **k)

    monkeypatch.setattr(glut, "scale_sum", counting)
    g, n = 8, 6
    signs = np.ones((1, 2 * g, n), bool)
    signs[0, g:, 2] = False  # column 2: group 1 subtracts what group 0 adds
    alpha = np.ones((2, 1, n), np.float16)
    alpha[:, :, 3] = np.float16(0.0)  # column 3: all terms zero
    alpha[1, 0, 4] = np.float16(-1.0)
    z = np.zeros((2, n), np.float16)
    x = np.zeros((2, 2 * g), np.float16)
    x[0, 0], x[0, 1] = 1.0, np.float16(2.0 ** -24)  # 1 + 2^-24: a midpoint, RNE to 1
    x[0, g], x[0, g + 1] = 1.0, np.float16(2.0 ** -24)
    x[1, 0], x[1, 1], x[1, 2] = 1.0, np.float16(2.0 ** -24), np.float16(2.0 ** -23)
    for w, rows in ((glut.Bcq(signs, alpha, z, g), x),
                    (glut.Bcq(signs[:, :g], alpha[:1], z[:1], g), x[:1, :g].repeat(2, 0))):
        p = lut.prepare(w)
        want = glut.lutmv(w, rows)
        calls.clear()
        assert _same(want, lut.lutmv(p, rows))
        assert not calls  # int64: exact
        ps, xs = lut.group_sums(p, rows)
        bad = np.isnan(xs).any(axis=1)
        pf = np.concatenate([ps, np.broadcast_to(xs[:, :, None, None], ps.shape[:2] + (1, n))],
                            axis=2)
        with np.errstate(all="ignore"):
            acc = lut._scale_sum_f64(p, pf, ps, xs, bad)
        assert calls == [n]  # midpoints (0, 1, 4, 5), cancelling (2) and zero (3) columns
        assert (acc.view(np.uint32) == glut.lut_acc(w, rows).view(np.uint32)).all()


def test_scale_sum_too_wide_for_int64() -> None:
    """Scales and sums spanning FP16's whole range: the float64 path, still exact."""
    rng = np.random.default_rng(4)
    g, n = 64, 40
    w = _bcq(rng, 3, 2 * g, n, g)
    alpha = w.alpha.copy()
    alpha[0, 0, ::2] = np.float16(65504)
    alpha[1, 2, 1::3] = np.float16(6e-8)
    w = glut.Bcq(w.signs, alpha, w.z, g)
    x = _x(rng, (2, 2 * g), 1.0)
    x[:, 3] = np.float16(30000)
    x[:, 5] = np.float16(6e-8)
    p = lut.prepare(w)
    ps, xs = lut.group_sums(p, x)
    with np.errstate(all="ignore"):
        acc = lut.scale_sum(p, ps, xs)
    assert (acc.view(np.uint32) == glut.lut_acc(w, x).view(np.uint32)).all()
    assert _same(glut.lutmv(w, x), lut.lutmv(p, x))
