"""Instruction-level golden operations of the DFX core (docs/numerics.md).

* :func:`matvec`: the MPU (MFU + SFU_M, DFX §2.4; instructions Conv1D, MaskedMM, MM, §3);
* :func:`accum`: the SFU_V accumulation tree (§2.5);
* :func:`reduce_max16`, :func:`argmax16`: the SFU_M reduce-max tree (§2.4) and token argmax;
* :func:`tile_matrix`, :func:`untile`: the weight-tile layout (§2.3).

Element-wise VFU ops and scalar SFU_V ops are in :mod:`.fp`, table functions in :mod:`.tables`.
LUT-GEMM (quantised weights) is in :mod:`.lutgemm` and shares :func:`epilogue16`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from .fixed import add_shifted, fixed16, new_limbs, round_fixed32
from .fp import (
    NEG_MAX16,
    _as16,
    _as32,
    _ret,
    block_dot32_products,
    canon16,
    canon32,
    dot_exp16,
    quiet,
    round16,
)
from .tables import gelu16

__all__ = [
    "tile_matrix",
    "untile",
    "PreparedTiles",
    "prepare_tiles",
    "matvec",
    "epilogue16",
    "accum",
    "reduce_max16",
    "argmax16",
    "order_key16",
]

_CHUNK_ELEMS = 1 << 23  # products per block (32 MiB of float32)


def _pow2(name: str, v: int) -> None:
    if v < 1 or v & (v - 1):
        raise ValueError(f"{name}: must be a power of two, got {v}")


# ---------------------------------------------------------------------------- tile layout


def tile_matrix(w16: npt.ArrayLike, d: int, l: int) -> np.ndarray:  # noqa: E741
    """Tile an FP16 weight matrix ``W[K, N]`` (HF Conv1D orientation ``[in, out]``).

    Returns ``float16[NT, KT, l, d]``, ``KT = ceil(K/d)``, ``NT = ceil(N/l)``, zero padded:
    ``tiles[nt, kt, j, i] = W[kt*d + i, nt*l + j]``. Tile ``(nt, kt)`` holds lanes j = 0..l-1
    (output ``n = nt*l + j``), each lane's d weights contiguous (lane-major). In C order, tiles
    follow each other nt-major then kt (flat tile index ``nt*KT + kt``), d*l values per tile.
    """
    w = _as16(w16)
    if w.ndim != 2:
        raise ValueError(f"w16: expected a 2-D [K, N] matrix, got shape {w.shape}")
    _pow2("d", d)
    if l < 1:
        raise ValueError(f"l: must be >= 1, got {l}")
    k, n = w.shape
    kt, nt = -(-k // d), -(-n // l)
    pad = np.zeros((kt * d, nt * l), dtype=np.float16)
    pad[:k, :n] = w
    # [KT, d, NT, l] -> [NT, KT, l, d]
    return np.ascontiguousarray(pad.reshape(kt, d, nt, l).transpose(2, 0, 3, 1))


def untile(tiles: npt.ArrayLike, k: int | None = None, n: int | None = None) -> np.ndarray:
    """Inverse of :func:`tile_matrix`: ``float16[NT, KT, l, d] -> W[k, n]`` (padding cropped)."""
    t = _as16(tiles)
    if t.ndim != 4:
        raise ValueError(f"tiles: expected [NT, KT, l, d], got shape {t.shape}")
    nt, kt, l, d = t.shape  # noqa: E741
    w = t.transpose(1, 3, 0, 2).reshape(kt * d, nt * l)
    return np.ascontiguousarray(w[: kt * d if k is None else k, : nt * l if n is None else n])


@dataclass(frozen=True, eq=False)
class PreparedTiles:
    """Weight tiles pre-widened to FP32 in the layout :func:`matvec` computes on.

    ``w32[kt, i, nt*l + j] = f32(tiles[nt, kt, j, i])``, C-contiguous ``float32[KT, d, NT*l]``.
    Widening FP16 -> FP32 is exact, so this is a pure speed cache (about 10x faster matvec,
    twice the memory of the FP16 tiles); results are bit-identical to passing the tiles.
    """

    w32: np.ndarray
    e16: np.ndarray  # dot_exp16 of the same weights, int8[KT, d, NT*l]
    nt: int
    kt: int
    l: int  # noqa: E741
    d: int


def prepare_tiles(w_tiles: npt.ArrayLike) -> PreparedTiles:
    """Widen ``float16[NT, KT, l, d]`` tiles once for repeated :func:`matvec` calls."""
    w = _as16(w_tiles)
    if w.ndim != 4:
        raise ValueError(f"w_tiles: expected [NT, KT, l, d], got shape {w.shape}")
    nt, kt, l, d = w.shape  # noqa: E741
    w16 = np.ascontiguousarray(w.transpose(1, 3, 0, 2).reshape(kt, d, nt * l))
    w32, e16 = w16.astype(np.float32), dot_exp16(w16)
    w32.setflags(write=False)
    e16.setflags(write=False)
    return PreparedTiles(w32=w32, e16=e16, nt=nt, kt=kt, l=l, d=d)


# ------------------------------------------------------------------------ reduce-max/argmax


def order_key16(x: npt.ArrayLike) -> np.ndarray:
    """Monotone integer key of FP16 values (total order, -0 < +0; NaN keys are meaningless)."""
    b = _as16(x).view(np.uint16).astype(np.int32)
    return np.where(b & 0x8000, 0x7FFF - (b & 0x7FFF), b | 0x8000)


def _key_to_f16(k: np.ndarray) -> np.ndarray:
    b = np.where(k & 0x8000, k & 0x7FFF, 0x8000 | (0x7FFF - k))
    return b.astype(np.uint16).view(np.float16)


def _crop(x: np.ndarray, n: int | None) -> np.ndarray:
    if n is None:
        return x
    if not 1 <= n <= x.shape[-1]:
        raise ValueError(f"n: must be in 1..{x.shape[-1]}, got {n}")
    return x[..., :n]


@quiet
def reduce_max16(x: npt.ArrayLike, n: int | None = None) -> Any:
    """Max of the first ``n`` FP16 elements along the last axis, as FP32 (exact widening).

    Comparator tree of SFU_M (DFX §2.4): order-independent, ``max(-0, +0) = +0``, any NaN gives
    the canonical NaN.
    """
    a = _crop(_as16(x), n)
    if a.shape[-1] == 0:
        raise ValueError("reduce_max16: empty input")
    m = _key_to_f16(order_key16(a).max(axis=-1)).astype(np.float32)
    m = np.where(np.isnan(a).any(axis=-1), np.float32(np.nan), m)
    return canon32(m)


def argmax16(x: npt.ArrayLike, n: int | None = None) -> Any:
    """Index of the first maximum of the first ``n`` FP16 elements (last axis); -0 < +0.
    If any element is NaN: the index of the first NaN. Returns int (1-D) or int64 array."""
    a = _crop(_as16(x), n)
    if a.shape[-1] == 0:
        raise ValueError("argmax16: empty input")
    nan = np.isnan(a)
    idx = np.where(nan.any(axis=-1), nan.argmax(axis=-1), order_key16(a).argmax(axis=-1))
    return int(idx) if idx.ndim == 0 else idx.astype(np.int64)


# ---------------------------------------------------------------------------- accumulation


_SUM_CHUNK = 1 << 22  # elements per int64 partial sum (2^22 · 2^40 < 2^63)
_SQ_CHUNK = 1 << 20  # elements per int64 partial sum of square pieces (2^20 · 2^41 < 2^63)


@quiet
def accum(x16: npt.ArrayLike, n: int, d: int, mode: Literal["sum", "sumsq"] = "sum") -> Any:
    """SFU_V accumulation (DFX §2.5) of the first ``n`` elements of ``x16[..., L]`` (L >= n).

    The **exact** sum of the elements (mode "sum") or of their exact squares ("sumsq"),
    rounded **once** to FP32 (RNE), one result per leading index; ``+0`` for n = 0 or an exact
    zero. Every FP16 value is an integer in units of 2^-24 (its square in units of 2^-48), so
    the hardware sums them in a wide fixed-point accumulator, one d-wide vector per cycle
    (docs/numerics.md); no order of additions can change the result. Special values: a NaN,
    or both +inf and -inf in a sum, give the canonical NaN; otherwise an infinity gives
    itself (+inf for sumsq). ``d`` is the vector width (a power of two) the elements arrive in.
    """
    a = _as16(x16)
    _pow2("d", d)
    if not 0 <= n <= a.shape[-1]:
        raise ValueError(f"n: must be in 0..{a.shape[-1]}, got {n}")
    if mode not in ("sum", "sumsq"):
        raise ValueError(f"mode: expected 'sum' or 'sumsq', got {mode!r}")
    lead = a.shape[:-1]
    if n == 0:
        return _ret(np.zeros(lead, dtype=np.float32))
    v = a[..., :n]
    nan = np.isnan(v).any(axis=-1)
    pinf = (v == np.inf).any(axis=-1)
    ninf = (v == -np.inf).any(axis=-1)
    xi = fixed16(np.where(np.isfinite(v), v, np.float16(0)))  # |xi| < 2^40
    limbs = new_limbs(lead)
    if mode == "sum":
        for c0 in range(0, n, _SUM_CHUNK):
            add_shifted(limbs, xi[..., c0:c0 + _SUM_CHUNK].sum(axis=-1), 0)
        r = round_fixed32(limbs, -24)
        r = np.where(pinf, np.float32(np.inf), np.where(ninf, np.float32(-np.inf), r))
        r = np.where(nan | (pinf & ninf), np.float32(np.nan), r)
    else:
        h, lo = xi >> 20, xi & ((1 << 20) - 1)  # xi = h·2^20 + lo: xi² = h²·2^40 + 2h·lo·2^20 + lo²
        for c0 in range(0, n, _SQ_CHUNK):
            s = slice(c0, c0 + _SQ_CHUNK)
            hh, ll = h[..., s], lo[..., s]
            add_shifted(limbs, (hh * hh).sum(axis=-1), 40)
            add_shifted(limbs, (2 * hh * ll).sum(axis=-1), 20)
            add_shifted(limbs, (ll * ll).sum(axis=-1), 0)
        r = round_fixed32(limbs, -48)
        r = np.where(pinf | ninf, np.float32(np.inf), r)
        r = np.where(nan, np.float32(np.nan), r)
    return canon32(r)


# ---------------------------------------------------------------------------- matrix-vector


@quiet
def epilogue16(
    acc: np.ndarray,
    *,
    bias: npt.ArrayLike | None = None,
    scale: float | np.float32 | None = None,
    mask_limit: int | None = None,
    gelu_table: Any = None,
) -> np.ndarray:
    """SFU_M epilogue (DFX §2.4) of FP32 accumulators ``acc[B, N]`` -> ``float16[B, N]``:
    steps 2-6 of :func:`matvec` (bias, scale, round16, causal mask, GELU), NaN canonical.
    ``lutmv`` (:mod:`.lutgemm`) shares it."""
    b_n, n_out = acc.shape
    if bias is not None:
        bv = _as16(bias)
        if bv.ndim != 1 or bv.shape[0] < n_out:
            raise ValueError(f"bias: expected float16[>= {n_out}], got shape {bv.shape}")
        acc = acc + bv[:n_out].astype(np.float32)
    if scale is not None:
        acc = acc * _as32(scale)
    h = np.asarray(round16(acc))
    if mask_limit is not None:
        lim = int(mask_limit) + np.arange(b_n)[:, None]
        h = np.where(np.arange(n_out)[None, :] > lim, NEG_MAX16, h)
    if gelu_table is not None and gelu_table is not False:
        h = np.asarray(gelu16(h, None if gelu_table is True else gelu_table))
    return np.asarray(canon16(h))


@quiet
def matvec(
    w_tiles: npt.ArrayLike | PreparedTiles,
    x: npt.ArrayLike,
    *,
    n_out: int | None = None,
    bias: npt.ArrayLike | None = None,
    scale: float | np.float32 | None = None,
    mask_limit: int | None = None,
    gelu_table: Any = None,
) -> tuple[Any, Any]:
    """MPU matrix-vector product (DFX §2.4: MFU MAC trees + SFU_M), batched over input rows.

    ``w_tiles``: ``float16[NT, KT, l, d]`` (:func:`tile_matrix`) or :class:`PreparedTiles`;
    ``x``: ``float16[B, K]`` or ``[K]`` with ``K <= KT*d`` (zero padded). For output column
    ``n`` (``0 <= n < N``, ``N = n_out or NT*l``):

    1. ``acc = dot(tile 0)``; ``acc = round32(acc + dot(tile kt))``, kt = 1..KT-1, where
       ``dot`` is the MFU lane's :func:`~.fp.block_dot32` of ``x[kt·d : kt·d + d]`` and the
       weight column (exact products, aligned, summed exactly, rounded once to FP32);
    2. ``bias``: ``acc = round32(acc + f32(bias[n]))`` (FP16 bias, length >= N);
    3. ``scale``: ``acc = round32(acc * scale)`` (FP32 scalar);
    4. ``h = round16(acc)``;
    5. ``mask_limit``: ``h = -65504`` where ``n > mask_limit + b`` (row b of the batch);
    6. ``gelu_table`` (a PwlTable / spec; ``True`` = default table): ``h = gelu16(h)``.

    Returns ``(h float16[B, N], rowmax float32[B])`` where rowmax is :func:`reduce_max16` of
    each output row (``[N]`` and an FP32 scalar for 1-D ``x``).
    """
    if isinstance(w_tiles, PreparedTiles):
        pw: PreparedTiles | None = w_tiles
        w = None
        nt, kt_n, l, d = pw.nt, pw.kt, pw.l, pw.d  # noqa: E741
    else:
        pw = None
        w = _as16(w_tiles)
        if w.ndim != 4:
            raise ValueError(f"w_tiles: expected [NT, KT, l, d], got shape {w.shape}")
        nt, kt_n, l, d = w.shape  # noqa: E741
    _pow2("d (w_tiles.shape[3])", d)
    xa = _as16(x)
    one = xa.ndim == 1
    if one:
        xa = xa[None, :]
    if xa.ndim != 2:
        raise ValueError(f"x: expected [B, K] or [K], got shape {xa.shape}")
    b_n, k = xa.shape
    if k > kt_n * d:
        raise ValueError(f"x: K = {k} exceeds KT*d = {kt_n * d}")
    n_full = nt * l
    if n_out is None:
        n_out = n_full
    if not 1 <= n_out <= n_full:
        raise ValueError(f"n_out: must be in 1..{n_full}, got {n_out}")

    x16 = np.zeros((b_n, kt_n * d), dtype=np.float16)
    x16[:, :k] = xa
    x32, xe = x16.astype(np.float32), dot_exp16(x16)
    acc = np.empty((b_n, n_full), dtype=np.float32)
    bc = max(1, _CHUNK_ELEMS // (d * n_full))  # batch rows per block
    for kt in range(kt_n):
        # weights of tile column kt as [d, N] (exact widening), reduction axis outer
        if pw is not None:
            wt, we = pw.w32[kt], pw.e16[kt]
        else:
            w16 = w[:, kt].transpose(2, 0, 1).reshape(d, n_full)
            wt, we = w16.astype(np.float32), dot_exp16(w16)
        for b0 in range(0, b_n, bc):
            cols = slice(kt * d, (kt + 1) * d)
            xs, xes = x32[b0 : b0 + bc, cols].T, xe[b0 : b0 + bc, cols].T  # [d, bc]
            p = xs[:, :, None] * wt[:, None, :]  # [d, bc, N] float32, exact products
            t = block_dot32_products(p, xes[:, :, None] + we[:, None, :], axis=0, overwrite=True)
            if kt == 0:
                acc[b0 : b0 + bc] = t
            else:
                acc[b0 : b0 + bc] += t
    h = epilogue16(acc[:, :n_out], bias=bias, scale=scale, mask_limit=mask_limit,
                   gelu_table=gelu_table)
    rmax = np.asarray(reduce_max16(h))
    if one:
        return h[0], rmax[0]
    return h, rmax
