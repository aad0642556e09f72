"""``AdderTree``: n FP32 values summed by a pipelined tree of :class:`Fp32Add` (DFX §IV-C).

Each DFX MPU lane reduces its d = 64 products with an adder tree of depth log2(d) = 6 (paper
§IV-C; digest §2.4); the SFU_V accumulation uses one too (§IV-D). Level k adds adjacent pairs,
``s[i] = add(p[2i], p[2i+1])``, which fixes the FP32 summation order: the golden model's
``tree_sum32`` (docs/numerics.md). Deviation from DFX: the adders are FP32, not FP16.
"""

from __future__ import annotations

import numbers
from typing import Any

from amaranth.hdl import Const, Module, Mux
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .fp32_add import DEFAULT_ADD_LATENCY, Fp32Add
from .fpformat import FP32, check_latency, unpack

__all__ = ["AdderTree"]


class AdderTree(wiring.Component):
    """Sum of ``n`` FP32 ``inputs`` (n a power of two) -> FP32 ``result``, one set per cycle.

    Ports: ``inputs`` (array of n 32-bit patterns), ``valid_in``, ``en`` (clock enable, default
    1) in; ``result`` (32-bit pattern), ``valid_out`` out. ``depth`` = log2(n) levels of
    :class:`Fp32Add` with ``add_latency`` registers each (no registers between levels), so
    ``latency`` = depth * add_latency. Same timing contract as :class:`Fp32Add`: one input set
    per en-high cycle, ``en`` low freezes every register, add_latency 0 is combinational.
    n = 1 is a wire (NaN still canonicalised), latency 0.
    """

    def __init__(self, n: int, add_latency: int = DEFAULT_ADD_LATENCY):
        if not isinstance(n, numbers.Integral) or isinstance(n, bool):
            raise TypeError(f"n must be a power of two >= 1, not {n!r}")
        if n < 1 or n & (n - 1):
            raise ValueError(f"n must be a power of two >= 1, not {n!r}")
        self._n = int(n)
        self._add_latency = check_latency(add_latency, name="add_latency")
        super().__init__(
            {
                "inputs": In(32).array(n),
                "valid_in": In(1),
                "en": In(1, init=1),
                "result": Out(32),
                "valid_out": Out(1),
            }
        )

    @classmethod
    def from_core(cls, core: Any) -> AdderTree:
        """One MPU lane's tree of a :class:`dfx.isa.config.CoreConfig`: n = ``core.mpu.d``,
        adders of ``core.mpu.add_latency``."""
        return cls(core.mpu.d, core.mpu.add_latency)

    @property
    def n(self) -> int:
        return self._n

    @property
    def depth(self) -> int:
        """Number of adder levels, log2(n)."""
        return self._n.bit_length() - 1

    @property
    def add_latency(self) -> int:
        return self._add_latency

    @property
    def latency(self) -> int:
        """Register stages from inputs to result: depth * add_latency."""
        return self.depth * self._add_latency

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        level = list(self.inputs)
        valid = self.valid_in
        for k in range(self.depth):
            nxt = []
            for i in range(len(level) // 2):
                add = Fp32Add(self._add_latency)
                m.submodules[f"add_l{k}_{i}"] = add
                m.d.comb += [
                    add.a.eq(level[2 * i]),
                    add.b.eq(level[2 * i + 1]),
                    add.valid_in.eq(valid),
                    add.en.eq(self.en),
                ]
                nxt.append(add.result)
            valid = m.submodules[f"add_l{k}_0"].valid_out
            level = nxt
        (result,) = level
        if self.depth == 0:  # a lone input: only canonicalise NaN, as every adder output is
            result = Mux(unpack(m, FP32, result, "x").is_nan, Const(FP32.nan_bits, 32), result)
        m.d.comb += [self.result.eq(result), self.valid_out.eq(valid)]
        return m
