"""``TableBuilder``: the look-up tables of one slice of ``slice = mu * keys`` FP16 inputs.

Each of the ``keys`` tables covers ``mu`` consecutive inputs ``x_0 .. x_{mu-1}`` of the slice
(table t: inputs t*mu .. t*mu + mu - 1) and holds, for every key i,
``LUT[i] = sum_j (bit j of i ? +x_j : -x_j)`` (key bit j <-> input j, sign bit 1 = +1: the
packed stream's and the official kernel's convention; shared/papers/lutgemm.md §2). The
entries are exact signed integers in units of 2^-24 (:mod:`.fixed`), built by the doubling
recurrence::

    LUT[0] = -sum_j x_j,     LUT[i + 2^j] = LUT[i] + 2 x_j   (0 <= i < 2^j)

With ``symmetric`` only the 2^(mu-1) entries whose key MSB is 0 are built (the recurrence stops
before j = mu - 1): ``LUT[i] = -LUT[~i]`` gives the others at look-up time.

Besides the tables the builder outputs the slice's input sum ``xsum = sum_k x_k`` (= ``-sum_t
LUT_t[0]``, for the offset term) and ``bad`` (an input is inf or NaN; such inputs count as 0).

Pipeline: ``latency`` (``core.lutgemm.build_latency``) register stages spread over the steps
convert, base (``LUT[0]``, ``xsum``) and the ``mu`` or ``mu - 1`` doubling levels. One slice per
en-high cycle; ``en`` low freezes every register (the unit stalls the builder while both table
buffers are full).
"""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Cat, Module, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..arith.fixed import fp16_to_fixed, sum_bits
from ..arith.fpformat import Pipeline, check_latency, check_pow2

__all__ = ["TableBuilder"]


class TableBuilder(wiring.Component):
    """``slice`` FP16 ``x`` -> ``keys`` tables of ``entries`` signed ``entry_bits`` integers.

    Ports: ``x`` (array of ``mu * keys`` FP16 patterns), ``valid_in``, ``en`` (default 1) in;
    ``tables`` (``[keys][entries]`` signed ``entry_bits``), ``xsum`` (signed ``xsum_bits``),
    ``bad``, ``valid_out`` out, ``latency`` en-cycles after the input.
    """

    def __init__(self, mu: int, keys: int, *, symmetric: bool = True, latency: int = 1):
        check_pow2(mu, "mu")
        check_pow2(keys, "keys")
        if mu > 8:
            raise ValueError(f"mu must be at most 8, not {mu}")
        if not isinstance(symmetric, bool):
            raise TypeError(f"symmetric must be a bool, not {symmetric!r}")
        self._mu, self._keys, self._symmetric = mu, keys, symmetric
        self._latency = check_latency(latency)
        super().__init__(
            {
                "x": In(16).array(mu * keys),
                "valid_in": In(1),
                "en": In(1, init=1),
                "tables": Out(signed(self.entry_bits)).array(keys, self.entries),
                "xsum": Out(signed(self.xsum_bits)),
                "bad": Out(1),
                "valid_out": Out(1),
            }
        )

    @classmethod
    def from_core(cls, core: Any) -> TableBuilder:
        c = core.lutgemm
        return cls(c.mu, c.keys, symmetric=c.symmetric, latency=c.build_latency)

    @property
    def mu(self) -> int:
        return self._mu

    @property
    def keys(self) -> int:
        return self._keys

    @property
    def symmetric(self) -> bool:
        return self._symmetric

    @property
    def entries(self) -> int:
        """Stored entries per table: 2^mu, or 2^(mu-1) when symmetric."""
        return 1 << (self._mu - 1 if self._symmetric else self._mu)

    @property
    def entry_bits(self) -> int:
        """Width of an entry: an exact signed sum of mu FP16 values."""
        return sum_bits(self._mu)

    @property
    def xsum_bits(self) -> int:
        return sum_bits(self._mu * self._keys)

    @property
    def levels(self) -> int:
        """Doubling steps of the recurrence."""
        return self._mu - 1 if self._symmetric else self._mu

    @property
    def latency(self) -> int:
        return self._latency

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        mu, keys, eb = self._mu, self._keys, self.entry_bits
        p = Pipeline(m, self._latency, 2 + self.levels, self.en, prefix="bld")

        # step 1: FP16 -> exact fixed point; inf / NaN count as 0 and set bad
        fix, bads = [], []
        for k in range(mu * keys):
            v, b = fp16_to_fixed(m, self.x[k], f"x{k}")
            fix.append(v)
            bads.append(b)
        s = p.cut(**{f"x{k}": fix[k] for k in range(mu * keys)}, bad=Cat(*bads).any())

        # step 2: LUT[0] = -sum of the table's inputs; the slice sum
        base = []
        for t in range(keys):
            acc = s[f"x{t * mu}"]
            for j in range(1, mu):
                acc = acc + s[f"x{t * mu + j}"]
            base.append((-acc).as_signed()[:eb].as_signed())
        xsum = sum(s[f"x{k}"] for k in range(mu * keys))
        vals = {f"e{t}_0": base[t] for t in range(keys)}
        vals.update({f"x{k}": s[f"x{k}"] for k in range(mu * keys)})
        s = p.cut(**vals, xsum=xsum.as_signed()[: self.xsum_bits].as_signed(), bad=s["bad"])

        # steps 3..: doubling, LUT[i + 2^j] = LUT[i] + 2 x_j
        for j in range(self.levels):
            vals = {}
            for t in range(keys):
                for i in range(1 << j):
                    e = s[f"e{t}_{i}"]
                    vals[f"e{t}_{i}"] = e
                    two_x = s[f"x{t * mu + j}"] << 1
                    vals[f"e{t}_{i + (1 << j)}"] = (e + two_x).as_signed()[:eb].as_signed()
            vals.update({f"x{k}": s[f"x{k}"] for k in range(mu * keys)
                         if j + 1 < self.levels})
            s = p.cut(**vals, xsum=s["xsum"], bad=s["bad"])
        p.done()

        for t in range(keys):
            for i in range(self.entries):
                m.d.comb += self.tables[t][i].eq(s[f"e{t}_{i}"])
        m.d.comb += [
            self.xsum.eq(s["xsum"]),
            self.bad.eq(s["bad"]),
            self.valid_out.eq(p.delay_valid(self.valid_in)),
        ]
        return m

