"""``Vfu``: the Vector Function Unit of the VPU (DFX §2.5), element-wise on d-wide FP16 vectors.

Operations (numerics: the golden ``dfx.isa.golden.fp`` / ``tables``, docs/numerics.md):

* ``vadd, vsub`` = ``round16(round32(f32(a) ± f32(b)))``: FP16 -> FP32 widening (exact),
  :class:`~dfx.rtl.arith.Fp32Add`, :class:`~dfx.rtl.arith.Fp32ToFp16`;
* ``vadds, vsubs`` = ``round16(round32(f32(a) ± s))`` with the FP32 scalar ``s`` (same adders);
* ``vmul`` = ``round16(a*b)``: the product of two FP16 values is exact in FP32 (22-bit
  significand, normal exponent), so ``round32(f32(a) * f32(b))`` is exact and one rounding
  remains;
* ``vmuls`` = ``round16(round32(f32(a) * s))``; ``vmul``, ``vmuls``, ``vacc`` and ``vaccsq``
  share one :class:`~dfx.rtl.arith.fp32_mul.Fp32Mul` per lane (the multiplier bank);
* ``vexp, vgelu``: one piecewise-linear FP16 table unit holding both tables
  (:class:`~dfx.rtl.arith.pwl_table.PwlTable`, d lanes sharing the block-RAM ROMs; the op
  picks the table, the lanes' arithmetic serves both);
* ``vmov``: the bypass (load/store path), ``bypass_latency`` register stages;
* ``vacc, vaccsq``: no vector result; the multiplier bank forms ``a*1`` (= ``f32(a)``) or the
  exact squares ``a*a`` and hands them to SFU_V on the ``prod`` port.

One d-vector per cycle; each lane's widening, isolation, adder, multiplier and converter are a
:class:`VfuLane` (d identical blocks beside one table unit). Every vector result leaves
through one shared bank of FP32 -> FP16 converters, so the per-op latencies are add:
``add_latency``, mul/muls: ``mul_latency`` (each ``cvt_latency`` of them in the converter),
exp/gelu: ``table_latency``, mov: ``bypass_latency``.
Results of different ops must not meet at the output: the issuer (:class:`~.vpu.Vpu`) starts an
op of latency L only ``L_prev - L + 1`` cycles after the last vector of an op of latency
``L_prev``.
"""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value
from amaranth.lib import data, enum, wiring
from amaranth.lib.wiring import In, Out

from dfx.isa.golden import tables as gtab

from ..arith.fp32_add import Fp32Add
from ..arith.fp32_mul import Fp32Mul
from ..arith.fp32_to_fp16 import Fp32ToFp16
from ..arith.fpformat import check_latency, wire
from ..arith.pwl_table import PwlTable, delay, fp16_to_fp32
from ..isa_layouts import Opcode
from ..leaves import Leaf, add_leaf

__all__ = ["VFU_OPS", "Vfu", "VfuLane", "VpuOp", "check_pow2", "delay", "widen16"]


class VpuOp(enum.Enum, shape=8):
    """VPU operations; the values are the ISA opcodes (``isa/spec.yaml``). ``NOP`` (and any
    other value) does nothing."""

    NOP = Opcode.NOP.value
    VADD = Opcode.VADD.value
    VSUB = Opcode.VSUB.value
    VMUL = Opcode.VMUL.value
    VADDS = Opcode.VADDS.value
    VSUBS = Opcode.VSUBS.value
    VMULS = Opcode.VMULS.value
    VEXP = Opcode.VEXP.value
    VGELU = Opcode.VGELU.value
    VMOV = Opcode.VMOV.value
    VACC = Opcode.VACC.value
    VACCSQ = Opcode.VACCSQ.value
    VMAX = Opcode.VMAX.value
    VARGMAX = Opcode.VARGMAX.value
    SADD = Opcode.SADD.value
    SSUB = Opcode.SSUB.value
    SMUL = Opcode.SMUL.value
    SRECIP = Opcode.SRECIP.value
    SRSQRT = Opcode.SRSQRT.value


VFU_OPS = (
    VpuOp.VADD,
    VpuOp.VSUB,
    VpuOp.VMUL,
    VpuOp.VADDS,
    VpuOp.VSUBS,
    VpuOp.VMULS,
    VpuOp.VEXP,
    VpuOp.VGELU,
    VpuOp.VMOV,
)
"""Operations with a vector result."""


# ------------------------------------------------------------------------------ helpers


def check_pow2(value: object, name: str) -> int:
    """Validate a power of two >= 1 (an ``int``, not ``bool``)."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be a power of two >= 1, not {value!r}")
    if value < 1 or value & (value - 1):
        raise ValueError(f"{name} must be a power of two >= 1, not {value!r}")
    return value


def widen16(m: Module, x: Value, name: str) -> Value:
    """FP16 -> FP32 bit pattern, exact (golden ``widen16``; NaN -> ``0x7FC00000``)."""
    return fp16_to_fp32(m, x, name)


# ---------------------------------------------------------------------------------- VFU


class Vfu(wiring.Component):
    """The VFU datapath: ``d`` lanes, one operand set per ``en`` cycle (see module docstring).

    Ports (all ``In`` unless noted): ``en`` (clock enable, default 1; low freezes every
    register), ``valid_in``, ``op`` (:class:`VpuOp`), ``a``, ``b`` (d x FP16), ``s`` (FP32
    scalar), ``acc_first``, ``acc_last`` (tags of vacc/vaccsq vectors, passed to ``prod_*``);
    ``Out``: ``result`` (d x FP16), ``valid_out``, ``prod`` (d x FP32: ``f32(a)`` for vacc,
    ``a*a`` for vaccsq), ``prod_valid``, ``prod_first``, ``prod_last`` (``prod_latency`` after
    issue). ``op`` values that are not VFU ops (vmax, scalar ops) are ignored.

    ``leaf`` adds each lane's arithmetic blocks and the table units' (:mod:`dfx.rtl.leaves`;
    default: plain submodules).
    """

    def __init__(
        self,
        d: int,
        *,
        add_latency: int,
        mul_latency: int,
        table_latency: int,
        bypass_latency: int,
        cvt_latency: int = 1,
        exp_table: Any = None,
        gelu_table: Any = None,
        leaf: Leaf = add_leaf,
    ):
        self._d = check_pow2(d, "d")
        self._leaf = leaf
        self._cvt = check_latency(cvt_latency, 0, "cvt_latency")
        self._add = check_latency(add_latency, max(1, self._cvt), "add_latency")
        self._mul = check_latency(mul_latency, max(1, self._cvt), "mul_latency")
        self._table = check_latency(table_latency, 1, "table_latency")
        self._bypass = check_latency(bypass_latency, 1, "bypass_latency")
        self._exp_table = _table("exp", exp_table)
        self._gelu_table = _table("gelu", gelu_table)
        v16 = data.ArrayLayout(16, d)
        super().__init__(
            {
                "en": In(1, init=1),
                "valid_in": In(1),
                "op": In(VpuOp),
                "a": In(v16),
                "b": In(v16),
                "s": In(32),
                "acc_first": In(1),
                "acc_last": In(1),
                "result": Out(v16),
                "valid_out": Out(1),
                "prod": Out(data.ArrayLayout(32, d)),
                "prod_valid": Out(1),
                "prod_first": Out(1),
                "prod_last": Out(1),
            }
        )

    @property
    def d(self) -> int:
        return self._d

    @property
    def cvt_latency(self) -> int:
        return self._cvt

    @property
    def prod_latency(self) -> int:
        """Cycles from issue to ``prod`` (the multiplier stages: mul_latency - cvt_latency)."""
        return self._mul - self._cvt

    @property
    def latencies(self) -> dict[VpuOp, int]:
        """Cycles from issue to ``result`` for each vector-result op."""
        return {
            VpuOp.VADD: self._add,
            VpuOp.VSUB: self._add,
            VpuOp.VADDS: self._add,
            VpuOp.VSUBS: self._add,
            VpuOp.VMUL: self._mul,
            VpuOp.VMULS: self._mul,
            VpuOp.VEXP: self._table,
            VpuOp.VGELU: self._table,
            VpuOp.VMOV: self._bypass,
        }

    @property
    def tables(self) -> dict[str, gtab.PwlTable]:
        return {"exp": self._exp_table, "gelu": self._gelu_table}

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        en, op, v = self.en, self.op, self.valid_in
        d = self._d

        def is_op(*ops: VpuOp) -> Value:
            return wire(
                m, Cat(*(op == o for o in ops)).any(), "is_" + "_".join(o.name for o in ops)
            )

        add_v = wire(m, v & is_op(VpuOp.VADD, VpuOp.VSUB, VpuOp.VADDS, VpuOp.VSUBS), "add_v")
        scalar_b = is_op(VpuOp.VADDS, VpuOp.VSUBS)
        negate_b = is_op(VpuOp.VSUB, VpuOp.VSUBS)
        mul_v = wire(m, v & is_op(VpuOp.VMUL, VpuOp.VMULS, VpuOp.VACC, VpuOp.VACCSQ), "mul_v")
        to_sfu = is_op(VpuOp.VACC, VpuOp.VACCSQ)
        square = is_op(VpuOp.VACCSQ)
        mul_b16 = is_op(VpuOp.VMUL)
        mul_s = is_op(VpuOp.VMULS)
        exp_v = wire(m, v & is_op(VpuOp.VEXP), "exp_v")
        gelu_v = wire(m, v & is_op(VpuOp.VGELU), "gelu_v")
        mov_v = wire(m, v & is_op(VpuOp.VMOV), "mov_v")

        lat_add = self._add - self._cvt
        lat_mul = self._mul - self._cvt
        # tags of the multiplier bank: vacc/vaccsq (to SFU_V) with first/last, else vmul/vmuls
        tag_sfu = delay(m, to_sfu, lat_mul, en, "tag_sfu")
        tag_first = delay(m, self.acc_first, lat_mul, en, "tag_first")
        tag_last = delay(m, self.acc_last, lat_mul, en, "tag_last")
        mov_out = delay(m, Mux(mov_v, self.a.as_value(), 0), self._bypass, en, "mov")
        mov_valid = delay(m, mov_v, self._bypass, en, "mov_valid", reset_less=False)

        # the table unit: exp (sel 0) and gelu (sel 1), d lanes sharing the ROMs
        tab = PwlTable(
            (self._exp_table, self._gelu_table), lanes=d, latency=self._table, leaf=self._leaf
        )
        m.submodules.tables = tab
        tab_v = wire(m, exp_v | gelu_v, "tab_v")
        m.d.comb += [tab.en.eq(en), tab.valid_in.eq(tab_v), tab.sel.eq(gelu_v)]
        tab_valid = tab.valid_out
        cvt_valid = Signal(name="cvt_valid")
        mul_valid_out = Signal(name="mul_valid_out")
        cvt_out = []
        tab_out = []
        # operand isolation: a bank sees its operands only on the cycles it issues (saves
        # switching power in hardware, and simulation time)
        a_on = wire(m, add_v | mul_v | exp_v | gelu_v | mov_v, "a_on")
        b_on = wire(m, v & is_op(VpuOp.VADD, VpuOp.VSUB, VpuOp.VMUL), "b_on")
        s_on = wire(m, v & is_op(VpuOp.VADDS, VpuOp.VSUBS, VpuOp.VMULS), "s_on")
        s32 = wire(m, Mux(s_on, self.s, 0), "s_iso")
        flags = {"a_on": a_on, "b_on": b_on, "add_v": add_v, "mul_v": mul_v, "tab_v": tab_v,
                 "scalar_b": scalar_b, "negate_b": negate_b, "mul_b16": mul_b16,
                 "mul_s": mul_s, "square": square, "tag_sfu": tag_sfu}
        for i in range(d):
            lane = VfuLane(lat_add, lat_mul, self._cvt, leaf=self._leaf)
            m.submodules[f"lane{i}"] = lane
            m.d.comb += [
                lane.en.eq(en),
                lane.a.eq(self.a[i]),
                lane.b.eq(self.b[i]),
                lane.s.eq(s32),
                *(getattr(lane, k).eq(v) for k, v in flags.items()),
                tab.a[i].eq(lane.tab_a),
                self.prod[i].eq(lane.prod),
            ]
            cvt_out.append(lane.result)
            tab_out.append(tab.result[i])
            if i == 0:
                m.d.comb += [cvt_valid.eq(lane.cvt_valid), mul_valid_out.eq(lane.mul_valid)]

        m.d.comb += [
            self.prod_valid.eq(mul_valid_out & tag_sfu),
            self.prod_first.eq(tag_first),
            self.prod_last.eq(tag_last),
            self.valid_out.eq(cvt_valid | tab_valid | mov_valid),
        ]
        for i in range(d):
            m.d.comb += self.result[i].eq(
                Mux(
                    cvt_valid, cvt_out[i], Mux(tab_valid, tab_out[i], mov_out[16 * i : 16 * i + 16])
                )
            )
        return m


class VfuLane(wiring.Component):
    """One lane of the :class:`Vfu` (built by it): the FP16 -> FP32 widening of ``a`` and
    ``b``, operand isolation, the lane's :class:`~dfx.rtl.arith.Fp32Add`,
    :class:`~dfx.rtl.arith.fp32_mul.Fp32Mul` (the multiplier bank) and
    :class:`~dfx.rtl.arith.Fp32ToFp16` (the shared converter), added through ``leaf``.

    Ports: ``a``, ``b`` (FP16), ``s`` (the isolated FP32 scalar), ``en`` and the VFU's decoded
    op flags (``a_on``, ``b_on``: isolation; ``add_v``, ``mul_v``, ``tab_v``: the bank issued;
    ``scalar_b``, ``negate_b``, ``mul_b16``, ``mul_s``, ``square``; ``tag_sfu``: the
    multiplier's result at its output goes to SFU_V) in; ``result`` (the converter's FP16),
    ``cvt_valid``, ``prod`` (the multiplier's FP32 result), ``mul_valid``, ``tab_a`` (the
    table unit's isolated input) out. Adder ``add_latency``, multiplier ``mul_latency``,
    converter ``cvt_latency`` register stages.
    """

    FLAGS = ("a_on", "b_on", "add_v", "mul_v", "tab_v", "scalar_b", "negate_b", "mul_b16",
             "mul_s", "square", "tag_sfu")

    def __init__(self, add_latency: int, mul_latency: int, cvt_latency: int, *,
                 leaf: Leaf = add_leaf):
        self._add = add_latency
        self._mul = mul_latency
        self._cvt = cvt_latency
        self._leaf = leaf
        super().__init__(
            {
                "en": In(1, init=1),
                "a": In(16),
                "b": In(16),
                "s": In(32),
                **{f: In(1) for f in self.FLAGS},
                "result": Out(16),
                "cvt_valid": Out(1),
                "prod": Out(32),
                "mul_valid": Out(1),
                "tab_a": Out(16),
            }
        )

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        a16 = wire(m, Mux(self.a_on, self.a, 0), "a_iso")
        b16 = wire(m, Mux(self.b_on, self.b, 0), "b_iso")
        a32 = widen16(m, a16, "a")
        b32 = widen16(m, b16, "b")
        s32 = self.s

        def gate(on: Value, x: Value, name: str) -> Value:
            return wire(m, Mux(on, x, 0), name)

        add = self._leaf(m, "add", Fp32Add(self._add))
        mul = self._leaf(m, "mul", Fp32Mul(self._mul))
        cvt = self._leaf(m, "cvt", Fp32ToFp16(self._cvt))
        m.d.comb += [unit.en.eq(self.en) for unit in (add, mul, cvt)]

        b_add = Mux(self.scalar_b, s32, b32)
        one32 = Const(0x3F800000, 32)  # vacc: a * 1 = f32(a)
        mul_b = Mux(self.mul_b16, b32, Mux(self.mul_s, s32, Mux(self.square, a32, one32)))
        m.d.comb += [
            add.a.eq(gate(self.add_v, a32, "add_a")),
            add.b.eq(gate(self.add_v, Cat(b_add[:31], b_add[31] ^ self.negate_b), "add_b")),
            add.valid_in.eq(self.add_v),
            mul.a.eq(gate(self.mul_v, a32, "mul_a")),
            mul.b.eq(gate(self.mul_v, mul_b, "mul_b")),
            mul.valid_in.eq(self.mul_v),
            self.tab_a.eq(gate(self.tab_v, a16, "tab_a")),
            self.prod.eq(mul.result),
        ]
        # one converter per lane: at most one of the two banks delivers in a cycle
        to_cvt_mul = mul.valid_out & ~self.tag_sfu
        m.d.comb += [
            cvt.a.eq(Mux(add.valid_out, add.result, mul.result)),
            cvt.valid_in.eq(add.valid_out | to_cvt_mul),
            self.result.eq(cvt.result),
            self.cvt_valid.eq(cvt.valid_out),
            self.mul_valid.eq(mul.valid_out),
        ]
        return m


def _table(fn: str, spec: Any) -> gtab.PwlTable:
    return gtab.default_table(fn) if spec is None else gtab.table_from_spec(fn, spec)
