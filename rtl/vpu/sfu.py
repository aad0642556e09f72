"""``SfuV``: the reduction and scalar stage of the VPU (DFX §2.5 SFU_V), bit-exact against the
golden model (docs/numerics.md):

* accumulate (``vacc``/``vaccsq``, docs/numerics.md §5, golden ``accum``): the **exact** sum
  of the d FP32 values per vector from the VFU multiplier bank (``f32(a)`` or the exact
  ``a*a``), rounded once to FP32 (:class:`~.accumulate.ExactAccumulate`: FP32 -> fixed point
  in units of 2^-48 and an integer adder tree, ``acc_tree_latency``; a wide limb-pipelined
  accumulator, ``acc_add_latency``; one RNE conversion, ``acc_convert_latency``, whose last
  register is the result register). One vector per cycle (:attr:`SfuV.acc_interval` = 1);
  the result is valid :attr:`SfuV.acc_latency` = tree + add + convert cycles after the
  command's last vector on ``prod``;
* reduce-max (``vmax``) and argmax (``vargmax``): a comparator tree over the FP16 order key
  (``-0 < +0``; NaN above everything, ties keep the lower index), then a running maximum across
  vectors (golden ``reduce_max16`` widened to FP32, ``argmax16``);
* scalar FP32 ``sadd``/``ssub``/``smul`` and table ``srecip``/``srsqrt``
  (:class:`~.scalar_tables.ScalarTable`).

One scalar-result operation at a time: the issuer starts the next one only after ``result``
was taken (the result register is not overwritten).
"""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from dfx.isa.golden import tables as gtab

from ..arith.fp32_add import Fp32Add
from ..arith.fp32_mul import Fp32Mul
from ..arith.fpformat import FP32, check_latency, wire
from .accumulate import ExactAccumulate
from .scalar_tables import ScalarTable
from .vfu import VpuOp, check_pow2, delay, widen16

__all__ = ["INDEX_BITS", "SfuV"]

INDEX_BITS = 24
"""Width of counts and argmax indices (the ISA's ``count`` field, ``isa/spec.yaml``)."""


def order_key16(m: Module, x: Value, name: str) -> Value:
    """Monotone 16-bit key of an FP16 pattern (golden ``order_key16``; -0 < +0)."""
    return wire(m, Mux(x[15], Cat(~x[:15], Const(0, 1)), Cat(x[:15], Const(1, 1))), name)


def key_to_f16(key: Value) -> Value:
    """Inverse of :func:`order_key16`."""
    return Mux(key[15], Cat(key[:15], Const(0, 1)), Cat(~key[:15], Const(1, 1)))


class SfuV(wiring.Component):
    """SFU_V datapath (see the module docstring); everything below loads only while ``en``.

    Ports, ``In`` unless noted:

    * ``en`` (default 1): the VPU-wide clock enable;
    * accumulate, from :class:`~.vfu.Vfu`: ``prod`` (d x FP32), ``prod_valid``, ``prod_first``,
      ``prod_last`` (the command's first / last vector);
    * max: ``mx_valid``, ``mx_first``, ``mx_last``, ``mx_arg`` (argmax, else max), ``mx_a``
      (d x FP16), ``mx_count`` (lanes ``i < mx_count`` take part), ``mx_base`` (element index of
      lane 0);
    * scalar: ``sc_valid``, ``sc_op`` (:class:`~.vfu.VpuOp` SADD..SRSQRT), ``sc_a``, ``sc_b``;
    * ``zero_valid``: produce +0 (a reduction over n = 0 vectors);
    * ``result`` (``Out``, ``stream.Signature(32)``): FP32 bit pattern, or the argmax index.
    """

    def __init__(
        self,
        d: int,
        *,
        scalar_latency: int,
        acc_tree_latency: int = 1,
        acc_add_latency: int = 1,
        acc_convert_latency: int = 1,
        recip_table: Any = None,
        rsqrt_table: Any = None,
    ):
        self._d = check_pow2(d, "d")
        check_latency(acc_convert_latency, 1, "acc_convert_latency")
        self._acc = ExactAccumulate(
            d,
            count_bits=INDEX_BITS,
            tree_latency=acc_tree_latency,
            add_latency=acc_add_latency,
            convert_latency=acc_convert_latency - 1,  # + the result register
        )
        self._scalar = check_latency(scalar_latency, 1, "scalar_latency")
        self._recip = _table("recip", recip_table)
        self._rsqrt = _table("rsqrt", rsqrt_table)
        super().__init__(
            {
                "en": In(1, init=1),
                "prod": In(data.ArrayLayout(32, d)),
                "prod_valid": In(1),
                "prod_first": In(1),
                "prod_last": In(1),
                "mx_valid": In(1),
                "mx_first": In(1),
                "mx_last": In(1),
                "mx_arg": In(1),
                "mx_a": In(data.ArrayLayout(16, d)),
                "mx_count": In(range(d + 1)),
                "mx_base": In(INDEX_BITS),
                "sc_valid": In(1),
                "sc_op": In(VpuOp),
                "sc_a": In(32),
                "sc_b": In(32),
                "zero_valid": In(1),
                "result": Out(stream.Signature(32)),
            }
        )

    @property
    def d(self) -> int:
        return self._d

    @property
    def acc_latency(self) -> int:
        """Cycles from an accumulation's last vector on ``prod`` to ``result.valid``:
        acc_tree_latency + acc_add_latency + acc_convert_latency."""
        return self._acc.latency + 1

    @property
    def acc_bits(self) -> int:
        """Width of the exact accumulator (units of 2^-48; 2^INDEX_BITS vectors of d)."""
        return self._acc.acc_bits

    @property
    def max_tree_latency(self) -> int:
        """Comparator-tree stages: log2(d) (one register per level)."""
        return self._d.bit_length() - 1

    @property
    def acc_interval(self) -> int:
        """Minimum cycles between accumulate vectors: 1 (no floating-point chain)."""
        return 1

    @property
    def scalar_latencies(self) -> dict[VpuOp, int]:
        """Cycles from ``sc_valid`` to ``result.valid``."""
        table = 2 * self._scalar + 2 + 1
        return {
            VpuOp.SADD: self._scalar + 1,
            VpuOp.SSUB: self._scalar + 1,
            VpuOp.SMUL: self._scalar + 1,
            VpuOp.SRECIP: table,
            VpuOp.SRSQRT: table,
        }

    @property
    def tables(self) -> dict[str, gtab.PwlTable]:
        return {"recip": self._recip, "rsqrt": self._rsqrt}

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        en = self.en
        d = self._d

        res = Signal(32, name="res")
        res_valid = Signal(name="res_valid")
        produce = Signal(name="produce")
        value = Signal(32, name="value")
        with m.If(self.result.valid & self.result.ready):
            m.d.sync += res_valid.eq(0)
        with m.If(en & produce):
            m.d.sync += [res.eq(value), res_valid.eq(1)]
        m.d.comb += [self.result.payload.eq(res), self.result.valid.eq(res_valid)]

        # ---- accumulate: exact fixed point, rounded once ----------------------------------
        m.submodules.acc = acc = self._acc
        m.d.comb += [
            acc.en.eq(en),
            acc.prod.eq(self.prod),
            acc.valid.eq(self.prod_valid),
            acc.first.eq(self.prod_first),
            acc.last.eq(self.prod_last),
        ]

        # ---- scalar add / sub --------------------------------------------------------------
        add = Fp32Add(self._scalar)
        m.submodules.add = add
        negate = self.sc_op == VpuOp.SSUB
        m.d.comb += [
            add.en.eq(en),
            add.a.eq(self.sc_a),
            add.b.eq(Cat(self.sc_b[:31], self.sc_b[31] ^ negate)),
            add.valid_in.eq(
                self.sc_valid & ((self.sc_op == VpuOp.SADD) | (self.sc_op == VpuOp.SSUB))
            ),
        ]

        # ---- scalar multiply and tables --------------------------------------------------
        mul = Fp32Mul(self._scalar)
        recip = ScalarTable(
            "recip", self._recip, mul_latency=self._scalar, add_latency=self._scalar
        )
        rsqrt = ScalarTable(
            "rsqrt", self._rsqrt, mul_latency=self._scalar, add_latency=self._scalar
        )
        m.submodules.mul = mul
        m.submodules.recip = recip
        m.submodules.rsqrt = rsqrt
        m.d.comb += [
            mul.en.eq(en),
            mul.a.eq(self.sc_a),
            mul.b.eq(self.sc_b),
            mul.valid_in.eq(self.sc_valid & (self.sc_op == VpuOp.SMUL)),
            recip.en.eq(en),
            recip.a.eq(self.sc_a),
            recip.valid_in.eq(self.sc_valid & (self.sc_op == VpuOp.SRECIP)),
            rsqrt.en.eq(en),
            rsqrt.a.eq(self.sc_a),
            rsqrt.valid_in.eq(self.sc_valid & (self.sc_op == VpuOp.SRSQRT)),
        ]

        # ---- reduce-max / argmax: comparator tree of (valid, nan, key), then running best ----
        ibits = max(1, (d - 1).bit_length())
        level = []
        for i in range(d):
            x = wire(m, Mux(self.mx_valid, self.mx_a[i], 0), f"mx_a{i}")  # operand isolation
            nan = wire(m, (x[10:15] == 0x1F) & (x[:10] != 0), f"mx_nan{i}")
            key = order_key16(m, x, f"mx_key{i}")
            ok = wire(m, self.mx_count > i, f"mx_ok{i}")
            ext = Mux(ok, Cat(Mux(nan, 0, key), nan, Const(1, 1)), 0)  # 18 bits
            level.append((wire(m, ext, f"mx_ext{i}"), Const(i, ibits)))
        lvl = 0
        while len(level) > 1:
            nxt = []
            for j in range(len(level) // 2):
                (el, il), (er, ir) = level[2 * j], level[2 * j + 1]
                right = er > el  # ties keep the lower index
                e = delay(m, Mux(right, er, el), 1, en, f"mx{lvl}_{j}_ext")
                ix = delay(m, Mux(right, ir, il), 1, en, f"mx{lvl}_{j}_idx")
                nxt.append((e, ix))
            level = nxt
            lvl += 1
        ((c_ext, c_idx),) = level
        mlat = self.max_tree_latency
        c_valid = delay(m, self.mx_valid, mlat, en, "mx_valid", reset_less=False)
        c_first = delay(m, self.mx_first, mlat, en, "mx_first")
        c_last = delay(m, self.mx_last, mlat, en, "mx_last")
        c_arg = delay(m, self.mx_arg, mlat, en, "mx_arg")
        c_base = delay(m, self.mx_base, mlat, en, "mx_base")
        c_index = wire(m, (c_base + c_idx)[:INDEX_BITS], "mx_index")
        best_ext = Signal(18, name="best_ext")
        best_idx = Signal(INDEX_BITS, name="best_idx")
        take = wire(m, c_first | (c_ext > best_ext), "mx_take")
        new_ext = wire(m, Mux(take, c_ext, best_ext), "mx_new_ext")
        new_idx = Mux(take, c_index, best_idx)
        with m.If(en & c_valid):
            m.d.sync += [best_ext.eq(new_ext), best_idx.eq(new_idx)]
        max32 = widen16(m, key_to_f16(new_ext[:16]), "mx_max")
        max_value = Mux(new_ext[16], FP32.nan_bits, max32)

        # ---- the result -----------------------------------------------------------------
        mx_done = c_valid & c_last
        choices = [
            (acc.valid_out, acc.result),
            (add.valid_out, add.result),
            (mul.valid_out, mul.result),
            (recip.valid_out, recip.result),
            (rsqrt.valid_out, rsqrt.result),
            (mx_done, Mux(c_arg, new_idx, max_value)),
        ]  # at most one is valid at a time (zero_valid: +0)
        m.d.comb += [
            produce.eq(
                acc.valid_out
                | add.valid_out
                | mul.valid_out
                | recip.valid_out
                | rsqrt.valid_out
                | mx_done
                | self.zero_valid
            ),
            value.eq(_priority(choices)),
        ]
        return m


def _priority(choices: list[tuple[Value, Value]]) -> Value:
    out: Value = Const(0, 32)
    for cond, val in reversed(choices):
        out = Mux(cond, val, out)
    return out


def _table(fn: str, spec: Any) -> gtab.PwlTable:
    return gtab.default_table(fn) if spec is None else gtab.table_from_spec(fn, spec)
