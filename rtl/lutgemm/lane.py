"""``LutLane``: one row lane of the LUT-GEMM unit.

Each en-cycle with ``valid`` the lane takes one lane word: the ``slice = mu * keys`` sign bits of
one row and one bit-plane for the current slice (bit p <-> input p of the slice, 1 = +1). Key t
is bits ``t*mu .. t*mu + mu - 1``; it reads table t (``LUT[key]``, or with the symmetric form
``-LUT[~key]`` when the key's MSB is set), and the ``keys`` values are summed exactly. The sum
is added to the partial group sum of (row, plane) held in the lane's memory at ``addr``
(``first``: the group's first slice, start from 0) and written back: after a group's last slice
the memory holds ``P[G, b, m] = sum_{k in G} s[b, k, m] x_k`` exactly (units of 2^-24).

Cost (docs/lutgemm.md, "Cost"): the symmetric negation is a one's complement, ``-e = ~e + 1``:
the entry is XORed with the key's MSB (one LUT input beside the read multiplexer) and the
``keys`` MSBs, the ``+1``s, are summed into the same exact adder tree as the values, so no
carry chain per key. The memory is two banks (the address MSB), each with one write and one
read port: the lanes accumulate one bank while the scale stage reads the other
(:mod:`.top`), so each bank's read port serves the read-modify-write when the lane word at the
read stage is valid and on that bank, the scale stage otherwise; a two-port bank maps to one
block RAM where two read ports on one memory need two copies.

Timing: the table read and key sum take ``lookup_latency`` registers (the key sum's last
adder level is in the accumulator's cycle, before its adder); the read-modify-write
reads the memory one cycle earlier (synchronous port; a read that meets the write of the same
address takes the written sum from a forwarding register, as a transparent port would), so a
word may hit the address written by its predecessor in the very next cycle. The lane never
stalls: ``valid`` low is a bubble. A second, synchronous read (``rd_addr``/``rd_en`` ->
``rd_data`` one cycle later, held while ``rd_en`` is low) lets the scale stage read finished
sums of the other bank; a read of the bank the lanes accumulate in the same cycles is
undefined (the unit never does one it uses: :mod:`.top`).
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
        if depth < 4:
            raise ValueError(f"depth must be at least 4 (two banks of two words), not {depth}")
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

    def _add_level(self, m: Module, terms: list[Any], cins: list[Any], level: int
                   ) -> list[Any]:
        """One level of the key-sum tree: pairs of ``terms`` added, each with one of ``cins``
        (popped) as its carry-in; the sums exact at ``2^level`` look-ups."""
        width = sum_bits(self._mu << level) + 1
        out = []
        for i in range(0, len(terms), 2):
            acc = Signal(signed(width), name=f"ks{level}_{i // 2}", attrs={"keep": 1})
            add = terms[i] + terms[i + 1]
            if cins:
                add = add + cins.pop()
            m.d.comb += acc.eq(add)
            out.append(acc)
        return out

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        mu, keys = self._mu, self._keys
        # three steps: keyed reads, the key sum's first adder level, its other levels but the
        # last; the last level is added in the accumulator's cycle. With lookup_latency 2 the
        # first register follows the first adder level (half the values of the reads)
        p = Pipeline(m, self._latency, 3, Const(1), prefix="lk")

        # step 1: keyed reads; the symmetric form negates on the key's MSB in one's
        # complement (XOR), its +1 goes into the key sum
        vals = {}
        for t in range(keys):
            key = self.word[t * mu : (t + 1) * mu]
            table = self.tables[t]
            if self._symmetric:
                top = key[mu - 1]
                low = (key[: mu - 1] ^ top.replicate(mu - 1)) if mu > 1 else Const(0, 1)
                e = Signal(table[0].shape(), name=f"e{t}")
                with m.Switch(low):
                    for i in range(len(table)):
                        with m.Case(i):
                            m.d.comb += e.eq(table[i])
                vals[f"v{t}"] = (e.as_unsigned() ^ top.replicate(len(e))).as_signed()
                vals[f"n{t}"] = top
            else:
                e = Signal(table[0].shape(), name=f"e{t}")
                with m.Switch(key):
                    for i in range(len(table)):
                        with m.Case(i):
                            m.d.comb += e.eq(table[i])
                vals[f"v{t}"] = e
        s = p.cut(**vals)
        # steps 2, 3: the key sum (exact): a balanced tree of two-operand adders, each taking
        # one one's-complement correction as its carry-in; the one left over goes to the
        # accumulator's adder. Each sum is kept (``keep``) so that synthesis maps carry chains
        # with the XOR in their LUTs, not one carry-save tree of every operand.
        cins = [s[f"n{t}"] for t in range(keys)] if self._symmetric else []
        terms = [s[f"v{t}"] for t in range(keys)]
        level = 0
        for step in (2, 3):
            while len(terms) > 2 and (step == 3 or level == 0):
                level += 1
                terms = self._add_level(m, terms, cins, level)
            s = p.cut(**{f"t{i}": v for i, v in enumerate(terms)},
                      **{f"c{i}": v for i, v in enumerate(cins)})
            terms = [s[f"t{i}"] for i in range(len(terms))]
            cins = [s[f"c{i}"] for i in range(len(cins))]
        if len(terms) == 2:  # the tree's last level, in the accumulator's cycle
            terms = self._add_level(m, terms, cins, level + 1)
        wsum = sum_bits(mu * keys) + 1
        total = terms[0].as_signed()[:wsum].as_signed()
        cin = cins[0] if cins else Const(0, 1)

        # read-modify-write of the partial sum: read one cycle ahead; two banks
        # (the address MSB), each read port shared by the lane and the scale stage
        abits = len(self.addr)
        addr_r = delay(m, self.addr, self._latency - 1, Const(1), "addr_r")
        valid_r = delay(m, self.valid, self._latency - 1, Const(1), "valid_r",
                        reset_less=False)
        addr_w = delay(m, addr_r, 1, Const(1), "addr_w")
        valid_w = delay(m, valid_r, 1, Const(1), "valid_w", reset_less=False)
        first_w = delay(m, self.first, self._latency, Const(1), "first_w")
        rd_bank = delay(m, self.rd_addr[abits - 1], 1, self.rd_en, "rd_bank")
        new = Signal(signed(self.sum_bits), name="new")
        rmw = []
        for k in range(2):
            mem = Memory(shape=signed(self.sum_bits), depth=self._depth // 2, init=[])
            m.submodules[f"bank{k}"] = mem
            wp = mem.write_port()
            rp = mem.read_port()  # the lane forwards its own last write (below)
            lane_k = valid_r & (addr_r[abits - 1] == k)
            m.d.comb += [
                rp.addr.eq(Mux(lane_k, addr_r, self.rd_addr)[: abits - 1]),
                rp.en.eq(lane_k | (self.rd_en & (self.rd_addr[abits - 1] == k))),
                wp.addr.eq(addr_w[: abits - 1]),
                wp.data.eq(new),
                wp.en.eq(valid_w & (addr_w[abits - 1] == k)),
            ]
            rmw.append(rp.data)
        # the transparent read: a word whose read met its predecessor's write to the same
        # address takes that sum (one forward for both banks)
        hit = Signal(name="hit")
        fwd = Signal(signed(self.sum_bits), name="fwd")
        m.d.sync += [hit.eq(valid_w & (addr_w == addr_r)), fwd.eq(new)]
        old = Mux(hit, fwd, Mux(addr_w[abits - 1], rmw[1], rmw[0]))
        m.d.comb += [
            new.eq((Mux(first_w, 0, old) + total + cin).as_signed()[: self.sum_bits]),
            self.rd_data.eq(Mux(rd_bank, rmw[1], rmw[0])),
        ]
        return m
