"""Fixed-point pieces of the LUT-GEMM unit: FP16 -> exact signed integer (units of 2^-24),
the widths that keep table entries and group sums exact (shared with the VPU's exact
accumulation, :mod:`dfx.rtl.arith.fixed`), and :class:`IntToFp32`, the signed fixed-point ->
FP32 round-to-nearest-even converter (:mod:`dfx.rtl.arith.int_to_fp32`) with the scale stage's
configuration (its wide row accumulator, units of 2^-48).

Every finite FP16 value is an integer multiple of 2^-24 of magnitude at most
``65504 * 2^24 < 2^40`` (:data:`FIX_MAX`). Sums of such integers are exact in wide two's
complement (golden ``dfx.isa.golden.lutgemm.group_sums``, docs/lutgemm.md step 1); the scale
stage keeps the products with the scales exact too and rounds each row once (step 2).
"""

from __future__ import annotations

from typing import Any

from ..arith import int_to_fp32 as _i2f
from ..arith.fixed import FIX_BITS, FIX_MAX, FRAC_BITS, fp16_to_fixed, sum_bits

__all__ = [
    "FIX_BITS",
    "FIX_MAX",
    "FRAC_BITS",
    "IntToFp32",
    "fp16_to_fixed",
    "sum_bits",
]


class IntToFp32(_i2f.IntToFp32):
    """:class:`dfx.rtl.arith.int_to_fp32.IntToFp32` with :meth:`from_core`, the LUT-GEMM scale
    stage's row-accumulator converter."""

    @classmethod
    def from_core(cls, core: Any) -> IntToFp32:
        """The row-accumulator converter of ``core.lutgemm``: the scale stage's accumulator
        width (units of 2^-48), ``convert_latency``."""
        from .scaler import ACC_FRAC_BITS, acc_bits

        c = core.lutgemm
        return cls(acc_bits(sum_bits(c.max_group), c.max_q), c.convert_latency,
                   frac_bits=ACC_FRAC_BITS)
