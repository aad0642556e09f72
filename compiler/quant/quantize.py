"""``quantize``: one Conv1D weight matrix to BCQ under a :class:`QuantSpec` (LUT-GEMM §3.3)."""

from __future__ import annotations

import numpy as np

from dfx.isa.golden.lutgemm import Bcq

from .bcq import bcq
from .rtn import rtn
from .spec import QuantError, QuantSpec

__all__ = ["quantize"]


def quantize(w: np.ndarray, spec: QuantSpec, g: int) -> Bcq:
    """BCQ of ``w float[K, N]`` (HF Conv1D ``[in, out]``) in groups of ``g`` inputs (from
    :meth:`QuantSpec.group`), with float64 alpha and z (call ``to_fp16()`` before packing).

    Every column is quantized on its own, so slicing columns before or after gives the same
    result (the compiler splits columns over cards)."""
    a = np.asarray(w)
    if a.ndim != 2 or a.shape[0] < 1 or a.shape[1] < 1:
        raise QuantError(f"quantize: expected a [K, N] weight matrix, got shape {a.shape}")
    if isinstance(g, bool) or not isinstance(g, int | np.integer) or g < 1 or a.shape[0] % g:
        raise QuantError(f"quantize: group size {g!r} does not divide K = {a.shape[0]}")
    if not np.isfinite(a).all():
        raise QuantError("quantize: the weight matrix holds an infinity or a NaN")
    if spec.scheme == "rtn":
        return rtn(a, spec.q, int(g))
    return bcq(a, spec.q, int(g), spec.rounds)
