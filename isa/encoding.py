"""Typed instructions and their binary encoding, derived from ``spec.yaml``.

An :class:`Instruction` is immutable, validated on construction, equal/hashable by its encoded
word, and carries its decoded operands precomputed, for two users:

* the compiler builds instructions from operand-level values::

      Instruction.make("conv1d", y=VAddr(base=0, off=12), x=VAddr(0, 0),
                       w=MemAddr("hbm", base=10, off=4096), b=MemAddr("ddr", 0, 64),
                       kt=Count(12), nt=Count(0, reg=5), gelu=True)

  (operands not given are zero; plain ints are accepted for counts ``kt=12`` and VRF
  addresses ``y=12``, tuples for any multi-field operand, floats for ``f32``);
* the simulator decodes a program once and then reads ``ins.op`` / ``ins.opcode`` and the
  operands as attributes (``ins.w.off``, ``ins.kt.imm``) or ``ins.operands["w"]``.

Operand value types by kind: ``vaddr`` → :class:`VAddr`, ``maddr`` → :class:`MemAddr` (space
by name), ``count`` → :class:`Count`, ``reg``/``sreg``/``uimm``/``simm``/``pcrel`` → ``int``,
``f32`` → :class:`F32` (the bit pattern; ``.value`` is the float), ``flag`` → ``bool``.
"""

from __future__ import annotations

import operator
import struct
from collections.abc import Callable, Iterable, Mapping
from numbers import Real
from types import MappingProxyType
from typing import Any, NamedTuple

from dfx.isa.errors import IsaError
from dfx.isa.spec import FieldSpec, InstrSpec, OperandSpec, Spec, SpecError, load_spec

__all__ = [
    "Count",
    "F32",
    "Instruction",
    "MemAddr",
    "VAddr",
    "decode",
    "decode_program",
    "encode",
    "encode_program",
    "f32_bits",
]


# ---------------------------------------------------------------------------------------------
# Operand value types


class VAddr(NamedTuple):
    """A VRF address ``r{base} + off`` (in vectors)."""

    base: int = 0
    off: int = 0


class MemAddr(NamedTuple):
    """An address ``r{base} + off`` in memory space ``space`` (a name from ``spec.spaces``)."""

    space: str
    base: int = 0
    off: int = 0


class Count(NamedTuple):
    """A count ``imm + r{reg}`` (``reg`` 0 adds nothing)."""

    imm: int = 0
    reg: int = 0


def f32_bits(x: float) -> int:
    """The IEEE binary32 bit pattern of ``x`` rounded to nearest; OverflowError if too large."""
    return struct.unpack("<I", struct.pack("<f", x))[0]


class F32(NamedTuple):
    """An IEEE binary32 immediate, kept as its bit pattern (NaN payloads survive)."""

    bits: int

    @property
    def value(self) -> float:
        """The value as a Python float (exact, except that a signalling NaN becomes quiet)."""
        return struct.unpack("<f", struct.pack("<I", self.bits))[0]

    @classmethod
    def from_float(cls, x: float) -> F32:
        return cls(f32_bits(x))

    def __repr__(self) -> str:
        return f"F32({self.value!r}, bits=0x{self.bits:08x})"


#: Value type of each multi-field operand kind; its attribute names are the kind's sub-fields.
KIND_TYPES: dict[str, type] = {"vaddr": VAddr, "maddr": MemAddr, "count": Count}


# ---------------------------------------------------------------------------------------------
# Per-spec compiled tables


class _OperandCodec:
    """Converts one operand between its value and its decoded field values."""

    __slots__ = ("spec", "op", "fields", "to_fields", "from_fields", "zero", "checked", "decode")

    def __init__(self, spec: Spec, op: OperandSpec) -> None:
        self.spec = spec
        self.op = op
        self.fields: tuple[FieldSpec, ...] = op.fields
        self.to_fields, self.from_fields = _kind_converters(spec, op)
        # fields whose allowed values are narrower than their bit range (checked on decode)
        self.checked = tuple(f for f in op.fields if _narrower_than_bits(f))
        self.zero = self.from_fields([0] * len(op.fields))
        self.decode = _word_decoder(op, self.from_fields)


def _word_decoder(op: OperandSpec, from_fields: Callable) -> Callable[[int], Any]:
    """A fast function: instruction word → this operand's value (no range checks)."""
    fields = op.fields
    if len(fields) == 1:
        f = fields[0]
        lsb, mask = f.lsb, f.mask
        if op.kind == "flag":
            return lambda w: bool((w >> lsb) & mask)
        if op.kind == "f32":
            return lambda w: F32((w >> lsb) & mask)
        if f.signed:
            sign, full = 1 << (f.width - 1), 1 << f.width
            return lambda w: (v - full if (v := (w >> lsb) & mask) & sign else v)
        if from_fields([1]) == 1:  # plain integer kinds
            return lambda w: (w >> lsb) & mask
    if any(f.signed for f in fields):
        pairs = [(f.lsb, f.mask, f.width) for f in fields]

        def slow(w: int) -> Any:
            vals = []
            for lsb, mask, width in pairs:
                v = (w >> lsb) & mask
                vals.append(v - (1 << width) if v >> (width - 1) else v)
            return from_fields(vals)

        return slow
    pairs2 = [(f.lsb, f.mask) for f in fields]
    return lambda w: from_fields([(w >> lsb) & mask for lsb, mask in pairs2])


def _narrower_than_bits(f: FieldSpec) -> bool:
    """True if not every bit pattern of the field is an allowed value."""
    natural = (-(1 << (f.width - 1)), (1 << (f.width - 1)) - 1) if f.signed else (0, f.mask)
    return f.codes is not None and len(f.codes) != 1 << f.width or (f.lo, f.hi) != natural


def _kind_converters(spec: Spec, op: OperandSpec) -> tuple[Callable, Callable]:
    kind = op.kind
    subs = [f.kind for f in op.fields]
    if kind in KIND_TYPES:
        typ = KIND_TYPES[kind]
        if sorted(typ._fields) != sorted(subs):
            raise SpecError(
                f"{spec.source}: operand_kinds.{kind}.fields {subs} do not match "
                f"the fields of {typ.__name__} {list(typ._fields)}"
            )
        order = [subs.index(name) for name in typ._fields]  # type field i ← sub-field order[i]
        back = [typ._fields.index(s) for s in subs]  # sub-field j ← type field back[j]
        space_j = subs.index("space") if "space" in subs else None
        names = {s.code: s.name for s in spec.spaces.values()}
        codes = {s.name: s.code for s in spec.spaces.values()}
        what = {
            "vaddr": "a VAddr(base, off), (base, off) or an int offset",
            "maddr": "a MemAddr(space, base, off) or (space, base, off)",
            "count": "a Count(imm, reg), (imm, reg) or an int",
        }[kind]

        def to_fields(v: Any, where: str) -> list[int]:
            if isinstance(v, int) and not isinstance(v, bool) and kind != "maddr":
                v = typ(**{("imm" if kind == "count" else "off"): v})
            elif not isinstance(v, tuple) or len(v) != len(subs):
                raise IsaError(f"{where}: operand {op.name} must be {what}, got {v!r}")
            vals = [v[back[j]] for j in range(len(subs))]
            if space_j is not None:
                sp = vals[space_j]
                if isinstance(sp, str):
                    if sp not in codes:
                        raise IsaError(
                            f"{where}: operand {op.name}: unknown memory space "
                            f"{sp!r} (spaces: {', '.join(codes)})"
                        )
                    vals[space_j] = codes[sp]
            return [_as_int(x, where, op.fields[j]) for j, x in enumerate(vals)]

        if space_j is None:

            def from_fields(vals: list[int]) -> Any:
                return typ(*[vals[i] for i in order])
        else:

            def from_fields(vals: list[int]) -> Any:
                vals = list(vals)
                vals[space_j] = names.get(vals[space_j], vals[space_j])
                return typ(*[vals[i] for i in order])

        return to_fields, from_fields

    if len(subs) != 1:
        raise SpecError(f"{spec.source}: operand_kinds.{kind} must have exactly one field")
    fld = op.fields[0]
    if kind == "flag":

        def to_fields(v: Any, where: str) -> list[int]:
            if v is True or v is False or v in (0, 1):
                return [int(v)]
            raise IsaError(f"{where}: operand {op.name} is a flag: True/False, got {v!r}")

        return to_fields, lambda vals: bool(vals[0])
    if kind == "f32":

        def to_fields(v: Any, where: str) -> list[int]:
            if isinstance(v, F32):
                return [_as_int(v.bits, where, fld, unsigned=True)]
            if isinstance(v, Real) and not isinstance(v, bool):
                try:
                    return [f32_bits(float(v))]
                except OverflowError:
                    raise IsaError(
                        f"{where}: field {fld.name} ({fld.describe()}): {v!r} is "
                        f"too large for binary32"
                    ) from None
            raise IsaError(f"{where}: operand {op.name} must be a float or F32, got {v!r}")

        return to_fields, lambda vals: F32(vals[0])

    def to_fields(v: Any, where: str) -> list[int]:
        return [_as_int(v, where, fld)]

    return to_fields, lambda vals: vals[0]


def _as_int(x: Any, where: str, fld: FieldSpec, unsigned: bool = False) -> int:
    if isinstance(x, bool):
        raise IsaError(
            f"{where}: field {fld.name} ({fld.describe()}) must be an integer, got {x!r}"
        )
    try:
        v = operator.index(x)
    except TypeError:
        raise IsaError(
            f"{where}: field {fld.name} ({fld.describe()}) must be an integer, got {x!r}"
        ) from None
    if unsigned and not 0 <= v <= fld.mask:
        raise IsaError(
            f"{where}: field {fld.name} ({fld.describe()}) must be in 0..{fld.mask}, got {v}"
        )
    return v


class _InstrCodec:
    __slots__ = ("ispec", "operands", "by_name", "names", "unused_mask", "decoders", "checked")

    def __init__(self, spec: Spec, ispec: InstrSpec) -> None:
        self.ispec = ispec
        self.operands = tuple(_OperandCodec(spec, o) for o in ispec.operands)
        self.by_name = {c.op.name: c for c in self.operands}
        self.names = ", ".join(o.name for o in ispec.operands) or "none"
        self.unused_mask = ((1 << spec.word_bits) - 1) & ~ispec.used_mask
        self.decoders = tuple((c.op.name, c.decode) for c in self.operands)
        self.checked = tuple(f for c in self.operands for f in c.checked)


class _Codec:
    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.word_bytes = spec.word_bytes
        self.opmask = spec.opcode_field.mask
        self.instrs = {name: _InstrCodec(spec, i) for name, i in spec.instructions.items()}
        self.by_opcode = {c.ispec.opcode: c for c in self.instrs.values()}


_CODECS: dict[int, _Codec] = {}
_DEFAULT: list[_Codec] = []  # the packaged spec's codec, once built


def _codec(spec: Spec | None) -> _Codec:
    if spec is None:
        if _DEFAULT:
            return _DEFAULT[0]
        spec = load_spec()
        _DEFAULT.append(_codec(spec))
        return _DEFAULT[0]
    c = _CODECS.get(id(spec))
    if c is None or c.spec is not spec:
        c = _CODECS[id(spec)] = _Codec(spec)
    return c


# ---------------------------------------------------------------------------------------------
# The instruction


class Instruction:
    """One decoded/validated instruction. Immutable; equal and hashable by its encoded word.

    Attributes: ``op`` (mnemonic), ``opcode``, ``spec`` (:class:`~dfx.isa.spec.InstrSpec`),
    ``word`` (the encoding as an int), ``operands`` (read-only mapping name → value, in the
    instruction's operand order) and one attribute per operand (``ins.kt``).
    """

    op: str
    opcode: int
    spec: InstrSpec
    word: int
    operands: Mapping[str, Any]

    def __init__(self, op: str, /, **operands: Any) -> None:
        built = Instruction.make(op, **operands)
        self.__dict__.update(built.__dict__)

    @classmethod
    def make(cls, op: str, /, spec: Spec | None = None, **operands: Any) -> Instruction:
        """Build from operand values; operands not given are zero. Raises :class:`IsaError`."""
        codec = _codec(spec)
        ic = codec.instrs.get(op)
        if ic is None:
            raise IsaError(f"unknown instruction {op!r}")
        for name in operands:
            if name not in ic.by_name:
                raise IsaError(f"{op}: unknown operand {name!r} (operands: {ic.names})")
        word = ic.ispec.opcode
        values: dict[str, Any] = {}
        for oc in ic.operands:
            name = oc.op.name
            if name in operands:
                vals = oc.to_fields(operands[name], op)
                for f, v in zip(oc.fields, vals, strict=True):
                    f.check(v, op)
                    word |= (v & f.mask) << f.lsb
                values[name] = oc.from_fields(vals)
            else:
                for f in oc.checked:
                    f.check(0, op)
                values[name] = oc.zero
        return _new(ic.ispec, word, values)

    @classmethod
    def from_fields(cls, op: str, /, spec: Spec | None = None, **fields: int) -> Instruction:
        """Build from decoded field values by field name (``w_space`` is a space code, signed
        fields take negative values); fields not given are zero."""
        codec = _codec(spec)
        ic = codec.instrs.get(op)
        if ic is None:
            raise IsaError(f"unknown instruction {op!r}")
        known = {f.name: f for f in ic.ispec.fields if f.operand is not None}
        for name in fields:
            if name not in known:
                raise IsaError(f"{op}: unknown field {name!r} (fields: {', '.join(known)})")
        word = ic.ispec.opcode
        values: dict[str, Any] = {}
        for oc in ic.operands:
            vals = []
            for f in oc.fields:
                v = _as_int(fields.get(f.name, 0), op, f)
                f.check(v, op)
                word |= (v & f.mask) << f.lsb
                vals.append(v)
            values[oc.op.name] = oc.from_fields(vals)
        return _new(ic.ispec, word, values)

    def replace(self, **operands: Any) -> Instruction:
        """A copy with some operands changed."""
        return Instruction.make(self.op, **{**self.operands, **operands})

    @property
    def fields(self) -> dict[str, int]:
        """Raw (unsigned, as in the hardware) values of every field of the format."""
        w = self.word
        return {f.name: (w >> f.lsb) & f.mask for f in self.spec.format.fields}

    def encode(self) -> bytes:
        return self.word.to_bytes(self.spec.format.word_bits // 8, "little")

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Instruction is immutable; use .replace(...)")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("Instruction is immutable")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Instruction):
            return NotImplemented
        return self.word == other.word

    def __hash__(self) -> int:
        return hash(self.word)

    def __reduce__(self) -> tuple:
        return (_from_word, (self.word,))

    def __str__(self) -> str:
        from dfx.isa.asm import format_instruction

        return format_instruction(self)

    def __repr__(self) -> str:
        return f"Instruction({str(self)!r})"


def _new(ispec: InstrSpec, word: int, values: dict[str, Any]) -> Instruction:
    ins = object.__new__(Instruction)
    d = ins.__dict__
    d.update(values)
    d["op"] = ispec.name
    d["opcode"] = ispec.opcode
    d["spec"] = ispec
    d["word"] = word
    d["operands"] = MappingProxyType(values)
    return ins


def _from_word(word: int) -> Instruction:
    return _decode_int(_codec(None), word, None)


# ---------------------------------------------------------------------------------------------
# Encoding and decoding


def encode(ins: Instruction) -> bytes:
    """The instruction's little-endian word."""
    return ins.word.to_bytes(ins.spec.format.word_bits // 8, "little")


def encode_program(instrs: Iterable[Instruction]) -> bytes:
    """The instructions' words, concatenated."""
    return b"".join(i.word.to_bytes(i.spec.format.word_bits // 8, "little") for i in instrs)


def _illegal(pc: int | None, msg: str) -> IsaError:
    at = f" at pc {pc}" if pc is not None else ""
    return IsaError(f"illegal instruction{at}: {msg}")


def _decode_int(codec: _Codec, w: int, pc: int | None) -> Instruction:
    ic = codec.by_opcode.get(w & codec.opmask)
    if ic is None:
        raise _illegal(pc, f"opcode {w & codec.opmask:#04x} is not defined")
    ispec = ic.ispec
    if w & ic.unused_mask:
        op = ispec.name
        used = {f.name for f in ispec.fields}
        for f in ispec.format.fields:
            if f.name not in used and (w >> f.lsb) & f.mask:
                raise _illegal(
                    pc,
                    f"{op}: field {f.name} is not used by {op} and must be "
                    f"zero, got {(w >> f.lsb) & f.mask:#x}",
                )
        lo = ispec.format.width
        raise _illegal(
            pc,
            f"{op}: reserved bits [{codec.spec.word_bits - 1}:{lo}] must be zero, got {w >> lo:#x}",
        )
    for f in ic.checked:  # fields where not every bit pattern is allowed
        try:
            f.check(f.from_raw((w >> f.lsb) & f.mask), ispec.name)
        except IsaError as e:
            raise _illegal(pc, str(e)) from None
    return _new(ispec, w, {name: dec(w) for name, dec in ic.decoders})


def decode(word: bytes, pc: int | None = None, spec: Spec | None = None) -> Instruction:
    """Decode one instruction word. Rejects unknown opcodes and non-zero unused/reserved bits
    (the message names ``pc`` when given)."""
    codec = _codec(spec)
    if len(word) != codec.word_bytes:
        raise _illegal(pc, f"an instruction is {codec.word_bytes} bytes, got {len(word)}")
    return _decode_int(codec, int.from_bytes(word, "little"), pc)


def decode_program(data: bytes, spec: Spec | None = None) -> list[Instruction]:
    """Decode a sequence of instruction words; pc = index of the instruction."""
    codec = _codec(spec)
    wb = codec.word_bytes
    if len(data) % wb:
        raise IsaError(
            f"program is {len(data)} bytes, not a multiple of the {wb}-byte instruction word"
        )
    mv = memoryview(data)
    return [
        _decode_int(codec, int.from_bytes(mv[i : i + wb], "little"), i // wb)
        for i in range(0, len(data), wb)
    ]
