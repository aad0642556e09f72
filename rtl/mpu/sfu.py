"""``SfuM``: the MPU's special function unit (DFX §2.4 SFU_M) on one output group per cycle.

Per lane, in the golden ``matvec`` order (docs/numerics.md):

1. bias: ``acc + f32(bias)`` (:class:`~dfx.rtl.arith.Fp32Add`; without bias the operand is -0);
2. scale: ``* scale`` (:class:`~dfx.rtl.arith.fp32_mul.Fp32Mul`, FP32 scalar; else ``* 1.0``);
3. ``round16`` (:class:`~dfx.rtl.arith.Fp32ToFp16`);
4. causal mask: ``0xFBFF`` (-65504) where the column is past the limit (precomputed per lane);
5. GELU (:class:`~dfx.rtl.arith.pwl_table.PwlTable`, all lanes share the ROMs) or bypass.

Every option is an operand or a select, so the latency is fixed. Then, per command:

* the vectorizer (DFX §2.4 "asymmetric buffer") packs d/l groups into one d-wide FP16 vector;
  the command's last vector is padded with +0 (-65504 with the mask on) and flagged ``last``;
* reduce-max: golden ``reduce_max16`` of the command's outputs (order key, -0 < +0, any NaN ->
  canonical NaN), widened to FP32, emitted with the last group when asked for.
"""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from dfx.isa.golden.fp import NEG_MAX16_BITS

from ..arith.fp32_add import Fp32Add
from ..arith.fp32_mul import Fp32Mul
from ..arith.fp32_to_fp16 import Fp32ToFp16
from ..arith.fpformat import FP16, check_latency, check_pow2
from ..arith.pwl_table import PwlTable, delay, fp16_to_fp32
from ..leaves import Leaf, add_leaf
from .mfu import NEG_ZERO32

__all__ = ["SfuM", "order_key16"]

ONE32 = 0x3F800000


def order_key16(m: Module, x, name: str):
    """Monotone 16-bit key of an FP16 pattern (golden ``order_key16``; -0 < +0)."""
    s = Signal(16, name=name)
    m.d.comb += s.eq(Mux(x[15], 0x7FFF - x[:15], Cat(x[:15], Const(1, 1))))
    return s


class SfuM(wiring.Component):
    """SFU_M: bias, scale, round16, mask, GELU, vectorizer and reduce-max (module doc).

    In (taken with ``valid_in`` on en-high cycles, one output group of l lanes each):
    ``acc`` (l FP32), ``bias`` (l FP16), ``use_bias``, ``scale`` (FP32), ``use_scale``,
    ``masked`` (l bits: lane's column > limit), ``mask`` (the command masks: pad with -65504),
    ``gelu``, ``rowmax``, ``slot`` (group's place in its d-vector), ``last`` (the command's
    last group), ``en``.

    Out: ``vec`` (d FP16), ``vec_last``, ``vec_valid`` after :attr:`latency` en-cycles;
    ``max`` (FP32), ``max_valid`` after :attr:`max_latency`. Outputs hold while ``en`` is low;
    a consumer takes them on en-high cycles (like every pipeline here).
    """

    def __init__(
        self,
        d: int,
        l: int,  # noqa: E741
        *,
        add_latency: int,
        scale_latency: int,
        cvt_latency: int,
        gelu_table: Any,
        gelu_latency: int,
        leaf: Leaf = add_leaf,
    ):
        self._leaf = leaf
        self._d = check_pow2(d, "d")
        self._l = check_pow2(l, "l")
        if l > d:
            raise ValueError(f"l must be a power of two <= d ({d}), not {l}")
        self._add_latency = check_latency(add_latency, name="add_latency")
        self._scale_latency = check_latency(scale_latency, name="scale_latency")
        self._cvt_latency = check_latency(cvt_latency, name="cvt_latency")
        self._gelu = PwlTable(gelu_table, lanes=l, latency=gelu_latency, leaf=leaf)
        if self._gelu.fn != "gelu":
            raise ValueError(f"gelu_table must be a gelu table, not {self._gelu.fn!r}")
        groups = d // l
        super().__init__(
            {
                "acc": In(32).array(l),
                "bias": In(16).array(l),
                "use_bias": In(1),
                "scale": In(32),
                "use_scale": In(1),
                "masked": In(l),
                "mask": In(1),
                "gelu": In(1),
                "rowmax": In(1),
                "slot": In(range(groups)),
                "last": In(1),
                "valid_in": In(1),
                "en": In(1, init=1),
                "vec": Out(16).array(d),
                "vec_last": Out(1),
                "vec_valid": Out(1),
                "max": Out(32),
                "max_valid": Out(1),
            }
        )

    @property
    def gelu_unit(self) -> PwlTable:
        """The GELU table unit (l lanes)."""
        return self._gelu

    @property
    def value_latency(self) -> int:
        """From the inputs to the per-lane FP16 results (before the vectorizer)."""
        return self._add_latency + self._scale_latency + self._cvt_latency + self._gelu.latency

    @property
    def latency(self) -> int:
        """From a group to the vector it completes (vectorizer register included)."""
        return self.value_latency + 1

    @property
    def max_latency(self) -> int:
        """From a command's last group to its row maximum."""
        return self.value_latency + 2

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        en, d, l = self.en, self._d, self._l  # noqa: E741
        groups = d // l
        m.submodules.gelu = gelu = self._gelu
        A, S, C, P = self._add_latency, self._scale_latency, self._cvt_latency, gelu.latency

        def dl(value, n, name, reset_less=True):
            return delay(m, value, n, en, name, reset_less=reset_less)

        # context delayed to where each piece is used
        use_scale = dl(self.use_scale, A, "use_scale")
        scale = dl(self.scale, A, "scale")
        masked = dl(self.masked, A + S + C, "masked")
        use_gelu = dl(self.gelu, A + S + C + P, "use_gelu")
        tags = {
            "valid": dl(self.valid_in, A + S + C + P, "valid", reset_less=False),
            "slot": dl(self.slot, A + S + C + P, "slot"),
            "last": dl(self.last, A + S + C + P, "last"),
            "pad_neg": dl(self.mask, A + S + C + P, "pad_neg"),
            "rowmax": dl(self.rowmax, A + S + C + P, "rowmax"),
        }

        values = []
        for j in range(l):
            add = self._leaf(m, f"bias{j}", Fp32Add(A))
            mul = self._leaf(m, f"scale{j}", Fp32Mul(S))
            cvt = self._leaf(m, f"round{j}", Fp32ToFp16(C))
            bias32 = fp16_to_fp32(m, self.bias[j], f"bias{j}")
            m.d.comb += [
                add.a.eq(self.acc[j]),
                add.b.eq(Mux(self.use_bias, bias32, NEG_ZERO32)),
                add.en.eq(en),
                mul.a.eq(add.result),
                mul.b.eq(Mux(use_scale, scale, ONE32)),
                mul.en.eq(en),
                cvt.a.eq(mul.result),
                cvt.en.eq(en),
            ]
            h = Signal(16, name=f"h{j}")
            m.d.comb += [
                h.eq(Mux(masked[j], NEG_MAX16_BITS, cvt.result)),
                gelu.a[j].eq(h),
            ]
            v = Signal(16, name=f"v{j}")
            m.d.comb += v.eq(Mux(use_gelu, gelu.result[j], dl(h, P, f"h{j}")))
            values.append(v)
        m.d.comb += gelu.en.eq(en)

        # vectorizer: groups 0..groups-2 wait in buf, the slot that completes a vector (or the
        # command's last group) sends it with the padding
        valid, slot, last = tags["valid"], tags["slot"], tags["last"]
        pad = Mux(tags["pad_neg"], NEG_MAX16_BITS, 0)
        buf = [[Signal(16, name=f"buf{k}_{j}") for j in range(l)] for k in range(groups - 1)]
        emit = valid & ((slot == groups - 1) | last)
        with m.If(en):
            m.d.sync += [self.vec_valid.eq(emit), self.vec_last.eq(valid & last)]
            with m.If(emit):
                for k in range(groups):
                    for j in range(l):
                        if k < groups - 1:
                            src = Mux(slot == k, values[j], Mux(slot > k, buf[k][j], pad))
                        else:
                            src = Mux(slot == k, values[j], pad)
                        m.d.sync += self.vec[k * l + j].eq(src)
            with m.If(valid):
                for k in range(groups - 1):
                    with m.If(slot == k):
                        m.d.sync += [buf[k][j].eq(values[j]) for j in range(l)]

        # reduce-max: comparator tree over the lanes, then a running maximum per command
        keys = [order_key16(m, v, f"key{j}") for j, v in enumerate(values)]
        nans = [(v[10:15] == FP16.exp_max) & (v[:10] != 0) for v in values]
        while len(keys) > 1:
            keys = [
                Mux(keys[i] >= keys[i + 1], keys[i], keys[i + 1]) for i in range(0, len(keys), 2)
            ]
        g_key = dl(keys[0], 1, "g_key")
        g_nan = dl(Cat(*nans).any(), 1, "g_nan")
        g_valid = dl(valid, 1, "g_valid", reset_less=False)
        g_last = dl(last, 1, "g_last")
        g_rowmax = dl(tags["rowmax"], 1, "g_rowmax")
        run_key = Signal(16)
        run_nan = Signal()
        run_any = Signal()  # a group of this command has been seen
        new_key = Mux(run_any & (run_key > g_key), run_key, g_key)
        new_nan = (run_any & run_nan) | g_nan
        # key -> FP16 pattern (golden _key_to_f16) -> FP32
        bits16 = Mux(new_key[15], new_key[:15], Cat((0x7FFF - new_key[:15])[:15], Const(1, 1)))
        max32 = fp16_to_fp32(m, bits16, "max16")
        with m.If(en):
            m.d.sync += self.max_valid.eq(g_valid & g_last & g_rowmax)
            with m.If(g_valid):
                m.d.sync += [run_key.eq(new_key), run_nan.eq(new_nan), run_any.eq(~g_last)]
                with m.If(g_last):
                    m.d.sync += self.max.eq(Mux(new_nan, 0x7FC00000, max32))
        return m
