"""The shared fixed-point pieces (``dfx.rtl.arith.fixed``, ``dfx.rtl.arith.int_to_fp32``,
moved from ``dfx.rtl.lutgemm``): their widths and names. :class:`IntToFp32` is tested at every
width it serves (LUT-GEMM 113 bits, VPU accumulator 111) in
``tests/rtl/lutgemm/test_lut_builder.py``."""

from __future__ import annotations

import pytest

from dfx.rtl import lutgemm
from dfx.rtl.arith import IntToFp32
from dfx.rtl.arith.fixed import FIX_BITS, FIX_MAX, SQ_BITS, SQ_MAX, limb_widths, sum_bits

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


def test_widths_and_moved_names():
    assert (FIX_BITS, SQ_BITS) == (41, 81)
    assert SQ_MAX == FIX_MAX**2 and sum_bits(1, SQ_MAX) == SQ_BITS
    assert limb_widths(108, 3) == [36, 36, 36]
    assert issubclass(lutgemm.IntToFp32, IntToFp32)
    assert lutgemm.fixed.sum_bits is sum_bits


