"""The LUT-GEMM unit in Amaranth (docs/lutgemm.md; Park et al., ICLR 2024).

* :class:`LutGemm` (:mod:`.top`): the unit with its stream ports, built from ``core.lutgemm``;
* :class:`TableBuilder` (:mod:`.builder`): the ``keys`` look-up tables of one input slice;
* :class:`LutLane` (:mod:`.lane`): one row lane (keyed reads, exact group sums);
* :class:`LutScaler` (:mod:`.scaler`): one exact scale unit (group sum x FP16 scale into a
  wide fixed-point row accumulator, rounded once to FP32);
* :class:`LutConvertPair` (:mod:`.convert`): one FP32 converter shared by two scalers;
* :mod:`.fixed`: FP16 -> fixed point, sum widths, :class:`IntToFp32` (wide fixed -> FP32 RNE).
"""

from .builder import TableBuilder
from .convert import LutConvertPair
from .fixed import IntToFp32
from .lane import LutLane
from .scaler import LutScaler
from .top import LutGemm, command_layout, output_layout

__all__ = [
    "IntToFp32",
    "LutConvertPair",
    "LutGemm",
    "LutLane",
    "LutScaler",
    "TableBuilder",
    "command_layout",
    "output_layout",
]
