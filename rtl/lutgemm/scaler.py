"""``LutScaler``: one exact scale multiply-accumulate unit of the LUT-GEMM unit (the ``scalers``
of ``core.lutgemm``).

Each op adds one term ``s * P`` of a row's sum to the row's accumulator: ``P`` is an exact group
sum (``p``: ``P[G, b, m]`` or the input sum ``X[G]``, a signed integer in units of 2^-24) and
``s`` its FP16 scale (``alpha[G, b, m]`` or the offset ``z[G, m]``). Every finite FP16 scale is
``sig * 2^shift`` units of 2^-24 with an 11-bit significand ``sig`` and ``shift = eff_exp - 1``
in 0..29, so the term is the integer ``(P * ±sig) << shift`` in units of 2^-48: the multiply
(a ``width`` x 12-bit signed product, ``mul_latency`` registers, shift included) is exact, and
so is its addition into the row accumulator, a two's-complement fixed-point number of
:func:`acc_bits` bits (units of 2^-48, room for 65535 groups of ``max_q + 1`` terms: 113 bits at
``max_group`` 8192, ``max_q`` 4). After every op the accumulator is rounded once to FP32
(:class:`.IntToFp32`, RNE, ``convert_latency``) and put on ``result``; the unit keeps the
result of a row's last op (the golden ``dfx.isa.golden.lutgemm.scale_sum``: the exact
``sum_G (sum_b alpha·P + z·X)`` rounded once, independent of the order of the terms). ``init``
starts a row's sum (the accumulator is taken as 0). ``nan`` (the group's inputs held an inf or
NaN) and a non-finite scale set the row's sticky NaN flag: the result is then the canonical NaN
``0x7FC00000`` until the next ``init``. (The golden model defines finite scales only; a NaN row
is this unit's answer to the others.)

**Accumulator** (``add_latency`` = A en-cycles): the accumulator is cut into A limbs of
``ceil(acc_bits / A)`` bits (the top limb signed, the others unsigned), each in its own memory of
``acc_depth`` words addressed by the op's row chunk ``addr``. Limb k of an op is added in the
op's k-th adder cycle, with the carry out of limb k - 1 from the cycle before (a skewed
carry-propagate adder: one limb-wide carry chain per cycle). Each limb memory is read one cycle
before its add (synchronous, transparent to its write), so an op sees every limb of the
previous op on the same row even when it follows in the very next cycle: ops on one
accumulator need no spacing (:attr:`min_distance` = 1), one op per en-cycle in any order. The
limb results are re-aligned by registers and the whole accumulator goes to the converter.

Storage: the limb memories (``acc_depth`` rows, the sticky NaN flag beside limb 0) and the scale
slots (``slots`` entries of ``max_q + 1`` FP16: alpha_0 .. alpha_{q-1}, z), all memories.

Timing (en-cycles, ``en`` low freezes everything): an op is *issued* at cycle t with ``valid``,
``slot``, ``b`` (the scale read), ``addr``, ``init``; its sum ``p`` and ``nan`` follow at t + 1
(they come from synchronous reads). The product is ready ``mul_latency`` cycles later, limb k is
added at t + 1 + mul + k, the aligned accumulator is registered at t + 1 + mul + add, and
``result``/``valid_out`` follow ``convert_latency`` cycles later: :attr:`latency` =
1 + mul + add + convert after the issue.
"""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..arith.fixed import FIX_MAX, FRAC_BITS
from ..arith.fpformat import FP16, check_latency, check_pow2, unpack, wire
from ..arith.int_to_fp32 import IntToFp32
from ..arith.pwl_table import delay

__all__ = ["ACC_FRAC_BITS", "MAX_GROUPS", "LutScaler", "acc_bits"]

ACC_FRAC_BITS = 2 * FRAC_BITS
"""Fraction bits of the row accumulator: a product of two values in units of 2^-24."""

MAX_GROUPS = 65535
"""Groups per command (the 16-bit ``ng`` of the command)."""

SIG_BITS = FP16.frac_bits + 1
"""Bits of an FP16 significand with its implicit bit."""

SHIFT_BITS = FP16.exp_bits
"""Bits of a scale's shift ``eff_exp - 1`` (0..29 for finite scales, 30 for inf / NaN)."""

SHIFT_STEP = 7
"""The scale's shift is split as ``STEP * coarse + fine``: ``fine`` < STEP shifts the signed
12-bit significand (at most 18 bits, a DSP48E2's B port), ``coarse`` (0..4) the product."""


def acc_bits(width: int, max_q: int, max_groups: int = MAX_GROUPS) -> int:
    """Two's-complement width of a row accumulator that holds every sum of ``max_groups``
    groups of ``max_q + 1`` terms ``P * s`` exactly (``|P| <= 2^(width-1)``, ``|s| <= 65504``;
    units of 2^-48)."""
    for name, v in (("width", width), ("max_q", max_q), ("max_groups", max_groups)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{name} must be a positive integer, not {v!r}")
    return (max_groups * (max_q + 1) * (1 << (width - 1)) * FIX_MAX).bit_length() + 1


def check_limbs(bits: int, add_latency: int) -> int:
    """Width of the low limbs when a ``bits``-wide accumulator is added in ``add_latency``
    skewed limbs; ValueError when the top limb would be narrower than 2 bits or the
    accumulator wider than the converter takes."""
    limb = -(-bits // add_latency)
    if bits - (add_latency - 1) * limb < 2:
        raise ValueError(f"add_latency = {add_latency} cuts the {bits}-bit accumulator into "
                         f"limbs that are too narrow")
    if bits > 128 + ACC_FRAC_BITS:
        raise ValueError(f"a {bits}-bit accumulator is wider than FP32's range")
    return limb


class LutScaler(wiring.Component):
    """Group sum x FP16 scale, exactly, + the row's wide accumulator, then one FP32 rounding;
    one op per en-cycle, on any accumulator in any order (module doc).

    Parameters: ``width`` (of ``p``), ``max_q`` (1..7), ``slots`` (scale slots), ``acc_depth``
    (accumulators, a power of two), ``convert_latency`` (>= 1), ``mul_latency`` (>= 0),
    ``add_latency`` (>= 1: limbs of the accumulator, each at least 2 bits), ``max_groups``
    (groups per row sum, sets :attr:`acc_bits`), ``convert`` (default True; False: no
    converter, the accumulator after each op on ``acc``, ``acc_nan``, ``acc_valid``
    ``1 + mul + add`` en-cycles after the issue, for :class:`.convert.LutConvertPair`).

    Ports in: ``en`` (default 1); issue stage ``valid``, ``slot``, ``b``, ``addr``, ``init``;
    ``p`` (signed ``width``), ``nan`` one cycle later; scale writes ``sc_we``, ``sc_waddr``,
    ``sc_wdata`` (``max_q + 1`` FP16, independent of ``en``). Out: ``result`` (the accumulator
    after the op, rounded to FP32), ``valid_out``.
    """

    def __init__(self, *, width: int, max_q: int, slots: int, acc_depth: int,
                 convert_latency: int, mul_latency: int, add_latency: int,
                 max_groups: int = MAX_GROUPS, convert: bool = True):
        if not isinstance(width, int) or isinstance(width, bool) or width < 2:
            raise ValueError(f"width must be an integer >= 2, not {width!r}")
        if not isinstance(max_q, int) or isinstance(max_q, bool) or not 1 <= max_q <= 7:
            raise ValueError(f"max_q must be an integer in 1..7, not {max_q!r}")
        check_pow2(acc_depth, "acc_depth")
        if not isinstance(slots, int) or isinstance(slots, bool) or slots < 1:
            raise ValueError(f"slots must be a positive integer, not {slots!r}")
        self._width = width
        self._max_q = max_q
        self._slots = slots
        self._acc_depth = acc_depth
        self._cvt = check_latency(convert_latency, 1, name="convert_latency")
        self._mul = check_latency(mul_latency, name="mul_latency")
        self._add = check_latency(add_latency, 1, name="add_latency")
        self._acc_bits = acc_bits(width, max_q, max_groups)
        self._limb = check_limbs(self._acc_bits, self._add)
        if not isinstance(convert, bool):
            raise TypeError(f"convert must be a bool, not {convert!r}")
        self._convert = convert
        abits = max(acc_depth.bit_length() - 1, 1)
        outs = ({"result": Out(32), "valid_out": Out(1)} if convert else
                {"acc": Out(signed(self._acc_bits)), "acc_nan": Out(1), "acc_valid": Out(1)})
        super().__init__(
            {
                "en": In(1, init=1),
                "valid": In(1),
                "slot": In(range(slots)),
                "b": In(range(max_q + 1)),
                "addr": In(abits),
                "init": In(1),
                "p": In(signed(width)),
                "nan": In(1),
                "sc_we": In(1),
                "sc_waddr": In(range(slots)),
                "sc_wdata": In(data.ArrayLayout(16, max_q + 1)),
                **outs,
            }
        )

    @property
    def acc_bits(self) -> int:
        """Width of the row accumulator (units of 2^-48)."""
        return self._acc_bits

    @property
    def limbs(self) -> list[int]:
        """Widths of the accumulator's limbs, lowest first (one per adder cycle)."""
        a, lb = self._add, self._limb
        return [lb] * (a - 1) + [self._acc_bits - (a - 1) * lb]

    @property
    def min_distance(self) -> int:
        """Fewest en-cycles between two ops on the same accumulator."""
        return 1

    @property
    def convert(self) -> bool:
        """Whether the unit rounds its accumulator itself (``result``) or puts it out raw
        (``acc``, for a converter shared by two scalers: :class:`.convert.LutConvertPair`)."""
        return self._convert

    @property
    def latency(self) -> int:
        """En-cycles from an op's issue to its rounded accumulator on ``result`` (without
        ``convert``: to the accumulator on ``acc``)."""
        return 1 + self._mul + self._add + (self._cvt if self._convert else 0)

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        en = self.en
        mul_l, add_l = self._mul, self._add
        wa = self._acc_bits

        # scale slots: the op's scale is read at issue (synchronous, data at t + 1)
        smem = Memory(shape=data.ArrayLayout(16, self._max_q + 1), depth=self._slots, init=[])
        m.submodules.scales = smem
        swp = smem.write_port()
        srp = smem.read_port()
        m.d.comb += [
            swp.addr.eq(self.sc_waddr),
            swp.data.eq(self.sc_wdata),
            swp.en.eq(self.sc_we),
            srp.addr.eq(self.slot),
            srp.en.eq(en),
        ]
        b1 = delay(m, self.b, 1, en, "b1")
        valid1 = delay(m, self.valid, 1, en, "valid1", reset_less=False)
        init1 = delay(m, self.init, 1, en, "init1")
        alpha16 = srp.data[0]
        for i in range(1, self._max_q + 1):
            alpha16 = Mux(b1 == i, srp.data[i], alpha16)
        alpha16 = wire(m, alpha16, "alpha16")

        # t + 1: the scale as ±sig << shift; the exact product, shifted into place
        u = unpack(m, FP16, alpha16, "alpha")
        ssig = wire(m, Mux(u.sign, -u.sig, u.sig).as_signed()[: SIG_BITS + 1].as_signed(),
                    "ssig")
        shift = wire(m, (u.eff_exp - 1)[:SHIFT_BITS], "shift")
        # the shift in two parts: shift mod STEP on the significand (the multiplier's narrow
        # operand, SIG_BITS + STEP bits: a DSP48E2's 18-bit B port), the multiple of STEP on
        # the product (a STEP-spaced multiplexer instead of a 30-way shifter); exact either way
        fine = Array(Const(i % SHIFT_STEP, 3) for i in range(1 << SHIFT_BITS))[shift]
        coarse = Array(Const(i // SHIFT_STEP, 3) for i in range(1 << SHIFT_BITS))[shift]
        bsig = wire(m, (ssig << fine).as_signed()[: SIG_BITS + SHIFT_STEP].as_signed(), "bsig")
        prod = wire(m, self.p * bsig, "prod")  # signed width + 18 bits, exact
        placed = Array(prod << (SHIFT_STEP * c) for c in range(30 // SHIFT_STEP + 1))[coarse]
        term = wire(m, placed.as_signed()[:wa].as_signed(), "term")
        bad = wire(m, self.nan | u.is_inf | u.is_nan, "bad")
        term = delay(m, term, mul_l, en, "term")
        bad = delay(m, bad, mul_l, en, "bad")

        # the accumulator limbs: limb k of an op is added mul + 1 + k cycles after its issue,
        # its memory read one cycle before (the addr delayed mul + k), transparent
        widths = self.limbs
        los = [sum(widths[:k]) for k in range(add_l)]
        carry = Const(0, 1)
        nan_new: Any = None
        aligned = []
        for k, wk in enumerate(widths):
            top = k == add_l - 1
            amem = Memory(shape=unsigned(wk + (k == 0)), depth=self._acc_depth, init=[])
            m.submodules[f"acc{k}"] = amem
            awp = amem.write_port()
            arp = amem.read_port(transparent_for=(awp,))
            addr_r = delay(m, self.addr, mul_l + k, en, f"addr_r{k}")
            addr_w = delay(m, addr_r, 1, en, f"addr_w{k}")
            init_k = delay(m, init1, mul_l + k, en, f"init{k}")
            valid_k = delay(m, valid1, mul_l + k, en, f"valid{k}", reset_less=False)
            part = delay(m, term[los[k] : los[k] + wk], k, en, f"term{k}")
            old = Mux(init_k, 0, arp.data[:wk])
            if top:
                total = old.as_signed() + part.as_signed() + carry
                new = wire(m, total[:wk], f"limb{k}")
            else:
                total = old + part + carry
                new = wire(m, total[:wk], f"limb{k}")
                carry_out = Signal(name=f"carry{k}")
                with m.If(en):
                    m.d.sync += carry_out.eq(total[wk])
                carry = carry_out
            wdata = new
            if k == 0:
                nan_new = wire(m, Mux(init_k, 0, arp.data[wk]) | bad, "nan_new")
                wdata = Cat(new, nan_new)
            m.d.comb += [
                arp.addr.eq(addr_r),
                arp.en.eq(en),
                awp.addr.eq(addr_w),
                awp.data.eq(wdata),
                awp.en.eq(en & valid_k),
            ]
            aligned.append(delay(m, new, add_l - k, en, f"acc{k}"))
        acc = Cat(*aligned).as_signed()
        nan_acc = delay(m, nan_new, add_l, en, "nan_acc")
        valid_acc = delay(m, valid1, mul_l + add_l, en, "valid_acc", reset_less=False)

        if not self._convert:
            m.d.comb += [self.acc.eq(acc), self.acc_nan.eq(nan_acc),
                         self.acc_valid.eq(valid_acc)]
            return m
        m.submodules.cvt = conv = IntToFp32(wa, self._cvt, frac_bits=ACC_FRAC_BITS)
        m.d.comb += [
            conv.a.eq(acc),
            conv.nan.eq(nan_acc),
            conv.valid_in.eq(valid_acc),
            conv.en.eq(en),
            self.result.eq(conv.result),
            self.valid_out.eq(conv.valid_out),
        ]
        return m
