"""``Vpu``: the Vector Processing Unit, VFU + SFU_V (DFX §2.5), with stream interfaces.

A command (an ISA vector or scalar opcode, a count ``n`` and two FP32 scalars) consumes ``n``
d-wide FP16 vectors from ``a`` (and ``b`` for vadd/vsub/vmul) and produces ``n`` vectors on
``y`` (element-wise ops) or one 32-bit value on ``result`` (reductions and scalar ops).
Numerics are the golden model's, bit for bit (docs/numerics.md); see :mod:`.vfu`, :mod:`.sfu`.
"""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..arith.fpformat import check_latency
from ..leaves import Leaf, LeafModules, add_leaf, mark_used
from .sfu import INDEX_BITS, SfuV
from .vfu import VFU_OPS, Vfu, VpuOp, check_pow2

__all__ = ["Command", "Vpu", "VpuOp"]

Command = data.StructLayout(
    {
        "op": VpuOp,
        "n": unsigned(INDEX_BITS),
        "s": unsigned(32),
        "t": unsigned(32),
    }
)
"""A VPU command: ``op``; ``n`` = vectors (elements for vargmax); ``s`` = the FP32 scalar of
vadds/vsubs/vmuls and the first operand of scalar ops; ``t`` = the second scalar operand."""

_BINARY = (VpuOp.VADD, VpuOp.VSUB, VpuOp.VMUL)
_ACC = (VpuOp.VACC, VpuOp.VACCSQ)
_MAX = (VpuOp.VMAX, VpuOp.VARGMAX)
_SCALAR = (VpuOp.SADD, VpuOp.SSUB, VpuOp.SMUL, VpuOp.SRECIP, VpuOp.SRSQRT)


class Vpu(wiring.Component):
    """The VPU (DFX §2.5): :class:`~.vfu.Vfu` + :class:`~.sfu.SfuV` behind a command sequencer.

    Streams (``amaranth.lib.stream``, valid/ready; a transfer when both are high):

    * ``cmd`` (in, :data:`Command`); ``a``, ``b`` (in, d x FP16): operand vectors;
    * ``y`` (out, d x FP16): element-wise results, in order;
    * ``result`` (out, 32 bits): FP32 result of vacc/vaccsq/vmax/sadd/ssub/smul/srecip/srsqrt,
      or the unsigned argmax index of vargmax.

    Timing: the next command is taken in the cycle the current one issues its last vector, so
    vectors stream back to back, one per cycle (vacc/vaccsq too: the exact accumulator takes one
    vector per cycle, :attr:`acc_interval` = 1; a scalar op takes one issue cycle).
    Element-wise results appear :attr:`latencies` cycles after issue; an op with a shorter
    latency than its predecessor waits for the difference, so results never collide.
    Back-pressure: ``y`` valid and not ready freezes the whole pipeline (one clock enable);
    ``result`` is a held register, and the next scalar-result command waits until it is taken.
    ``n = 0``: element-wise ops do nothing, reductions give +0 (index 0). Parameters: ``vpu.*``
    latencies of the core configuration; ``cvt_latency`` of each element-wise latency is the
    FP32 -> FP16 rounding; the squares of vaccsq use the multiplier bank
    (``vpu.square_latency`` is not used); ``acc_*_latency``: the exact accumulation of
    vacc/vaccsq (:mod:`.accumulate`, docs/numerics.md §5). ``leaf``: how the VFU adds each
    lane's arithmetic blocks and table units (:mod:`dfx.rtl.leaves`; :meth:`verilog` and the
    core's Verilog generation pass black boxes).
    """

    def __init__(
        self,
        d: int,
        *,
        add_latency: int,
        mul_latency: int,
        table_latency: int,
        bypass_latency: int,
        scalar_latency: int,
        cvt_latency: int = 1,
        acc_tree_latency: int = 1,
        acc_add_latency: int = 1,
        acc_convert_latency: int = 1,
        tables: dict[str, Any] | None = None,
        leaf: Leaf = add_leaf,
    ):
        self._params = {k: v for k, v in locals().items()
                        if k not in ("self", "leaf", "__class__")}
        self._d = check_pow2(d, "d")
        tables = dict(tables or {})
        unknown = sorted(set(tables) - {"exp", "gelu", "recip", "rsqrt"})
        if unknown:
            raise ValueError(
                f"tables: unknown function {unknown[0]!r} (allowed: exp, gelu, recip, rsqrt)"
            )
        self._vfu = Vfu(
            d,
            add_latency=add_latency,
            mul_latency=mul_latency,
            table_latency=table_latency,
            bypass_latency=bypass_latency,
            cvt_latency=cvt_latency,
            exp_table=tables.get("exp"),
            gelu_table=tables.get("gelu"),
            leaf=leaf,
        )
        self._sfu = SfuV(
            d,
            scalar_latency=scalar_latency,
            acc_tree_latency=acc_tree_latency,
            acc_add_latency=acc_add_latency,
            acc_convert_latency=acc_convert_latency,
            recip_table=tables.get("recip"),
            rsqrt_table=tables.get("rsqrt"),
        )
        self._lat = {
            "add_latency": check_latency(add_latency, 1, "add_latency"),
            "mul_latency": check_latency(mul_latency, 1, "mul_latency"),
            "table_latency": table_latency,
            "bypass_latency": bypass_latency,
            "scalar_latency": scalar_latency,
            "cvt_latency": cvt_latency,
            "acc_tree_latency": acc_tree_latency,
            "acc_add_latency": acc_add_latency,
            "acc_convert_latency": acc_convert_latency,
        }
        v16 = data.ArrayLayout(16, d)
        super().__init__(
            {
                "cmd": In(stream.Signature(Command)),
                "a": In(stream.Signature(v16)),
                "b": In(stream.Signature(v16)),
                "y": Out(stream.Signature(v16)),
                "result": Out(stream.Signature(32)),
            }
        )

    @classmethod
    def from_core(cls, core: Any, **overrides: Any) -> Vpu:
        """The VPU of a :class:`dfx.isa.config.CoreConfig`: d = ``core.d``, latencies from
        ``core.vpu`` (including ``acc_tree/add/convert_latency``), tables from ``core.tables``.
        Keyword arguments override any constructor argument."""
        v = core.vpu
        kw: dict[str, Any] = {
            "add_latency": v.add_latency,
            "mul_latency": v.mul_latency,
            "table_latency": v.table_latency,
            "bypass_latency": v.bypass_latency,
            "scalar_latency": v.scalar_latency,
            "acc_tree_latency": v.acc_tree_latency,
            "acc_add_latency": v.acc_add_latency,
            "acc_convert_latency": v.acc_convert_latency,
            "tables": {fn: getattr(core.tables, fn) for fn in ("exp", "gelu", "recip", "rsqrt")},
        }
        kw.update(overrides)
        d = kw.pop("d", core.d)
        return cls(d, **kw)

    # ---- read-only parameters ----------------------------------------------------------------
    @property
    def d(self) -> int:
        return self._d

    @property
    def add_latency(self) -> int:
        return self._lat["add_latency"]

    @property
    def mul_latency(self) -> int:
        return self._lat["mul_latency"]

    @property
    def table_latency(self) -> int:
        return self._lat["table_latency"]

    @property
    def bypass_latency(self) -> int:
        return self._lat["bypass_latency"]

    @property
    def scalar_latency(self) -> int:
        return self._lat["scalar_latency"]

    @property
    def cvt_latency(self) -> int:
        return self._lat["cvt_latency"]

    @property
    def acc_tree_latency(self) -> int:
        return self._lat["acc_tree_latency"]

    @property
    def acc_add_latency(self) -> int:
        return self._lat["acc_add_latency"]

    @property
    def acc_convert_latency(self) -> int:
        return self._lat["acc_convert_latency"]

    @property
    def tables(self) -> dict[str, Any]:
        """The golden ``PwlTable`` of each function (exp, gelu, recip, rsqrt)."""
        return {**self._vfu.tables, **self._sfu.tables}

    @property
    def latencies(self) -> dict[VpuOp, int]:
        """Element-wise ops: cycles from a vector's issue to its result on ``y``."""
        return self._vfu.latencies

    @property
    def acc_interval(self) -> int:
        """Cycles between the vectors of vacc/vaccsq: 1 (the exact accumulator has no chain)."""
        return self._sfu.acc_interval

    @property
    def empty_result_latency(self) -> int:
        """Cycles from a reduction over n = 0 vectors (it takes the VPU for one cycle) to
        ``result.valid`` (+0, index 0): the result register."""
        return 1

    def result_latency(self, op: VpuOp, n: int = 1) -> int:
        """Cycles from the issue of a reduction's last vector (a scalar op's issue) to
        ``result.valid``, with ``n`` vectors (vacc/vaccsq: prod_latency + acc_tree_latency +
        acc_add_latency + acc_convert_latency, whatever ``n``)."""
        op = VpuOp(op)
        if op in _SCALAR:
            return self._sfu.scalar_latencies[op]
        if op in _ACC:
            return self._vfu.prod_latency + self._sfu.acc_latency
        if op in _MAX:
            return self._sfu.max_tree_latency + 1
        raise ValueError(f"op: {op.name} has no scalar result")

    def verilog(self, name: str = "vpu", *, flat: bool = False) -> str:
        """Verilog of this VPU as module ``name``. Default: each distinct arithmetic leaf of
        the VFU lanes and table units is one module (``<name>_<leaf>_l<n>``), converted once
        and instantiated d times (:class:`~dfx.rtl.leaves.LeafModules`); ``flat=True``
        converts the whole design in one piece. Both describe the same circuit."""
        from amaranth.back import verilog

        from ..cycle_check import fast_cycle_check

        with fast_cycle_check():
            if flat:
                return verilog.convert(self, name=name, emit_src=False)
            mark_used(self)  # the twin below stands in for this instance
            leaves = LeafModules(name)
            twin = Vpu(**self._params, leaf=leaves)
            top = verilog.convert(twin, name=name, emit_src=False)
            return top + "".join(leaves.verilog().values())

    # ---- hardware ------------------------------------------------------------------------
    def elaborate(self, platform: Any) -> Module:
        m = Module()
        d = self._d
        m.submodules.vfu = vfu = self._vfu
        m.submodules.sfu = sfu = self._sfu

        en = Signal(name="en")
        m.d.comb += en.eq(~(self.y.valid & ~self.y.ready))

        # the current command
        busy = Signal(name="busy")
        op = Signal(VpuOp, name="op")
        remaining = Signal(INDEX_BITS, name="remaining")  # vectors still to issue
        elems = Signal(INDEX_BITS, name="elems")  # vargmax: elements not yet issued
        base = Signal(INDEX_BITS, name="base")  # element index of the next vector's lane 0
        first = Signal(name="first")
        s = Signal(32, name="s")
        t = Signal(32, name="t")

        def op_in(*ops: VpuOp) -> Signal:
            sig = Signal(name="is_" + "_".join(o.name.lower() for o in ops))
            m.d.comb += sig.eq(Cat(*(op == o for o in ops)).any())
            return sig

        vec_out = op_in(*VFU_OPS)
        needs_b = op_in(*_BINARY)
        is_acc = op_in(*_ACC)
        is_max = op_in(*_MAX)
        is_red = Signal(name="is_red")
        m.d.comb += is_red.eq(is_acc | is_max)
        is_scalar = op_in(*_SCALAR)
        has_work = Signal(name="has_work")
        last = Signal(name="last")
        m.d.comb += [has_work.eq(remaining != 0), last.eq(remaining == 1)]

        # output-slot rule: an op of latency L issues only if L + age > L_prev, where age counts
        # en-cycles since the previous element-wise issue of latency L_prev
        lats = self._vfu.latencies
        sat = max(lats.values()) + 1
        lat_new = Signal(range(sat + 1), name="lat_new")
        with m.Switch(op):
            for o, lat in lats.items():
                with m.Case(o):
                    m.d.comb += lat_new.eq(lat)
        last_lat = Signal(range(sat + 1), name="last_lat")
        age = Signal(range(sat + 1), init=sat, name="age")
        gap_ok = Signal(name="gap_ok")
        m.d.comb += gap_ok.eq(age + lat_new > last_lat)

        sfu_busy = Signal(name="sfu_busy")  # a scalar result is on its way or not yet taken

        fire = Signal(name="fire")  # one vector leaves a (and b) into the datapath
        fire_sc = Signal(name="fire_sc")
        fire_zero = Signal(name="fire_zero")
        noop = Signal(name="noop")
        done = Signal(name="done")
        m.d.comb += [
            fire.eq(
                busy
                & en
                & (vec_out | is_red)
                & has_work
                & self.a.valid
                & (~needs_b | self.b.valid)
                & (~vec_out | gap_ok)
                & ~(is_red & first & sfu_busy)
            ),
            fire_sc.eq(busy & en & is_scalar & ~sfu_busy),
            fire_zero.eq(busy & en & is_red & ~has_work & ~sfu_busy),
            noop.eq(busy & ~is_scalar & ~is_red & ~(vec_out & has_work)),
            done.eq((fire & last) | fire_sc | fire_zero | noop),
            self.a.ready.eq(fire),
            self.b.ready.eq(fire & needs_b),
            self.cmd.ready.eq(~busy | done),
        ]

        with m.If(fire):
            m.d.sync += [
                remaining.eq(remaining - 1),
                first.eq(0),
                base.eq(base + d),
                elems.eq(Mux(elems > d, elems - d, 0)),
            ]
        with m.If(done):
            m.d.sync += busy.eq(0)
        with m.If(self.cmd.valid & self.cmd.ready):
            p = self.cmd.payload
            ceil_vectors = (p.n + (d - 1)) >> (d.bit_length() - 1)
            nvec = Mux(p.op == VpuOp.VARGMAX, ceil_vectors, p.n)
            m.d.sync += [
                busy.eq(1),
                op.eq(p.op),
                remaining.eq(nvec),
                elems.eq(p.n),
                base.eq(0),
                first.eq(1),
                s.eq(p.s),
                t.eq(p.t),
            ]

        with m.If(fire & vec_out):
            m.d.sync += [last_lat.eq(lat_new), age.eq(1)]
        with m.Elif(en & (age != sat)):
            m.d.sync += age.eq(age + 1)

        with m.If((fire & is_red & first) | fire_sc | fire_zero):
            m.d.sync += sfu_busy.eq(1)
        with m.Elif(self.result.valid & self.result.ready):
            m.d.sync += sfu_busy.eq(0)

        # datapath
        m.d.comb += [
            vfu.en.eq(en),
            vfu.valid_in.eq(fire & (vec_out | is_acc)),
            vfu.op.eq(op),
            vfu.a.eq(self.a.payload),
            vfu.b.eq(self.b.payload),
            vfu.s.eq(s),
            vfu.acc_first.eq(first),
            vfu.acc_last.eq(last),
            self.y.payload.eq(vfu.result),
            self.y.valid.eq(vfu.valid_out),
            sfu.en.eq(en),
            sfu.prod.eq(vfu.prod),
            sfu.prod_valid.eq(vfu.prod_valid),
            sfu.prod_first.eq(vfu.prod_first),
            sfu.prod_last.eq(vfu.prod_last),
            sfu.mx_valid.eq(fire & is_max),
            sfu.mx_first.eq(first),
            sfu.mx_last.eq(last),
            sfu.mx_arg.eq(op == VpuOp.VARGMAX),
            sfu.mx_a.eq(self.a.payload),
            sfu.mx_base.eq(base),
            sfu.sc_valid.eq(fire_sc),
            sfu.sc_op.eq(op),
            sfu.sc_a.eq(s),
            sfu.sc_b.eq(t),
            sfu.zero_valid.eq(fire_zero),
        ]
        with m.If(op == VpuOp.VARGMAX):
            m.d.comb += sfu.mx_count.eq(Mux(elems >= d, d, elems))
        with m.Else():
            m.d.comb += sfu.mx_count.eq(d)
        wiring.connect(m, wiring.flipped(self.result), sfu.result)
        return m
