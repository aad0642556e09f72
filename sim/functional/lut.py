"""The LUT-GEMM unit of the functional simulator: a fast, bit-identical form of the golden
:func:`dfx.isa.golden.lutgemm.lutmv` (docs/lutgemm.md; Park et al., ICLR 2024, §3), and the
weight preparation that the prepared-weight cache (:class:`~.mpu.TileCache`) keeps.

The golden model computes the exact group sums ``P[G, b, m] = sum_{k in G} s·x[k]`` with a
float64 ``einsum`` over ±1.0 planes (8 bytes per sign). Here the sums come from BLAS matrix
products that are still **exact**, on weights prepared once per stream:

* every FP16 input is an integer multiple of 2^-24 below 2^40 in those units, so
  ``x = 2^(t-24) · m`` with integers ``m`` (``t``: the trailing zero bits all inputs of the
  call share, which makes ``m`` short for typical activations);
* ``m`` is cut into signed limbs of ``w`` bits, small enough that every partial sum of a
  product is an exact integer whatever order BLAS adds in (below, h = w + ceil(log2 g) bounds
  a group's sum of ±limbs: ``|sum| < g · 2^w <= 2^h``);
* **planes** (``float32[ng, g, q·N]``, ±1, 4 bytes per sign): float32 products, ``h <= 24``;
* **packed** (``float64[ng, g, N]``, all q signs of a weight in one number
  ``sum_b s_b · 2^(c·b)`` with ``c = h + 1``; 8 bytes per *weight*, used for q >= 3): float64
  products, ``q·(h + 1) <= 53``, so each plane's sum is a base-2^c digit, recovered exactly by
  rounding (``|digit| < 2^(c-1)``);
* the limb sums are recombined in float64, lowest limb first; every partial result is an
  integer below ``g · 2^40 <= 2^53`` (g <= 8192), hence exact: ``P`` equals the golden's.

The scaling (step 2) is the exact ``sum_G (sum_b alpha·P + z·X)`` rounded once to FP32
(:func:`~dfx.isa.golden.lutgemm.scale_sum`, a multi-limb integer accumulator). Here
:func:`scale_sum` sums the terms (integers in units of 2^-48) exactly in ``int64`` when they
fit, which they do for ordinary data once the shared trailing zero bits are taken out, and
rounds once (round to odd at 53 bits, then RNE to FP32); wider sums use a float64 sum with a
rigorous error bound E where ``[S - E, S + E]`` rounds to one FP32 number (RNE is monotonic),
and the golden function for the rest. The epilogue is the golden
:func:`~dfx.isa.golden.ops.epilogue16`. A group with a non-finite input gives NaN as in the
golden model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dfx.isa.golden import lutgemm as glut
from dfx.isa.golden.fp import canon32
from dfx.isa.golden.ops import epilogue16

__all__ = ["PreparedLut", "prepare", "prepare_stream", "group_sums", "scale_sum", "lut_acc",
           "lutmv", "limb_bits", "packed_limb_bits"]

_MIN_PACKED_LIMB = 4  # narrower limbs (more products) are not worth the memory saved


def _log2g(g: int) -> int:
    return max(0, (g - 1).bit_length())


def limb_bits(g: int) -> int:
    """Limb width of the float32 planes for groups of ``g`` inputs: ``g · 2^w <= 2^24``."""
    return 24 - _log2g(g)


def packed_limb_bits(q: int, g: int) -> int:
    """Limb width of the packed float64 form (``q · (w + log2 g + 1) <= 53``); below
    the useful minimum (or q < 3, where planes are as small) 0: use planes."""
    w = 53 // q - 1 - _log2g(g)
    return w if q >= 3 and w >= _MIN_PACKED_LIMB else 0


@dataclass(frozen=True, eq=False)
class PreparedLut:
    """One ``lutmv`` weight stream, prepared (read-only arrays): ``s`` the signs (float32
    ±1 planes ``[ng, g, q·N]``, or packed float64 ``[ng, g, N]`` when ``c`` > 0: base-2^c
    digits), ``alpha float32[ng, q, N]``, ``z float32[ng, N]``, ``w`` the limb width."""

    s: np.ndarray
    alpha: np.ndarray
    z: np.ndarray
    n: int
    ng: int
    g: int
    q: int
    w: int
    c: int = 0

    @property
    def k(self) -> int:
        return self.ng * self.g

    @property
    def nbytes(self) -> int:
        return self.s.nbytes + self.alpha.nbytes + self.z.nbytes


def prepare(w: glut.Bcq, packed: bool | None = None) -> PreparedLut:
    """Prepare an (FP16-scaled) :class:`~dfx.isa.golden.lutgemm.Bcq` for :func:`lutmv`;
    ``packed``: force the form (default: packed where :func:`packed_limb_bits` allows)."""
    q, k, n = w.signs.shape
    ng, g = w.ng, w.g
    wp = packed_limb_bits(q, g)
    if packed and not wp:
        raise ValueError(f"q = {q}, g = {g}: no exact packed form")
    planes = w.signs.reshape(q, ng, g, n)
    if wp and packed is not False:
        c = wp + _log2g(g) + 1
        code = np.zeros((ng, g, n), dtype=np.uint8)  # bit b: the sign of plane b
        for b in range(q):
            code |= planes[b].view(np.uint8) << b
        digits = np.array([sum((1.0 if (v >> b) & 1 else -1.0) * float(2 ** (c * b))
                               for b in range(q)) for v in range(1 << q)])
        s = digits[code]
        limb, base = wp, c
    else:
        s = np.where(planes.transpose(1, 2, 0, 3), np.float32(1.0), np.float32(-1.0))
        s = np.ascontiguousarray(s, dtype=np.float32).reshape(ng, g, q * n)
        limb, base = limb_bits(g), 0
    a = np.ascontiguousarray(w.alpha.astype(np.float32))
    z = np.ascontiguousarray(w.z.astype(np.float32))
    for arr in (s, a, z):
        arr.setflags(write=False)
    return PreparedLut(s, a, z, n, ng, g, q, limb, base)


def prepare_stream(stream: np.ndarray, n: int, ng: int, gs: int, q: int, slice_: int
                   ) -> PreparedLut:
    """Prepare a packed stream (:func:`~dfx.isa.golden.lutgemm.pack` layout)."""
    return prepare(glut.unpack(stream, n, ng, gs, q, slice_))


def group_sums(p: PreparedLut, x16: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact ``P float64[B, ng, q, N]`` and ``X float64[B, ng]`` (NaN for a group with a
    non-finite input), equal to :func:`dfx.isa.golden.lutgemm.group_sums`."""
    b_n = x16.shape[0]
    ng, g, q, n = p.ng, p.g, p.q, p.n
    xg = x16.reshape(b_n, ng, g)
    bad = ~np.isfinite(xg).all(axis=2)  # [B, ng]
    xf = xg.astype(np.float64)
    if bad.any():
        xf[bad] = 0.0
    xs = xf.sum(axis=2)  # exact: multiples of 2^-24 below 2^53 · 2^-24
    xi = (xf * 2.0 ** 24).astype(np.int64)  # exact integers, |xi| < 2^40
    mag = np.abs(xi)
    orall = int(np.bitwise_or.reduce(mag, axis=None)) if mag.size else 0
    if orall == 0:
        out = np.zeros((b_n, ng, q, n), dtype=np.float64)
    else:
        t = (orall & -orall).bit_length() - 1  # trailing zero bits shared by every input
        mag >>= t
        bits = int(mag.max()).bit_length()
        w = p.w
        n_limbs = -(-bits // w)
        dt = np.float64 if p.c else np.float32
        sign = np.where(xi < 0, dt(-1.0), dt(1.0))
        mask = (1 << w) - 1
        limbs = np.empty((ng, n_limbs, b_n, g), dtype=dt)
        for i in range(n_limbs):
            limb = ((mag >> (w * i)) & mask).astype(dt) * sign  # [B, ng, g]
            limbs[:, i] = limb.transpose(1, 0, 2)
        r = np.matmul(limbs.reshape(ng, n_limbs * b_n, g), p.s)  # exact integers
        if p.c:  # base-2^c digits, plane 0 lowest: [ng, L·B, N] -> [ng, L·B, q, N]
            v = r
            digits = np.empty(r.shape[:2] + (q, n), dtype=np.float64)
            scale, inv = float(2 ** p.c), 2.0 ** -p.c
            for b in range(q - 1):
                hi = np.rint(v * inv)
                digits[:, :, b] = v - hi * scale
                v = hi
            digits[:, :, q - 1] = v
            r = digits
        r = r.reshape(ng, n_limbs, b_n, q, n)
        acc = r[:, 0].astype(np.float64)
        for i in range(1, n_limbs):
            acc += r[:, i].astype(np.float64) * float(1 << (w * i))
        out = (acc * 2.0 ** (t - 24)).transpose(1, 0, 2, 3)  # [B, ng, q, N]
    if bad.any():
        out = np.array(out)
        out[bad] = np.nan
        xs[bad] = np.nan
    return out, xs


def _lowbit_shift(a: np.ndarray) -> int:
    """Trailing zero bits shared by every element of ``int64`` array ``a`` (0 if all zero)."""
    o = int(np.bitwise_or.reduce(np.abs(a), axis=None)) if a.size else 0
    return (o & -o).bit_length() - 1 if o else 0


def _round32_fixed(v: np.ndarray, exp: int) -> np.ndarray:
    """RNE to ``float32`` of the exact ``v · 2^exp`` (``int64`` v, |v| < 2^63, a result in
    FP32's normal range or 0): round to odd at 53 bits (exact in float64), then to FP32."""
    a = np.abs(v)
    sh = np.maximum(np.frexp(a.astype(np.float64))[1] - 53, 0)  # >= the bits beyond 53
    top = a >> sh
    top |= ((a & ((np.int64(1) << sh) - 1)) != 0).astype(np.int64)  # sticky -> odd
    f = np.ldexp(np.where(v < 0, -top, top).astype(np.float64), sh + exp)
    return f.astype(np.float32)


def scale_sum(p: PreparedLut, ps: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """``float32[B, N]``, bit-identical to ``golden.scale_sum(ps, xs, alpha, z)`` (the exact
    ``sum_G (sum_b alpha·P + z·X)`` rounded once). Call with FP warnings silenced.

    Every term is an integer in units of 2^-48. With the trailing zero bits all sums and all
    scales share taken out, the exact sum usually fits ``int64``: then it is summed exactly
    and rounded once. Otherwise the float64 sum is used where its rigorous error bound cannot
    change the FP32 rounding, and the golden accumulator for the other elements."""
    b_n, ng, q, n = ps.shape
    bad = np.isnan(xs).any(axis=1)  # [B]
    pf = np.empty((b_n, ng, q + 1, n), dtype=np.float64)
    pf[:, :, :q] = ps
    pf[:, :, q] = xs[:, :, None]
    if bad.any():
        pf[bad] = 0.0
    pi = np.ldexp(pf, 24).astype(np.int64)  # exact: multiples of 2^-24 below 2^53 units
    # rows with a non-finite scale give NaN (golden scale_sum); their terms count as 0 here
    bad_rows = ~(np.isfinite(p.alpha).all(axis=(0, 1)) & np.isfinite(p.z).all(axis=0))
    ai = np.empty((ng, q + 1, n), dtype=np.int64)
    ai[:, :q] = np.ldexp(np.where(np.isfinite(p.alpha), p.alpha, 0.0), 24)  # FP16: exact
    ai[:, q] = np.ldexp(np.where(np.isfinite(p.z), p.z, 0.0), 24)
    tp, ta = _lowbit_shift(pi), _lowbit_shift(ai)
    pi >>= tp
    ai >>= ta
    terms = (q + 1) * ng
    bp = int(np.abs(pi).max()).bit_length() if pi.size else 0
    ba = int(np.abs(ai).max()).bit_length() if ai.size else 0
    if bp + ba + (terms - 1).bit_length() <= 62:
        acc = np.einsum("bgjn,gjn->bn", pi, ai)  # exact int64
        out = _round32_fixed(acc, tp + ta - 48)
    else:
        out = _scale_sum_f64(p, pf, ps, xs, bad)
    out[bad] = np.nan
    out[:, bad_rows] = np.nan
    return np.asarray(canon32(out))


def _scale_sum_f64(p: PreparedLut, pf: np.ndarray, ps: np.ndarray, xs: np.ndarray,
                   bad: np.ndarray) -> np.ndarray:
    """:func:`scale_sum` for sums too wide for ``int64``: float64 with an error bound E,
    rounded where ``[S - E, S + E]`` rounds to one FP32 number (RNE is monotonic), the golden
    exact accumulator elsewhere (and for zeros)."""
    b_n, ng, q1, n = pf.shape
    terms = pf * np.concatenate([p.alpha, p.z[:, None]], axis=1)[None].astype(np.float64)
    flat = terms.reshape(b_n, -1, n)
    s = flat.sum(axis=1)
    # |s - exact| <= gamma_(T+1)·sum|terms| (product and summation roundings); the factor 2
    # (2^-52 instead of 2^-53) also covers the roundings of sum|terms| and of s -/+ e.
    e = np.abs(flat).sum(axis=1) * ((flat.shape[1] + 2) * 2.0 ** -52)
    lo = (s - e).astype(np.float32)
    out = (s + e).astype(np.float32)
    ok = (lo.view(np.uint32) == out.view(np.uint32)) & (s != 0.0)
    ok[bad] = True
    cols = np.nonzero(~ok.all(axis=0))[0]
    if cols.size:
        out[:, cols] = glut.scale_sum(ps[..., cols], xs, p.alpha[..., cols], p.z[:, cols])
    return out


def lut_acc(p: PreparedLut, x16: np.ndarray) -> np.ndarray:
    """The FP32 accumulators ``float32[B, N]`` (steps 1-2 of docs/lutgemm.md), bit-identical
    to :func:`dfx.isa.golden.lutgemm.lut_acc`: the exact group sums, then :func:`scale_sum`.
    Call with FP warnings silenced."""
    ps, xs = group_sums(p, x16)
    return scale_sum(p, ps, xs)


def lutmv(p: PreparedLut, x16: np.ndarray, *, bias: np.ndarray | None = None,
          gelu_table: object = None) -> np.ndarray:
    """Bit-identical to ``golden.lutmv(w, x16, bias=, gelu_table=)`` for
    ``x16: float16[B, K]``: returns ``float16[B, N]``."""
    with np.errstate(all="ignore"):
        acc = lut_acc(p, x16)
        return epilogue16(acc, bias=bias, gelu_table=gelu_table)
