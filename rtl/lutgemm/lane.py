"""``LutLane``: one row lane of the LUT-GEMM unit.

Each en-cycle with ``valid`` the lane takes one lane word: the ``slice = mu * keys`` sign bits of
one row and one bit-plane for the current slice (bit p <-> input p of the slice, 1 = +1). Key t
is bits ``t*mu .. t*mu + mu - 1``; it reads table t (``LUT[key]``, or with the symmetric form
``-LUT[~key]`` when the key's MSB is set), and the ``keys`` values are summed exactly. The sum
is added to the partial group sum of (row, plane) held in the lane's memory at ``addr``
(``first``: the group's first slice, start from 0) and written back: after a group's last slice
the memory holds ``P[G, b, m] = sum_{k in G} s[b, k, m] x_k`` exactly (units of 2^-24).

Timing: the table read and key sum take ``lookup_latency`` registers; the read-modify-write
reads the memory one cycle earlier (synchronous port, transparent to the write port), so a
word may hit the address written by its predecessor in the very next cycle. The lane never
stalls: ``valid`` low is a bubble. A second, synchronous read port (``rd_addr``/``rd_en`` ->
``rd_data`` one cycle later) lets the scale stage read finished sums of the other bank.
"""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..arith.fixed import sum_bits
from ..arith.fpformat import Pipeline, check_latency, check_pow2
from ..arith.pwl_table import delay

__all__ = ["LutLane"]


class LutLane(wiring.Component):
    """Keyed look-ups of one lane word and its exact per-(row, plane) accumulation.

    Parameters: ``mu``, ``keys`` (powers of two), ``symmetric``, ``depth`` (partial sums held:
    2 banks x rows per lane x planes, a power of two), ``max_group`` (inputs per group, sets the
    sum width), ``lookup_latency`` (>= 1).

    Ports in: ``word`` (``mu * keys`` bits), ``tables`` (``[keys][entries]`` signed entries, the
    current slice's), ``valid``, ``first``, ``addr``; ``rd_addr``, ``rd_en``. Out: ``rd_data``.
    """

    def __init__(self, mu: int, keys: int, *, symmetric: bool, depth: int, max_group: int,
                 lookup_latency: int = 1):
        check_pow2(mu, "mu")
        check_pow2(keys, "keys")
        check_pow2(depth, "depth")
        if not isinstance(max_group, int) or max_group < mu * keys:
            raise ValueError(f"max_group must be an integer >= mu * keys, not {max_group!r}")
        self._mu, self._keys, self._symmetric = mu, keys, bool(symmetric)
        self._depth = depth
        self._max_group = max_group
        self._latency = check_latency(lookup_latency, 1, name="lookup_latency")
        entries = 1 << (mu - 1 if symmetric else mu)
        abits = depth.bit_length() - 1
        super().__init__(
            {
                "word": In(mu * keys),
                "tables": In(signed(sum_bits(mu))).array(keys, entries),
                "valid": In(1),
                "first": In(1),
                "addr": In(max(abits, 1)),
                "rd_addr": In(max(abits, 1)),
                "rd_en": In(1),
                "rd_data": Out(signed(self.sum_bits)),
            }
        )

    @classmethod
    def from_core(cls, core: Any) -> LutLane:
        c = core.lutgemm
        depth = 1 << (2 * (c.max_rows // c.lanes) * c.max_q - 1).bit_length()
        return cls(c.mu, c.keys, symmetric=c.symmetric, depth=depth, max_group=c.max_group,
                   lookup_latency=c.lookup_latency)

    @property
    def sum_bits(self) -> int:
        """Width of a group's partial sum (exact for ``max_group`` inputs)."""
        return sum_bits(self._max_group)

    @property
    def word_bits(self) -> int:
        return self._mu * self._keys

    @property
    def latency(self) -> int:
        """Cycles from a lane word to its memory write (the lookup latency)."""
        return self._latency

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        mu, keys = self._mu, self._keys
        p = Pipeline(m, self._latency, 2, Const(1), prefix="lk")

        # step 1: keyed reads (the symmetric form negates on the key's MSB)
        vals = {}
        for t in range(keys):
            key = self.word[t * mu : (t + 1) * mu]
            table = self.tables[t]
            if self._symmetric:
                top = key[mu - 1]
                low = Mux(top, ~key[: mu - 1], key[: mu - 1]) if mu > 1 else Const(0, 1)
                e = Signal(table[0].shape(), name=f"e{t}")
                with m.Switch(low):
                    for i in range(len(table)):
                        with m.Case(i):
                            m.d.comb += e.eq(table[i])
                vals[f"v{t}"] = Mux(top, -e, e)
            else:
                e = Signal(table[0].shape(), name=f"e{t}")
                with m.Switch(key):
                    for i in range(len(table)):
                        with m.Case(i):
                            m.d.comb += e.eq(table[i])
                vals[f"v{t}"] = e
        s = p.cut(**vals)
        # step 2: the key sum (exact)
        total = s["v0"]
        for t in range(1, keys):
            total = total + s[f"v{t}"]
        wsum = sum_bits(mu * keys)
        total = p.cut(total=total.as_signed()[:wsum].as_signed())["total"]

        # read-modify-write of the partial sum: read one cycle ahead, transparent
        mem = Memory(shape=signed(self.sum_bits), depth=self._depth, init=[])
        m.submodules.mem = mem
        wp = mem.write_port()
        rp = mem.read_port(transparent_for=(wp,))
        rd = mem.read_port()
        addr_r = delay(m, self.addr, self._latency - 1, Const(1), "addr_r")
        addr_w = delay(m, addr_r, 1, Const(1), "addr_w")
        valid_w = delay(m, self.valid, self._latency, Const(1), "valid_w", reset_less=False)
        first_w = delay(m, self.first, self._latency, Const(1), "first_w")
        new = Mux(first_w, 0, rp.data) + total
        m.d.comb += [
            rp.addr.eq(addr_r),
            rp.en.eq(1),
            wp.addr.eq(addr_w),
            wp.data.eq(new.as_signed()[: self.sum_bits]),
            wp.en.eq(valid_w),
            rd.addr.eq(self.rd_addr),
            rd.en.eq(self.rd_en),
            self.rd_data.eq(rd.data),
        ]
        return m
