"""``LutConvertPair``: one FP32 converter shared by two LUT-GEMM scalers (docs/lutgemm.md,
"Cost").

A scaler's row accumulator is rounded to FP32 only for a row's last op (the offset term of the
command's last group), and a scaler issues the q + 1 >= 2 ops of a row chunk on consecutive
cycles, so two such *final* ops of one scaler are at least two en-cycles apart. Two scalers in
lockstep (the scale stage's) can therefore share one :class:`.IntToFp32` (``convert_latency``):
on a final op (``take``, the ops' accumulators on ``acc[0]``, ``acc[1]``) the converter takes
scaler 0's accumulator and a register keeps scaler 1's, which the converter takes in the next
en-cycle. Scaler 0's result waits one register, so both results are on ``result`` together
:attr:`latency` = ``convert_latency + 1`` en-cycles after ``take``, with ``valid_out``. The
rounding is the scaler's own (the converter is the same), so the results are bit for bit those
of two :class:`.LutScaler` with their own converters, one en-cycle later. ``en`` low freezes
everything; a ``take`` in the en-cycle right after another is not allowed.
"""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..arith.fpformat import check_latency
from ..arith.int_to_fp32 import IntToFp32
from ..arith.pwl_table import delay
from .scaler import ACC_FRAC_BITS

__all__ = ["LutConvertPair"]


class LutConvertPair(wiring.Component):
    """Two scalers' final accumulators -> two FP32 results through one converter (module doc).

    Parameters: ``acc_bits`` (the scalers' :attr:`.LutScaler.acc_bits`), ``convert_latency``
    (>= 1). Ports in: ``en`` (default 1), ``take``, ``acc`` (2 x signed ``acc_bits``), ``nan``
    (2 sticky NaN flags). Out: ``result`` (2 x FP32), ``valid_out``.
    """

    def __init__(self, acc_bits: int, convert_latency: int):
        self._acc_bits = acc_bits
        self._cvt = check_latency(convert_latency, 1, name="convert_latency")
        super().__init__(
            {
                "en": In(1, init=1),
                "take": In(1),
                "acc": In(signed(acc_bits)).array(2),
                "nan": In(1).array(2),
                "result": Out(32).array(2),
                "valid_out": Out(1),
            }
        )

    @property
    def latency(self) -> int:
        """En-cycles from ``take`` to both results."""
        return self._cvt + 1

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        en = self.en
        second = Signal(name="second")  # the converter takes the held accumulator
        hold = Signal(signed(self._acc_bits), name="hold")
        hold_nan = Signal(name="hold_nan")
        with m.If(en):
            m.d.sync += second.eq(self.take)
            with m.If(self.take):
                m.d.sync += [hold.eq(self.acc[1]), hold_nan.eq(self.nan[1])]
        m.submodules.cvt = conv = IntToFp32(self._acc_bits, self._cvt, frac_bits=ACC_FRAC_BITS)
        m.d.comb += [
            conv.a.eq(Mux(second, hold, self.acc[0])),
            conv.nan.eq(Mux(second, hold_nan, self.nan[0])),
            conv.valid_in.eq(self.take),
            conv.en.eq(en),
            self.result[0].eq(delay(m, conv.result, 1, en, "first")),
            self.result[1].eq(conv.result),
            self.valid_out.eq(delay(m, conv.valid_out, 1, en, "valid", reset_less=False)),
        ]
        return m
