"""Shared pieces of the FP arithmetic blocks: formats, field extraction, leading-zero count,
right shift with sticky bit, round-to-nearest-even, and the pipeline-register placer.

Everything here builds plain combinational Amaranth expressions (no simulator-only constructs),
except :class:`Pipeline`, which adds ``sync`` registers to a module. Numerics: docs/numerics.md.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value

__all__ = [
    "FP16",
    "wire",
    "FP32",
    "FpFormat",
    "Unpacked",
    "Pipeline",
    "check_latency",
    "lzc",
    "rne_increment",
    "shift_right_sticky",
    "spread",
    "unpack",
]


@dataclass(frozen=True)
class FpFormat:
    """An IEEE 754 binary format: sign, ``exp_bits`` exponent and ``frac_bits`` fraction bits."""

    name: str
    exp_bits: int
    frac_bits: int
    nan_bits: int
    """The canonical NaN (positive quiet NaN, no payload) that every NaN result is replaced by."""

    @property
    def width(self) -> int:
        return 1 + self.exp_bits + self.frac_bits

    @property
    def sig_bits(self) -> int:
        """Significand width including the implicit bit."""
        return self.frac_bits + 1

    @property
    def bias(self) -> int:
        return (1 << (self.exp_bits - 1)) - 1

    @property
    def exp_max(self) -> int:
        """The all-ones exponent field (inf / NaN)."""
        return (1 << self.exp_bits) - 1

    def inf_bits(self, sign: int = 0) -> int:
        return (sign << (self.width - 1)) | (self.exp_max << self.frac_bits)


FP16 = FpFormat("fp16", 5, 10, 0x7E00)
FP32 = FpFormat("fp32", 8, 23, 0x7FC00000)


@dataclass(frozen=True)
class Unpacked:
    """Fields and classification of one operand (all combinational expressions)."""

    sign: Value
    exp: Value
    """Biased exponent field."""
    frac: Value
    eff_exp: Value
    """Biased exponent of the significand's scale: ``max(exp, 1)`` (subnormals use 1)."""
    sig: Value
    """``frac`` with the implicit bit (0 for zero/subnormal).

    The value is ``sig * 2^(eff_exp - bias - frac_bits)``."""
    is_zero: Value
    is_sub: Value
    is_inf: Value
    is_nan: Value


def wire(m: Module, value: Value, name: str) -> Signal:
    """``value`` through a named combinational signal.

    Amaranth re-emits an expression at every place it is used, so a value used more than once
    (and every node of the LZC tree) goes through a signal to keep the netlist linear in size.
    """
    value = Value.cast(value)
    sig = Signal(value.shape(), name=name)
    m.d.comb += sig.eq(value)
    return sig


def unpack(m: Module, fmt: FpFormat, x: Value, name: str) -> Unpacked:
    """Split an ``fmt`` bit pattern into fields and classify it (signals named ``name_*``)."""
    x = Value.cast(x)
    if len(x) != fmt.width:
        raise ValueError(f"{fmt.name} operand must be {fmt.width} bits wide, not {len(x)}")
    frac = x[: fmt.frac_bits]
    exp = x[fmt.frac_bits : fmt.frac_bits + fmt.exp_bits]
    exp_zero = wire(m, exp == 0, f"{name}_exp_zero")
    exp_ones = wire(m, exp == fmt.exp_max, f"{name}_exp_ones")
    frac_zero = wire(m, frac == 0, f"{name}_frac_zero")
    return Unpacked(
        sign=x[-1],
        exp=exp,
        frac=frac,
        eff_exp=wire(m, Cat(exp[0] | exp_zero, exp[1:]), f"{name}_eff_exp"),
        sig=wire(m, Cat(frac, ~exp_zero), f"{name}_sig"),
        is_zero=wire(m, exp_zero & frac_zero, f"{name}_is_zero"),
        is_sub=wire(m, exp_zero & ~frac_zero, f"{name}_is_sub"),
        is_inf=wire(m, exp_ones & frac_zero, f"{name}_is_inf"),
        is_nan=wire(m, exp_ones & ~frac_zero, f"{name}_is_nan"),
    )


def _lzc_tree(m: Module, v: Value, name: str) -> tuple[Value, Value]:
    """(all zero, leading-zero count) of ``v`` whose width is a power of two >= 2."""
    n = len(v)
    if n == 2:
        return wire(m, ~(v[0] | v[1]), f"{name}_z"), ~v[1]
    lo_zero, lo_count = _lzc_tree(m, v[: n // 2], f"{name}l")
    hi_zero, hi_count = _lzc_tree(m, v[n // 2 :], f"{name}h")
    count = Mux(hi_zero, Cat(lo_count, Const(1, 1)), Cat(hi_count, Const(0, 1)))
    return wire(m, hi_zero & lo_zero, f"{name}_z"), wire(m, count, f"{name}_c")


def lzc(m: Module, v: Value, name: str) -> Value:
    """Leading-zero count of ``v`` (0 .. len(v); len(v) when v == 0), a log-depth tree.

    The result is ``len(v).bit_length()`` bits wide. ``v`` is padded at the bottom with a one to
    the next power of two strictly above its width, so the tree never sees all zeros.
    """
    v = Value.cast(v)
    w = len(v)
    if w < 1:
        raise ValueError("lzc of a zero-width value")
    p = 1 << w.bit_length()
    padded = Cat(Const(1 << (p - w - 1), p - w), v)
    _, count = _lzc_tree(m, padded, name)
    return count


def shift_right_sticky(m: Module, v: Value, amount: Value, name: str) -> tuple[Value, Value]:
    """``(v >> amount, sticky)``, sticky = OR of the bits shifted out; any amount is allowed.

    The amount is clamped to ``len(v)`` first (a shift by len(v) or more leaves 0 and puts every
    bit into sticky), so the barrel shifter is only ``len(v).bit_length()`` levels deep.
    """
    v = Value.cast(v)
    amount = Value.cast(amount)
    w = len(v)
    nbits = w.bit_length()
    if (1 << len(amount)) - 1 > w:
        amount = wire(m, Mux(amount > w, w, amount)[:nbits], f"{name}_amount")
    shifted = wire(m, v >> amount, f"{name}_shifted")
    kept_mask = (Const((1 << w) - 1, w) << amount)[:w]
    sticky = wire(m, (v & ~kept_mask).any(), f"{name}_sticky")
    return shifted, sticky


def rne_increment(lsb: Value, guard: Value, sticky: Value) -> Value:
    """Round-to-nearest-even: add one ulp iff above half, or exactly half and the lsb is odd."""
    return guard & (sticky | lsb)


# ------------------------------------------------------------------------------ pipelining


def check_pow2(value: object, name: str) -> int:
    """Validate a power-of-two size (an ``int`` >= 1)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1 or value & (value - 1):
        raise ValueError(f"{name} must be a power of two, not {value!r}")
    return value


def check_latency(value: object, minimum: int = 0, name: str = "latency") -> int:
    """Validate a register-stage count: an ``int`` (not ``bool``) >= ``minimum``."""
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise TypeError(f"{name} must be an integer >= {minimum}, not {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, not {value!r}")
    return int(value)


def spread(latency: int, n_steps: int) -> list[int]:
    """Registers after each of ``n_steps`` combinational steps, ``latency`` in total, spread
    evenly; the last step always gets one when ``latency >= 1`` (registered outputs)."""
    return [
        (i * latency) // n_steps - ((i - 1) * latency) // n_steps for i in range(1, n_steps + 1)
    ]


class Pipeline:
    """Places ``latency`` register stages over ``n_steps`` combinational steps of a datapath.

    Call :meth:`cut` once after each step with the values the rest of the datapath needs; it
    returns them delayed by the registers :func:`spread` assigns to that boundary. Data registers
    are reset-less; the valid chain (:meth:`delay_valid`) resets to 0. Every register loads only
    while ``en`` is high (a global stall freezes the whole pipeline).
    """

    def __init__(self, m: Module, latency: int, n_steps: int, en: Value, *, prefix: str = "p"):
        self._m = m
        self._en = en
        self._counts = spread(latency, n_steps)
        self._latency = latency
        self._step = 0
        self._prefix = prefix

    def _reg(self, value: Value, name: str, *, reset_less: bool) -> Signal:
        reg = Signal(value.shape(), name=name, reset_less=reset_less)
        with self._m.If(self._en):
            self._m.d.sync += reg.eq(value)
        return reg

    def cut(self, **values: Value) -> dict[str, Value]:
        if self._step >= len(self._counts):
            raise RuntimeError("Pipeline.cut called more often than the number of steps")
        count = self._counts[self._step]
        self._step += 1
        out = {k: Value.cast(v) for k, v in values.items()}
        for j in range(count):
            out = {
                k: self._reg(v, f"{self._prefix}{self._step}_{j}_{k}", reset_less=True)
                for k, v in out.items()
            }
        return out

    def delay_valid(self, valid: Value) -> Value:
        v = Value.cast(valid)
        for j in range(self._latency):
            v = self._reg(v, f"{self._prefix}_valid_{j}", reset_less=False)
        return v

    def done(self) -> None:
        if self._step != len(self._counts):
            raise RuntimeError(f"Pipeline has {len(self._counts)} steps, {self._step} were cut")
