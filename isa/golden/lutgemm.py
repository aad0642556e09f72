"""Golden LUT-GEMM: the packed BCQ weight stream and the bit-exact arithmetic of ``lutmv``
(docs/lutgemm.md; Park et al., ICLR 2024, shared/papers/lutgemm.md §1-§3).

Weights ``W[K, N]`` (HF Conv1D orientation ``[in, out]``) in binary-coding quantization with q
bit-planes and groups of g consecutive inputs::

    W[k, m] = sum_b alpha[G, b, m] * s[b, k, m] + z[G, m],   G = k // g,  s = +1 / -1

**Arithmetic** (what the LUT-GEMM unit computes, independent of its table width mu):

1. ``P[G, b, m] = sum_{k in G} s[b, k, m] * x[k]`` and ``X[G] = sum_{k in G} x[k]`` *exactly*.
   Every FP16 value is an integer multiple of 2^-24 below 2^16, so the table entries and their
   sums are integers (units of 2^-24) that the hardware holds in wide fixed point; the order of
   the look-ups and additions cannot change them. (Here: float64, exact because
   g * 2^40 <= 2^53 for g <= 8192.) A group whose inputs hold an inf or NaN gives NaN.
2. Per output row m, the exact sum ``sum_G (sum_b alpha[G,b,m]·P[G,b,m] + z[G,m]·X[G])``
   (products of integers in units of 2^-48: a wide fixed-point accumulator in hardware, about
   113 bits), **rounded once** to FP32 (RNE). This is the FP32 number nearest to the exact
   product of x with the dequantized weights; no order of operations can change it.
3. The MPU's epilogue (:func:`dfx.isa.golden.ops.epilogue16`): bias, FP16 rounding, GELU.

**Packed stream** (``lutmv`` operand w; S = core.lutgemm.slice inputs per lane word): for each
group G, one section, 32-byte aligned (zero padded)::

    signs:  for s in 0..gs-1, for b in 0..q-1, for m in 0..n-1:
              S/8 bytes; bit j of byte i <-> input k = (G*gs + s)*S + 8*i + j; 1 = +1, 0 = -1
    scales: for m in 0..n-1: alpha[G, 0..q-1, m], z[G, m]   (FP16, little endian)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .fixed import add_shifted, fixed16, new_limbs, round_fixed32
from .fp import _as16, canon32, quiet
from .ops import epilogue16

__all__ = [
    "SECTION_ALIGN",
    "MAX_GROUP",
    "Bcq",
    "section_bytes",
    "stream_bytes",
    "pack",
    "unpack",
    "dequantize",
    "group_sums",
    "exact_dot32",
    "scale_sum",
    "lut_acc",
    "lutmv",
]

SECTION_ALIGN = 32  # bytes: one 256-bit HBM word
MAX_GROUP = 8192  # inputs per group for which float64 group sums are exact


@dataclass(frozen=True, eq=False)
class Bcq:
    """A BCQ matrix: ``signs bool[q, K, N]`` (True = +1), ``alpha [ng, q, N]``, ``z [ng, N]``
    (any float dtype; packing stores FP16), groups of ``g`` inputs (``K = ng * g``)."""

    signs: np.ndarray
    alpha: np.ndarray
    z: np.ndarray
    g: int

    def __post_init__(self) -> None:
        if self.signs.ndim != 3 or self.signs.dtype != np.bool_:
            raise ValueError(f"signs: expected bool[q, K, N], got {self.signs.dtype}"
                             f"{list(self.signs.shape)}")
        q, k, n = self.signs.shape
        if self.g < 1 or k % self.g:
            raise ValueError(f"g = {self.g} does not divide K = {k}")
        ng = k // self.g
        if self.alpha.shape != (ng, q, n):
            raise ValueError(f"alpha: expected shape {(ng, q, n)}, got {self.alpha.shape}")
        if self.z.shape != (ng, n):
            raise ValueError(f"z: expected shape {(ng, n)}, got {self.z.shape}")

    @property
    def q(self) -> int:
        return self.signs.shape[0]

    @property
    def k(self) -> int:
        return self.signs.shape[1]

    @property
    def n(self) -> int:
        return self.signs.shape[2]

    @property
    def ng(self) -> int:
        return self.k // self.g

    def to_fp16(self) -> Bcq:
        """The same matrix with alpha and z rounded to FP16 (what the stream stores)."""
        with np.errstate(over="ignore"):
            a16, z16 = self.alpha.astype(np.float16), self.z.astype(np.float16)
        for name, v in (("alpha", a16), ("z", z16)):
            if not np.isfinite(v).all():
                raise ValueError(f"{name}: a scale overflows FP16 (|value| > 65504)")
        return Bcq(self.signs, a16, z16, self.g)


def _check_geometry(n: int, gs: int, q: int, slice_: int) -> None:
    if slice_ < 8 or slice_ % 8:
        raise ValueError(f"slice: must be a positive multiple of 8, got {slice_}")
    if not 1 <= q <= 7:
        raise ValueError(f"q: must be in 1..7, got {q}")
    if gs < 1 or n < 1:
        raise ValueError(f"gs and n must be >= 1, got gs={gs}, n={n}")
    if gs * slice_ > MAX_GROUP:
        raise ValueError(f"group of {gs * slice_} inputs exceeds {MAX_GROUP}")


def section_bytes(n: int, gs: int, q: int, slice_: int) -> int:
    """Bytes of one group section (signs + scales, padded to :data:`SECTION_ALIGN`)."""
    _check_geometry(n, gs, q, slice_)
    raw = gs * q * n * slice_ // 8 + n * (q + 1) * 2
    return -(-raw // SECTION_ALIGN) * SECTION_ALIGN


def stream_bytes(n: int, ng: int, gs: int, q: int, slice_: int) -> int:
    """Bytes of the whole packed stream of one ``lutmv``."""
    return ng * section_bytes(n, gs, q, slice_)


def pack(w: Bcq, slice_: int) -> np.ndarray:
    """The packed stream (``uint8``) of ``w`` for lane words of ``slice_`` inputs."""
    if w.g % slice_:
        raise ValueError(f"g = {w.g} is not a multiple of the lane word ({slice_} inputs)")
    w16 = w if w.alpha.dtype == np.float16 and w.z.dtype == np.float16 else w.to_fp16()
    q, k, n = w.signs.shape
    ng, gs = w.ng, w.g // slice_
    sec = section_bytes(n, gs, q, slice_)
    out = np.zeros((ng, sec), dtype=np.uint8)
    # signs [q, K, N] -> [ng, gs, q, N, S] -> packbits along S (bit j of byte = input 8i+j)
    s = w.signs.reshape(q, ng, gs, slice_, n).transpose(1, 2, 0, 4, 3)
    bits = np.packbits(s, axis=-1, bitorder="little").reshape(ng, -1)
    nb = bits.shape[1]
    out[:, :nb] = bits
    sc = np.concatenate([w16.alpha, w16.z[:, None, :]], axis=1)  # [ng, q+1, N]
    sc = np.ascontiguousarray(sc.transpose(0, 2, 1)).astype("<f2")  # [ng, N, q+1]
    out[:, nb:nb + n * (q + 1) * 2] = sc.reshape(ng, -1).view(np.uint8)
    return out.reshape(-1)


def unpack(stream: npt.ArrayLike, n: int, ng: int, gs: int, q: int, slice_: int) -> Bcq:
    """Inverse of :func:`pack` (FP16 alpha and z); padding bytes are ignored."""
    sec = section_bytes(n, gs, q, slice_)
    buf = np.asarray(stream, dtype=np.uint8).reshape(-1)
    if buf.size < ng * sec:
        raise ValueError(f"stream: {buf.size} bytes, expected {ng * sec}")
    b = buf[: ng * sec].reshape(ng, sec)
    nb = gs * q * n * slice_ // 8
    bits = np.unpackbits(b[:, :nb].reshape(ng, gs, q, n, slice_ // 8), axis=-1,
                         bitorder="little").astype(bool)  # [ng, gs, q, n, S]
    signs = bits.transpose(2, 0, 1, 4, 3).reshape(q, ng * gs * slice_, n)
    sc = b[:, nb:nb + n * (q + 1) * 2].copy().view("<f2").reshape(ng, n, q + 1)
    sc = sc.astype(np.float16).transpose(0, 2, 1)
    return Bcq(np.ascontiguousarray(signs), np.ascontiguousarray(sc[:, :q]),
               np.ascontiguousarray(sc[:, q]), gs * slice_)


def dequantize(w: Bcq) -> np.ndarray:
    """``float64[K, N]``: ``sum_b alpha * s + z`` per group (the dense reference)."""
    q, k, n = w.signs.shape
    s = np.where(w.signs, 1.0, -1.0).reshape(q, w.ng, w.g, n)
    a = w.alpha.astype(np.float64).transpose(1, 0, 2)[:, :, None, :]  # [q, ng, 1, N]
    out = (s * a).sum(axis=0) + w.z.astype(np.float64)[:, None, :]
    return out.reshape(k, n)


@quiet
def group_sums(w: Bcq, x16: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Step 1, exact: ``P float64[B, ng, q, N]`` and ``X float64[B, ng]`` for ``x16[B, K]``
    (NaN for a group whose inputs are not all finite)."""
    x = _as16(x16)
    if x.ndim != 2 or x.shape[1] != w.k:
        raise ValueError(f"x: expected float16[B, {w.k}], got shape {x.shape}")
    b_n = x.shape[0]
    xg = x.astype(np.float64).reshape(b_n, w.ng, w.g)
    bad = ~np.isfinite(xg).all(axis=2)  # [B, ng]
    xg = np.where(bad[:, :, None], 0.0, xg)
    s = np.where(w.signs, 1.0, -1.0).reshape(w.q, w.ng, w.g, w.n)
    p = np.einsum("bgk,qgkn->bgqn", xg, s)
    xs = xg.sum(axis=2)
    p[bad] = np.nan
    xs[bad] = np.nan
    return p, xs


_CHUNK_GROUPS = 1 << 12  # groups summed in int64 at once: 2^12·(q+1)·2^47 < 2^63


def exact_dot32(p_fix: np.ndarray, a_fix: np.ndarray) -> np.ndarray:
    """``float32[B, N]``: RNE of the exact ``sum_{G,j} p_fix[B,G,j,N] · a_fix[G,j,N] · 2^-48``
    for ``int64`` inputs with ``|p_fix| < 2^53``, ``|a_fix| < 2^41`` (units of 2^-24)."""
    b_n, ng, _, n = p_fix.shape
    p0 = p_fix & ((1 << 26) - 1)
    p1 = p_fix >> 26  # p = p1·2^26 + p0, |p1| < 2^27
    a0 = a_fix & ((1 << 20) - 1)
    a1 = a_fix >> 20  # a = a1·2^20 + a0, |a1| < 2^21
    limbs = new_limbs((b_n, n))
    for g0 in range(0, ng, _CHUNK_GROUPS):
        sl = slice(g0, g0 + _CHUNK_GROUPS)
        for pp, sp in ((p0[:, sl], 0), (p1[:, sl], 26)):
            for aa, sa in ((a0[sl], 0), (a1[sl], 20)):
                add_shifted(limbs, np.einsum("bgjn,gjn->bn", pp, aa), sp + sa)
    return round_fixed32(limbs, -48)


@quiet
def scale_sum(p: np.ndarray, xs: np.ndarray, alpha: npt.ArrayLike, z: npt.ArrayLike) -> Any:
    """Step 2: ``float32[B, N]`` = RNE of the exact ``sum_G (sum_b alpha·P + z·X)`` from exact
    group sums ``p float64[B, ng, q, N]`` and ``xs float64[B, ng]`` (:func:`group_sums`; NaN
    marks a non-finite group) and FP16-valued ``alpha [ng, q, N]``, ``z [ng, N]``."""
    b_n, ng, q, n = p.shape
    bad = np.isnan(xs).any(axis=1)
    alpha = np.asarray(alpha, dtype=np.float64)
    z = np.asarray(z, dtype=np.float64)
    # a row with a non-finite scale (alpha or z inf/NaN in any group) gives NaN, like a
    # non-finite input: the exact sum is not a number (docs/lutgemm.md)
    bad_rows = ~(np.isfinite(alpha).all(axis=(0, 1)) & np.isfinite(z).all(axis=0))  # [N]
    pe = np.empty((b_n, ng, q + 1, n), dtype=np.int64)
    pe[:, :, :q] = fixed16(np.where(np.isnan(p), 0.0, p))
    pe[:, :, q] = fixed16(np.where(np.isnan(xs), 0.0, xs))[:, :, None]
    ae = np.empty((ng, q + 1, n), dtype=np.int64)
    ae[:, :q] = fixed16(np.where(np.isfinite(alpha), alpha, 0.0))
    ae[:, q] = fixed16(np.where(np.isfinite(z), z, 0.0))
    acc = exact_dot32(pe, ae)
    acc[bad] = np.nan
    acc[:, bad_rows] = np.nan
    return canon32(acc)


@quiet
def lut_acc(w: Bcq, x16: npt.ArrayLike) -> Any:
    """Steps 1-2: the FP32 accumulator ``float32[B, N]`` before the epilogue (canonical NaN):
    the exact product of ``x`` with the dequantized weights, rounded once to FP32.

    ``w`` must hold FP16 alpha and z (:meth:`Bcq.to_fp16`); ``x16`` is ``float16[B, K]``."""
    if w.alpha.dtype != np.float16 or w.z.dtype != np.float16:
        raise TypeError("lut_acc: alpha and z must be float16 (use Bcq.to_fp16())")
    p, xs = group_sums(w, x16)
    return scale_sum(p, xs, w.alpha, w.z)


@quiet
def lutmv(w: Bcq, x16: npt.ArrayLike, *, bias: npt.ArrayLike | None = None,
          gelu_table: Any = None) -> Any:
    """The ``lutmv`` instruction: :func:`lut_acc` then the MPU epilogue (bias, round16, GELU).

    ``x16`` is ``float16[B, K]`` or ``[K]``; returns ``float16[B, N]`` (or ``[N]``)."""
    x = _as16(x16)
    one = x.ndim == 1
    acc = lut_acc(w, x[None, :] if one else x)
    h = epilogue16(np.asarray(acc), bias=bias, gelu_table=gelu_table)
    return h[0] if one else h
