"""``Mfu``: the Matrix Function Unit of the MPU (DFX §2.4), one d x l weight tile per cycle.

The d-element input portion is broadcast to l lanes; lane j multiplies it by its weight column
(d :class:`~dfx.rtl.arith.Fp16Mul`, exact FP32 products), reduces the products with a tree of
:class:`~dfx.rtl.arith.Fp32Add` (pairwise adjacent, depth log2 d: the structure of
:class:`~dfx.rtl.arith.AdderTree`, built here so leaves can be black boxes) and accumulates the tree
sums of the reduction tiles kt = 0..KT-1 in FP32 with one :class:`~dfx.rtl.arith.Fp32Add`:
``acc = ((t_0 + t_1) + t_2) + ...`` exactly as the golden ``matvec`` (docs/numerics.md).

Accumulation at one tile per cycle: the adder has ``add_latency`` = A register stages, so two
tiles of the same output group must enter it at least A cycles apart. Output groups are
therefore interleaved (DFX §2.3 zig-zag): each in-flight group owns one of ``slots`` partial-sum
registers per lane (``slots`` >= A), and the issuer sends tiles so that consecutive tiles of one
group are >= A en-cycles apart (:func:`dfx.rtl.mpu.tile_order`; the :class:`~.Mpu` inserts
bubbles where a short block cannot keep that distance). A tile's ``first`` flag starts a sum
(the adder adds -0, an identity), ``last`` sends it out instead of back to its slot.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from amaranth.hdl import Array, ClockSignal, Const, Instance, Module, Mux, ResetSignal, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..arith.fp16_mul import Fp16Mul
from ..arith.fp32_add import Fp32Add
from ..arith.fpformat import FP32, check_latency, unpack
from ..arith.pwl_table import delay

__all__ = ["BlackboxLeaves", "Leaf", "Mfu", "NEG_ZERO32", "add_leaf"]

Leaf = Callable[[Module, str, Any], Any]
"""How a block adds an arithmetic leaf (``Fp16Mul``, ``Fp32Add``, ...): ``leaf(m, name, comp)``
returns the object whose ports the block connects."""


def add_leaf(m: Module, name: str, comp: Any) -> Any:
    """The default :data:`Leaf`: ``comp`` becomes a submodule (simulation, flat Verilog)."""
    m.submodules[name] = comp
    return comp


class BlackboxLeaves:
    """A :data:`Leaf` that instantiates each leaf as a Verilog module of its own, generated
    once per distinct (class, latency) by :meth:`verilog`, instead of elaborating all ~2000
    copies (the dfx-u280 MPU has 1024 multipliers and ~1100 adders): Amaranth's netlist
    builder would take many minutes for the flat design.

    The leaf's port signals stay the parent's wires; an ``Instance`` drives its outputs.
    """

    def __init__(self, prefix: str):
        self._prefix = prefix
        self._kinds: dict[str, tuple[type, int]] = {}

    def __call__(self, m: Module, name: str, comp: Any) -> Any:
        kind = f"{self._prefix}_{type(comp).__name__.lower()}_l{comp.latency}"
        self._kinds.setdefault(kind, (type(comp), comp.latency))
        ports: dict[str, Any] = {}
        for pname, member in comp.signature.members.items():
            ports[("i_" if member.flow == In else "o_") + pname] = getattr(comp, pname)
        if comp.latency:
            ports["i_clk"], ports["i_rst"] = ClockSignal(), ResetSignal()
        m.submodules[name] = Instance(kind, **ports)
        comp._MustUse__used = True  # stands in for the leaf, never elaborated itself
        return comp

    @property
    def kinds(self) -> dict[str, tuple[type, int]]:
        """Verilog module name -> (leaf class, latency) of every leaf instantiated so far."""
        return dict(self._kinds)

    def verilog(self) -> str:
        """The Verilog modules of every leaf kind."""
        from amaranth.back import verilog

        return "".join(
            verilog.convert(cls(lat), name=kind, emit_src=False)
            for kind, (cls, lat) in sorted(self._kinds.items())
        )


def adder_tree(
    m: Module, leaf: Leaf, inputs: list, latency: int, en: Any, name: str
) -> tuple[Any, int]:
    """The golden adder tree (``tree_sum32``; :class:`~dfx.rtl.arith.AdderTree`'s structure):
    level k adds adjacent pairs. Returns (result, latency). One input: NaN canonicalised."""
    level = list(inputs)
    k = 0
    while len(level) > 1:
        nxt = []
        for i in range(len(level) // 2):
            add = leaf(m, f"{name}_l{k}_{i}", Fp32Add(latency))
            m.d.comb += [add.a.eq(level[2 * i]), add.b.eq(level[2 * i + 1]), add.en.eq(en)]
            nxt.append(add.result)
        level, k = nxt, k + 1
    (result,) = level
    if k == 0:
        result = Mux(unpack(m, FP32, result, f"{name}_x").is_nan, Const(FP32.nan_bits, 32), result)
    return result, k * latency


NEG_ZERO32 = 0x80000000
"""FP32 -0: ``v + (-0) = v`` for every v (NaN stays the canonical NaN), the identity operand."""


def check_pow2(value: object, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1 or value & (value - 1):
        raise ValueError(f"{name} must be a power of two, not {value!r}")
    return value


class Mfu(wiring.Component):
    """l lanes of d-input MAC trees with an interleaved FP32 accumulator (see the module doc).

    Ports (all en-gated like the arithmetic blocks: inputs taken on en-high cycles, ``en`` low
    freezes everything):

    * in: ``x`` (d FP16), ``w`` (l x d FP16, ``w[j][i]`` = weight of input i in lane j),
      ``valid_in``, ``first`` (kt = 0), ``last`` (kt = KT-1), ``slot`` (partial-sum slot of the
      tile's output group), ``en``;
    * out: ``acc`` (l FP32 sums), ``valid_out`` (high for the result of a ``last`` tile only).

    ``latency`` = mul_latency + log2(d) * add_latency + add_latency en-cycles from a ``last``
    tile to its group's sums.
    """

    def __init__(
        self,
        d: int,
        l: int,  # noqa: E741
        *,
        mul_latency: int,
        add_latency: int,
        slots: int,
        leaf: Leaf = add_leaf,
    ):
        self._leaf = leaf
        self._d = check_pow2(d, "d")
        self._l = check_pow2(l, "l")
        self._mul_latency = check_latency(mul_latency, name="mul_latency")
        self._add_latency = check_latency(add_latency, 1, name="add_latency")
        self._slots = check_latency(slots, self._add_latency, name="slots")
        super().__init__(
            {
                "x": In(16).array(d),
                "w": In(16).array(l, d),
                "valid_in": In(1),
                "first": In(1),
                "last": In(1),
                "slot": In(range(self._slots)),
                "en": In(1, init=1),
                "acc": Out(32).array(l),
                "valid_out": Out(1),
            }
        )

    @property
    def d(self) -> int:
        return self._d

    @property
    def l(self) -> int:  # noqa: E743 - the paper's name
        return self._l

    @property
    def slots(self) -> int:
        return self._slots

    @property
    def tree_latency(self) -> int:
        """Multiplier plus adder tree: from a tile to its lane sums."""
        return self._mul_latency + (self._d.bit_length() - 1) * self._add_latency

    @property
    def latency(self) -> int:
        return self.tree_latency + self._add_latency

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        en, d, l = self.en, self._d, self._l  # noqa: E741
        lt = self.tree_latency

        # tags of the tile, delayed to the accumulator input and output
        def tag(value, n, name, reset_less=True):
            return delay(m, value, n, en, name, reset_less=reset_less)

        v_t = tag(self.valid_in, lt, "v_t", reset_less=False)
        first_t = tag(self.first, lt, "first_t")
        last_t = tag(self.last, lt, "last_t")
        slot_t = tag(self.slot, lt, "slot_t")
        v_o = tag(v_t, self._add_latency, "v_o", reset_less=False)
        last_o = tag(last_t, self._add_latency, "last_o")
        slot_o = tag(slot_t, self._add_latency, "slot_o")
        # the adder's output is the immediate predecessor of the tree's sum of the same slot
        bypass = Signal(name="bypass")
        m.d.comb += bypass.eq(v_o & ~last_o & (slot_o == slot_t))

        leaf = self._leaf
        for j in range(l):
            products = []
            for i in range(d):
                mul = leaf(m, f"mul{j}_{i}", Fp16Mul(self._mul_latency))
                m.d.comb += [mul.a.eq(self.x[i]), mul.b.eq(self.w[j][i]), mul.en.eq(en)]
                products.append(mul.result)
            tree_sum, _ = adder_tree(m, leaf, products, self._add_latency, en, f"tree{j}")

            acc = leaf(m, f"acc{j}", Fp32Add(self._add_latency))
            part = Array(Signal(32, name=f"part{j}_{s}") for s in range(self._slots))
            prev = Mux(bypass, acc.result, part[slot_t])
            m.d.comb += [
                acc.a.eq(tree_sum),
                acc.b.eq(Mux(first_t, NEG_ZERO32, prev)),
                acc.en.eq(en),
                self.acc[j].eq(acc.result),
            ]
            with m.If(en & v_o & ~last_o):
                m.d.sync += part[slot_o].eq(acc.result)

        m.d.comb += self.valid_out.eq(v_o & last_o)
        return m
