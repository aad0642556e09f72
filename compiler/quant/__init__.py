"""Weight quantization for LUT-GEMM: binary-coding quantization (BCQ) and its uniform
(RTN int-q) special case (Park et al., ICLR 2024; docs/lutgemm.md).

``QuantSpec.parse("bcq:q=3,g=128")`` describes the scheme; ``quantize(w, spec, g)`` turns one
``[K, N]`` Conv1D weight into a :class:`dfx.isa.golden.lutgemm.Bcq`."""

from .quantize import quantize
from .spec import QuantError, QuantSpec

__all__ = ["QuantError", "QuantSpec", "quantize"]
