"""``Mfu``: the Matrix Function Unit of the MPU (DFX §2.4), one d x l weight tile per cycle.

The d-element input portion is broadcast to l lanes; lane j reduces it against its weight
column with one :class:`~dfx.rtl.arith.block_dot.BlockDot` (d exact FP16 products, aligned to
the largest exponent, summed exactly by an integer tree, rounded once to FP32: the golden
``block_dot32``) and accumulates the tile sums of the reduction tiles kt = 0..KT-1 in FP32 with
one :class:`~dfx.rtl.arith.Fp32Add`: ``acc = ((t_0 + t_1) + t_2) + ...`` exactly as the golden
``matvec`` (docs/numerics.md §3, §4).

Accumulation at one tile per cycle: the adder has ``add_latency`` = A register stages, so two
tiles of the same output group must enter it at least A cycles apart. Output groups are
therefore interleaved (DFX §2.3 zig-zag): each in-flight group owns one of ``slots`` partial-sum
registers per lane (``slots`` >= A), and the issuer sends tiles so that consecutive tiles of one
group are >= A en-cycles apart (:func:`dfx.rtl.mpu.tile_order`; the :class:`~.Mpu` inserts
bubbles where a short block cannot keep that distance). A tile's ``first`` flag starts a sum
(the adder adds -0, an identity), ``last`` sends it out instead of back to its slot.
"""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Array, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..arith.block_dot import BlockDot
from ..arith.fp32_add import Fp32Add
from ..arith.fpformat import check_latency, check_pow2
from ..arith.pwl_table import delay
from ..leaves import Leaf, add_leaf

__all__ = ["Mfu", "NEG_ZERO32"]

NEG_ZERO32 = 0x80000000
"""FP32 -0: ``v + (-0) = v`` for every v (NaN stays the canonical NaN), the identity operand."""


class Mfu(wiring.Component):
    """l lanes of d-input MAC trees with an interleaved FP32 accumulator (see the module doc).

    Ports (all en-gated like the arithmetic blocks: inputs taken on en-high cycles, ``en`` low
    freezes everything):

    * in: ``x`` (d FP16), ``w`` (l x d FP16, ``w[j][i]`` = weight of input i in lane j),
      ``valid_in``, ``first`` (kt = 0), ``last`` (kt = KT-1), ``slot`` (partial-sum slot of the
      tile's output group), ``en``;
    * out: ``acc`` (l FP32 sums), ``valid_out`` (high for the result of a ``last`` tile only).

    ``latency`` = mul_latency + dot_latency (the lane dot product) + add_latency (the
    accumulator) en-cycles from a ``last`` tile to its group's sums.
    """

    def __init__(
        self,
        d: int,
        l: int,  # noqa: E741
        *,
        mul_latency: int,
        dot_latency: int,
        add_latency: int,
        slots: int,
        leaf: Leaf = add_leaf,
    ):
        self._leaf = leaf
        self._d = check_pow2(d, "d")
        self._l = check_pow2(l, "l")
        self._mul_latency = check_latency(mul_latency, name="mul_latency")
        self._dot_latency = check_latency(dot_latency, name="dot_latency")
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
        """The lane dot product: from a tile to its lane sums (:class:`BlockDot` latency)."""
        return BlockDot.pipeline_latency(self._mul_latency, self._dot_latency)

    @property
    def dot_latency(self) -> int:
        return self._dot_latency

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
            dot = leaf(m, f"dot{j}", BlockDot(d, mul_latency=self._mul_latency,
                                              dot_latency=self._dot_latency))
            m.d.comb += [dot.a[i].eq(self.x[i]) for i in range(d)]
            m.d.comb += [dot.b[i].eq(self.w[j][i]) for i in range(d)] + [dot.en.eq(en)]
            tree_sum = dot.result

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
