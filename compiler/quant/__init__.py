"""Weight quantization for LUT-GEMM: binary-coding quantization (BCQ) and its uniform
(RTN int-q) special case (Park et al., ICLR 2024; docs/lutgemm.md).

``QuantSpec.parse("bcq:q=3,g=128")`` describes the scheme (:mod:`.spec`);
``quantize(w, spec, g)`` turns one ``[K, N]`` Conv1D weight into a
:class:`dfx.isa.golden.lutgemm.Bcq` (:mod:`.rtn`: exact int-q -> BCQ conversion; :mod:`.bcq`:
greedy + alternating least squares with offset). :mod:`.reference` is a numpy LUT-GEMM
(doubling-recurrence tables, sign-bit keys) for cross-checks."""

from .quantize import quantize
from .spec import QuantError, QuantSpec

__all__ = ["QuantError", "QuantSpec", "quantize"]
