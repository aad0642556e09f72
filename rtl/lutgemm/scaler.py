"""``LutScaler``: one FP32 scale unit of the LUT-GEMM unit (the ``scalers`` of ``core.lutgemm``).

For each op it converts an exact group sum (``p``: ``P[G, b, m]`` or the input sum ``X[G]``) to
FP32 (:class:`.IntToFp32`, one RNE rounding, NaN when the group's inputs were not finite),
multiplies it by the FP16 scale widened exactly to FP32 (:class:`~dfx.rtl.arith.Fp32Mul`) and
adds the product to the row's FP32 accumulator (:class:`~dfx.rtl.arith.Fp32Add`): the golden
``acc = acc + round32(round32(P) * alpha)`` (``dfx.isa.golden.lutgemm.lut_acc``). ``init``
starts a row's sum: the adder then adds -0, the identity, so the first op yields
``round32(P) * alpha`` itself.

Storage: the accumulators (``acc_depth`` FP32, addressed by the op's row chunk ``addr``) and the
scale slots (``slots`` entries of ``max_q + 1`` FP16: alpha_0 .. alpha_{q-1}, z), both memories.

Timing (en-cycles, ``en`` low freezes everything): an op is *issued* at cycle t with ``valid``,
``slot``, ``b`` (the scale read), ``addr``, ``init``; its sum ``p`` and ``nan`` follow at t + 1
(they come from synchronous reads). The accumulator is read at t + 1 + cvt + mul - 1 (synchronous,
transparent to the write of the adder's result), so two ops of the same ``addr`` must be issued
at least ``add_latency + 1`` cycles apart (:attr:`min_distance`). ``result``/``valid_out``:
``latency`` = 1 + cvt + mul + add cycles after the issue.
"""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Module, Mux, signed
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..arith.fp32_add import Fp32Add
from ..arith.fp32_mul import Fp32Mul
from ..arith.fpformat import check_latency
from ..arith.pwl_table import delay, fp16_to_fp32
from ..mpu.mfu import NEG_ZERO32, check_pow2
from .fixed import IntToFp32

__all__ = ["LutScaler"]


class LutScaler(wiring.Component):
    """Group sum -> FP32 x scale -> + accumulator, one op per en-cycle (module doc).

    Ports in: ``en`` (default 1); issue stage ``valid``, ``slot``, ``b``, ``addr``, ``init``;
    ``p`` (signed ``width``), ``nan`` one cycle later; scale writes ``sc_we``, ``sc_waddr``,
    ``sc_wdata`` (``max_q + 1`` FP16, independent of ``en``). Out: ``result`` (FP32 accumulator
    after the op), ``valid_out``.
    """

    def __init__(self, *, width: int, max_q: int, slots: int, acc_depth: int,
                 convert_latency: int, mul_latency: int, add_latency: int):
        if not isinstance(max_q, int) or not 1 <= max_q <= 7:
            raise ValueError(f"max_q must be an integer in 1..7, not {max_q!r}")
        check_pow2(acc_depth, "acc_depth")
        if not isinstance(slots, int) or slots < 1:
            raise ValueError(f"slots must be a positive integer, not {slots!r}")
        self._width = width
        self._max_q = max_q
        self._slots = slots
        self._acc_depth = acc_depth
        self._cvt = check_latency(convert_latency, 1, name="convert_latency")
        self._mul = check_latency(mul_latency, name="mul_latency")
        self._add = check_latency(add_latency, 1, name="add_latency")
        abits = max(acc_depth.bit_length() - 1, 1)
        super().__init__(
            {
                "en": In(1, init=1),
                "valid": In(1),
                "slot": In(range(slots)),
                "b": In(range(max_q + 1)),
                "addr": In(abits),
                "init": In(1),
                "p": In(signed(width)),
                "nan": In(1),
                "sc_we": In(1),
                "sc_waddr": In(range(slots)),
                "sc_wdata": In(data.ArrayLayout(16, max_q + 1)),
                "result": Out(32),
                "valid_out": Out(1),
            }
        )

    @property
    def min_distance(self) -> int:
        """Fewest en-cycles between two ops on the same accumulator."""
        return self._add + 1

    @property
    def latency(self) -> int:
        """En-cycles from an op's issue to its accumulator on ``result``."""
        return 1 + self._cvt + self._mul + self._add

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        en = self.en
        cvt, mul_l, add_l = self._cvt, self._mul, self._add

        # scale slots: the op's scale is read at issue (synchronous, data at t + 1)
        smem = Memory(shape=data.ArrayLayout(16, self._max_q + 1), depth=self._slots, init=[])
        m.submodules.scales = smem
        swp = smem.write_port()
        srp = smem.read_port()
        m.d.comb += [
            swp.addr.eq(self.sc_waddr),
            swp.data.eq(self.sc_wdata),
            swp.en.eq(self.sc_we),
            srp.addr.eq(self.slot),
            srp.en.eq(en),
        ]
        b1 = delay(m, self.b, 1, en, "b1")
        valid1 = delay(m, self.valid, 1, en, "valid1", reset_less=False)
        addr1 = delay(m, self.addr, 1, en, "addr1")
        init1 = delay(m, self.init, 1, en, "init1")
        alpha16 = srp.data[0]
        for i in range(1, self._max_q + 1):
            alpha16 = Mux(b1 == i, srp.data[i], alpha16)
        alpha32 = fp16_to_fp32(m, alpha16, "alpha")

        # t + 1: convert, then multiply by the widened scale
        m.submodules.cvt = conv = IntToFp32(self._width, cvt)
        m.submodules.mul = mul = Fp32Mul(mul_l)
        m.submodules.add = add = Fp32Add(add_l)
        m.d.comb += [
            conv.a.eq(self.p),
            conv.nan.eq(self.nan),
            conv.valid_in.eq(valid1),
            conv.en.eq(en),
            mul.a.eq(conv.result),
            mul.b.eq(delay(m, alpha32, cvt, en, "alpha32")),
            mul.valid_in.eq(conv.valid_out),
            mul.en.eq(en),
        ]

        # the accumulator: read one cycle before the product arrives, transparent to the write
        amem = Memory(shape=32, depth=self._acc_depth, init=[])
        m.submodules.acc = amem
        awp = amem.write_port()
        arp = amem.read_port(transparent_for=(awp,))
        addr_r = delay(m, addr1, cvt + mul_l - 1, en, "addr_r")
        init_a = delay(m, init1, cvt + mul_l, en, "init_a")
        addr_w = delay(m, addr_r, 1 + add_l, en, "addr_w")
        m.d.comb += [
            arp.addr.eq(addr_r),
            arp.en.eq(en),
            add.a.eq(Mux(init_a, NEG_ZERO32, arp.data)),
            add.b.eq(mul.result),
            add.valid_in.eq(mul.valid_out),
            add.en.eq(en),
            awp.addr.eq(addr_w),
            awp.data.eq(add.result),
            awp.en.eq(en & add.valid_out),
            self.result.eq(add.result),
            self.valid_out.eq(add.valid_out),
        ]
        return m
