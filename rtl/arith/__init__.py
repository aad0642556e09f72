"""Pipelined floating-point blocks of the DFX core datapath (Amaranth 0.5; docs/numerics.md).

* :class:`Fp16Mul`: FP16 x FP16 -> exact FP32 product (the VFU multiplier, DFX §IV-D);
* :class:`Fp32Add`: FP32 + FP32 -> FP32, round-to-nearest-even (the MPU accumulator and the
  VFU adder, §IV-C/D, in FP32 rather than DFX's FP16);
* :class:`Fp32ToFp16`: FP32 -> FP16, round-to-nearest-even (the FP32 -> storage rounding point);
* :class:`BlockDot`: one MFU lane's dot product, d FP16 products aligned, summed exactly and
  rounded once (the lane MAC tree, §IV-C; docs/numerics.md §3);
* :class:`IntToFp32`: signed wide fixed point -> FP32, round-to-nearest-even (the one rounding
  of the exact accumulators, §5); :mod:`.fixed`: FP16 / FP32 -> exact fixed point.

All are IEEE with gradual underflow (no flush to zero) and canonical NaNs (FP16 ``0x7E00``, FP32
``0x7FC00000``), bit-exact against :mod:`dfx.isa.golden.fp`. Common timing contract: operands and
``valid_in`` enter on a cycle with ``en`` high (``en`` defaults to 1), the result and
``valid_out`` appear ``latency`` en-cycles later, one operand set per cycle, no back-pressure
(``en`` low freezes the whole pipeline; stream wrappers drive it). ``latency`` is a constructor
argument (0 = combinational) and a read-only property for the timing model.
:mod:`.fpformat` holds the shared field extraction, leading-zero count, sticky shift and RNE.
"""

from .block_dot import BlockDot
from .fp16_mul import DEFAULT_MUL_LATENCY, Fp16Mul
from .fp32_add import DEFAULT_ADD_LATENCY, Fp32Add
from .fp32_to_fp16 import DEFAULT_CVT_LATENCY, Fp32ToFp16
from .int_to_fp32 import IntToFp32

__all__ = [
    "DEFAULT_ADD_LATENCY",
    "DEFAULT_CVT_LATENCY",
    "DEFAULT_MUL_LATENCY",
    "BlockDot",
    "Fp16Mul",
    "Fp32Add",
    "Fp32ToFp16",
    "IntToFp32",
]
