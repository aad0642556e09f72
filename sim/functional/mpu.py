"""The matrix unit of the functional simulator: a fast, bit-identical form of the golden
:func:`dfx.isa.golden.ops.matvec`, and the cache of prepared weight tiles.

Why not call the golden ``matvec`` directly? It is the definition, and tests check this module
against it bit for bit (``tests/sim/functional/test_mpu.py``; an :class:`~.appliance.Appliance`
built with ``golden_matvec=True`` calls it instead). But for GPT-2 token generation it is the
hot path: here all reduction tiles of a matrix are multiplied at once (``[kt, d, N]``), each
tile's d products are reduced by the golden lane dot product
(:func:`~dfx.isa.golden.fp.block_dot32_products`: aligned to the largest exponent, summed
exactly, rounded once) and the per-tile sums are accumulated in kt order
(``acc = round32(acc + t_k)``), as in the golden. The epilogue (bias, scale, FP16 rounding,
mask, GELU, NaN canonicalisation, row maximum) calls the golden functions, so the result is
identical bit for bit.

:class:`TileCache` keeps prepared (FP32-widened, re-laid-out) weights keyed by
``(space, address, kt, nt, kt_stride)``. Matrices in memory that no program or host has written
since the image was loaded (the weights) are cached on first use; others only on the *second*
use of a key without an overlapping write in between (the KV cache is rewritten between uses
and would only waste memory). Any write overlapping an entry's bytes drops it, and the cache is
bounded (least recently used entries go first).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from dfx.isa.golden.fp import NEG_MAX16, block_dot32_products, dot_exp16, round16
from dfx.isa.golden.ops import reduce_max16
from dfx.isa.golden.tables import gelu16

__all__ = ["Prepared", "prepare", "mac", "matvec", "TileCache"]

# Products held at once per call (float32 elements): bounds the scratch memory of large
# matrices (the LM head) and keeps the working set cache-sized.
_BLOCK_ELEMS = 1 << 20


@dataclass(frozen=True, eq=False)
class Prepared:
    """Weight tiles ``float16[NT, KT, l, d]`` widened to ``w: float32[KT, d, NT·l]`` with their
    :func:`~dfx.isa.golden.fp.dot_exp16` exponents ``e: int8[KT, d, NT·l]`` (read-only)."""

    w: np.ndarray
    e: np.ndarray
    nt: int
    kt: int
    l: int  # noqa: E741
    d: int

    @property
    def nbytes(self) -> int:
        return self.w.nbytes + self.e.nbytes


def prepare(tiles: np.ndarray) -> Prepared:
    """Prepare ``float16[NT, KT, l, d]`` tiles (the golden tile layout) for :func:`matvec`."""
    nt, kt, l, d = tiles.shape  # noqa: E741
    t = np.ascontiguousarray(tiles.transpose(1, 3, 0, 2)).reshape(kt, d, nt * l)
    w, e = t.astype(np.float32), dot_exp16(t)
    w.setflags(write=False)
    e.setflags(write=False)
    return Prepared(w=w, e=e, nt=nt, kt=kt, l=l, d=d)


def mac(p: Prepared, x16: np.ndarray) -> np.ndarray:
    """The MAC trees and the kt accumulation: ``float32[B, N]`` for ``x16: float16[B, KT·d]``.

    Call with FP warnings silenced (``np.errstate(all="ignore")``): overflow is data here.
    """
    kt, d = p.kt, p.d
    n = p.w.shape[2]
    b_n = x16.shape[0]
    xr = x16.reshape(b_n, kt, d)
    x32, xe = xr.astype(np.float32), dot_exp16(xr)
    acc = np.empty((b_n, n), dtype=np.float32)
    per_tile = d * n
    kb = max(1, min(kt, _BLOCK_ELEMS // per_tile))  # reduction tiles per block
    nb = n if per_tile <= _BLOCK_ELEMS else max(1, _BLOCK_ELEMS // d)  # columns per block
    scratch = np.empty(kb * d * min(n, nb), dtype=np.float32)
    escratch = np.empty(kb * d * min(n, nb), dtype=np.int8)
    for b in range(b_n):
        for c0 in range(0, n, nb):
            c1 = min(n, c0 + nb)
            cols = c1 - c0
            a = acc[b, c0:c1]
            for k0 in range(0, kt, kb):
                k1 = min(kt, k0 + kb)
                size = (k1 - k0) * d * cols
                pr = scratch[:size].reshape(k1 - k0, d, cols)
                er = escratch[:size].reshape(k1 - k0, d, cols)
                np.multiply(x32[b, k0:k1, :, None], p.w[k0:k1, :, c0:c1], out=pr)
                np.add(xe[b, k0:k1, :, None], p.e[k0:k1, :, c0:c1], out=er)
                t = block_dot32_products(pr, er, axis=1, overwrite=True)  # [k1 - k0, cols]
                start = 0
                if k0 == 0:
                    a[:] = t[0]
                    start = 1
                for k in range(start, k1 - k0):
                    a += t[k]
    return acc


def matvec(p: Prepared, x16: np.ndarray, *, bias: np.ndarray | None = None,
           scale: np.float32 | None = None, mask_limit: int | None = None,
           gelu_table: object = None, row_max: bool = True
           ) -> tuple[np.ndarray, np.ndarray | None]:
    """Bit-identical to ``golden.matvec(tiles, x16, bias=, scale=, mask_limit=, gelu_table=)``
    for ``x16: float16[B, KT·d]``: returns ``(h float16[B, NT·l], rowmax float32[B])``
    (rowmax None unless ``row_max``: only MaskedMM uses it).

    The golden epilogue ends with ``canon16(h)``; here ``h`` is already canonical at that point
    (``round16`` canonicalises, the mask writes a finite value, the GELU table returns the
    canonical NaN), so that pass is skipped."""
    with np.errstate(all="ignore"):
        acc = mac(p, x16)
        if bias is not None:
            acc = acc + bias.astype(np.float32)
        if scale is not None:
            acc = acc * np.float32(scale)
        h = np.asarray(round16(acc))
        if mask_limit is not None:
            b_n, n = h.shape
            lim = int(mask_limit) + np.arange(b_n)[:, None]
            h = np.where(np.arange(n)[None, :] > lim, NEG_MAX16, h)
        if gelu_table is not None:
            h = np.asarray(gelu16(h, gelu_table))
        if not row_max:
            return h, None
        return h, np.atleast_1d(np.asarray(reduce_max16(h)))


# ---------------------------------------------------------------------------------------------
# The prepared-weight cache


@dataclass(eq=False)
class _Entry:
    key: tuple
    lo: int
    hi: int
    pages: range
    prepared: object = None  # Prepared / golden PreparedTiles once filled
    split: np.ndarray | None = None  # bytes per memory channel of one read of the tiles
    nbytes: int = 0


class TileCache:
    """Prepared weights keyed by ``(space, addr, kt, nt, kt_stride)``, at most ``capacity``
    bytes; ``invalidate(space, lo, hi)`` drops every entry overlapping ``[lo, hi)``."""

    def __init__(self, capacity: int, page_bits: int = 20) -> None:
        self.capacity = capacity
        self.page_bits = page_bits
        self._entries: OrderedDict[tuple, _Entry] = OrderedDict()
        self._index: dict[tuple[str, int], set[tuple]] = {}
        self.bytes = 0
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return sum(1 for e in self._entries.values() if e.prepared is not None)

    def get(self, key: tuple) -> _Entry | None:
        e = self._entries.get(key)
        if e is None or e.prepared is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return e

    def offer(self, key: tuple, lo: int, hi: int, prepared: object,
              split: Callable[[], np.ndarray] | None = None, now: bool = False) -> None:
        """Record a use of ``key`` (bytes ``[lo, hi)`` of its space): the first use is only
        remembered (unless ``now``: memory no program has written, i.e. weights), a second
        one (no overlapping write in between) stores ``prepared``."""
        e = self._entries.get(key)
        if e is None:
            pages = range(lo >> self.page_bits, ((hi - 1) >> self.page_bits) + 1)
            e = self._entries[key] = _Entry(key, lo, hi, pages)
            for p in pages:
                self._index.setdefault((key[0], p), set()).add(key)
            if not now:
                self._evict()
                return
        self._entries.move_to_end(key)
        if e.prepared is None:
            nbytes = int(getattr(prepared, "nbytes", 0)
                         or prepared.w32.nbytes + prepared.e16.nbytes)
            if nbytes > self.capacity:
                return
            e.prepared, e.nbytes = prepared, nbytes
            e.split = split() if split is not None else None
            self.bytes += nbytes
            self._evict()

    def _drop(self, key: tuple) -> None:
        e = self._entries.pop(key)
        self.bytes -= e.nbytes
        for p in e.pages:
            s = self._index.get((key[0], p))
            if s is not None:
                s.discard(key)
                if not s:
                    del self._index[(key[0], p)]

    def _evict(self) -> None:
        while self.bytes > self.capacity or len(self._entries) > 1 << 16:
            self._drop(next(iter(self._entries)))

    def invalidate(self, space: str, lo: int, hi: int) -> None:
        if hi <= lo or not self._index:
            return
        for p in range(lo >> self.page_bits, ((hi - 1) >> self.page_bits) + 1):
            keys = self._index.get((space, p))
            if not keys:
                continue
            for key in [k for k in keys if self._entries[k].lo < hi and lo < self._entries[k].hi]:
                self._drop(key)

    def retain(self, keep) -> None:  # noqa: ANN001 - a predicate on entries
        """Drop every entry for which ``keep(entry)`` is false."""
        for key in [k for k, e in self._entries.items() if not keep(e)]:
            self._drop(key)

    def clear(self) -> None:
        self._entries.clear()
        self._index.clear()
        self.bytes = 0

    def stats(self) -> dict:
        return {"entries": len(self), "bytes": self.bytes, "hits": self.hits,
                "misses": self.misses}
