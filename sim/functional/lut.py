"""The LUT-GEMM unit of the functional simulator: a fast, bit-identical form of the golden
:func:`dfx.isa.golden.lutgemm.lutmv` (docs/lutgemm.md; Park et al., ICLR 2024, §3), and the
weight preparation that the prepared-weight cache (:class:`~.mpu.TileCache`) keeps.

The golden model computes the exact group sums ``P[G, b, m] = sum_{k in G} s·x[k]`` with a
float64 ``einsum`` over ±1.0 planes (8 bytes per sign). Here the signs are prepared once as
float32 ±1 planes ``[ng, g, q·N]`` and the sums are done by float32 matrix products (BLAS)
that are still **exact**:

* every FP16 input is an integer multiple of 2^-24 below 2^40 in those units, so
  ``x = 2^(t-24) · m`` with integers ``m`` (``t``: the trailing zero bits all inputs of the
  call share, which makes ``m`` short for typical activations);
* ``m`` is cut into signed limbs of ``w = 24 - ceil(log2 g)`` bits: a group's sum of ±limbs is
  below ``g · 2^w <= 2^24``, so every partial sum of a float32 product is an exact integer,
  whatever order BLAS adds in;
* the limb sums are recombined in float64, lowest limb first; every partial result is an
  integer below ``g · 2^40 <= 2^53`` (g <= 8192), hence exact: ``P`` equals the golden's.

The FP32 scaling (step 2) makes the same products and adds them in the golden order
(``np.add.accumulate`` is sequential); the epilogue is the golden
:func:`~dfx.isa.golden.ops.epilogue16`. Zero sums are +0 in both. A group with a non-finite
input gives NaN as in the golden model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dfx.isa.golden import lutgemm as glut
from dfx.isa.golden.fp import canon32
from dfx.isa.golden.ops import epilogue16

__all__ = ["PreparedLut", "prepare", "lut_acc", "lutmv", "limb_bits"]

_INT_BITS = 40  # |x| · 2^24 < 2^40 for every finite FP16 x


def limb_bits(g: int) -> int:
    """Limb width for groups of ``g`` inputs: ``g · 2^w <= 2^24`` (float32-exact sums)."""
    return 24 - max(0, (g - 1).bit_length())


@dataclass(frozen=True, eq=False)
class PreparedLut:
    """One ``lutmv`` weight stream, prepared: ``s float32[ng, g, q·N]`` (±1, plane-major
    within a row block), ``alpha float32[ng, q, N]``, ``z float32[ng, N]`` (read-only)."""

    s: np.ndarray
    alpha: np.ndarray
    z: np.ndarray
    n: int
    ng: int
    g: int
    q: int

    @property
    def k(self) -> int:
        return self.ng * self.g

    @property
    def nbytes(self) -> int:
        return self.s.nbytes + self.alpha.nbytes + self.z.nbytes


def prepare(w: glut.Bcq) -> PreparedLut:
    """Prepare an (FP16-scaled) :class:`~dfx.isa.golden.lutgemm.Bcq` for :func:`lutmv`."""
    q, k, n = w.signs.shape
    ng, g = w.ng, w.g
    s = np.empty((ng, g, q, n), dtype=np.float32)
    planes = w.signs.reshape(q, ng, g, n).transpose(1, 2, 0, 3)
    s[...] = -1.0
    s[planes] = 1.0
    s = s.reshape(ng, g, q * n)
    a = np.ascontiguousarray(w.alpha.astype(np.float32))
    z = np.ascontiguousarray(w.z.astype(np.float32))
    for arr in (s, a, z):
        arr.setflags(write=False)
    return PreparedLut(s, a, z, n, ng, g, q)


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
        w = limb_bits(g)
        n_limbs = -(-bits // w)
        sign = np.where(xi < 0, np.float32(-1.0), np.float32(1.0))
        mask = (1 << w) - 1
        limbs = np.empty((ng, n_limbs, b_n, g), dtype=np.float32)
        for i in range(n_limbs):
            limb = ((mag >> (w * i)) & mask).astype(np.float32) * sign  # [B, ng, g]
            limbs[:, i] = limb.transpose(1, 0, 2)
        r = np.matmul(limbs.reshape(ng, n_limbs * b_n, g), p.s)  # [ng, L·B, q·N], exact
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


def lut_acc(p: PreparedLut, x16: np.ndarray) -> np.ndarray:
    """The FP32 accumulators ``float32[B, N]`` (steps 1-2 of docs/lutgemm.md), bit-identical
    to :func:`dfx.isa.golden.lutgemm.lut_acc`. Call with FP warnings silenced."""
    b_n = x16.shape[0]
    ps, xs = group_sums(p, x16)
    terms = np.empty((b_n, p.ng, p.q + 1, p.n), dtype=np.float32)
    np.multiply(ps.astype(np.float32), p.alpha[None], out=terms[:, :, :p.q])
    np.multiply(xs.astype(np.float32)[:, :, None], p.z[None], out=terms[:, :, p.q])
    # acc = t0; acc = acc + t1; ... in the golden order (G, then b, then the offset)
    acc = np.add.accumulate(terms.reshape(b_n, -1, p.n), axis=1)[:, -1]
    return np.asarray(canon32(acc))


def lutmv(p: PreparedLut, x16: np.ndarray, *, bias: np.ndarray | None = None,
          gelu_table: object = None) -> np.ndarray:
    """Bit-identical to ``golden.lutmv(w, x16, bias=, gelu_table=)`` for
    ``x16: float16[B, K]``: returns ``float16[B, N]``."""
    with np.errstate(all="ignore"):
        acc = lut_acc(p, x16)
        return epilogue16(acc, bias=bias, gelu_table=gelu_table)
