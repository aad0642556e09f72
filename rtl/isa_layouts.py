"""Amaranth data layouts of the instruction formats, derived from ``isa/spec.yaml`` at import.

* ``LAYOUTS[format_name]`` is a :class:`amaranth.lib.data.StructLayout` of ``word_bits`` bits:
  the format's fields (``opcode`` first, then each operand's fields, in bit order, each
  ``unsigned(width)``) and a ``reserved`` field padding it to the word. Signed immediates are
  kept ``unsigned`` here (the raw two's-complement bits, as the Python decoder's
  ``Instruction.fields``); the datapath sign-extends where it needs to.
* ``Opcode`` is an :class:`amaranth.lib.enum.Enum` with shape ``unsigned(widths.opcode)``,
  one member per instruction (member name = mnemonic upper-cased, value = opcode).
* ``FORMAT_OF[Opcode.X]`` gives the format name of each opcode; ``UNIT_OF[Opcode.X]`` the unit
  of its class (``"controller"`` for control and integer instructions, DFX §2.1).
* ``Space`` is an enum of the memory spaces (``spaces`` codes, shape ``unsigned(widths.space)``).
* ``USED_MASK[Opcode.X]``: the instruction-word bits the instruction may have non-zero (the
  opcode and the fields of its operands); every other bit, unused fields and the reserved bits
  above the format, must be zero ("a decoder rejects anything else"). ``FIELD_RULES[Opcode.X]``
  lists its fields whose allowed values are not every bit pattern (none in the current spec).
* ``RESOLVED[format]``: the format's operands of kind ``count``, ``vaddr`` and ``maddr`` in
  format order, each a :class:`ResolvedOperand` naming the register-index field and the
  unsigned immediate field: the value is ``r{reg} + imm`` (``count``: ``imm + r{reg}``;
  addresses: ``r{base} + off``). This is the order of ``val[]`` in the controller's
  ``Resolved`` payload (docs/core.md).
* ``INT_READS[format]``: the fields of the format that name integer registers the instruction
  reads (address bases, count registers, ``rs1``/``rs2``, ``limit``); ``INT_DEST[format]`` the
  field naming the integer register it writes (``rd``) or None; ``REG_READS[format]`` the
  read operands of kind ``reg`` (``rs1``, ``rs2``, ``limit``). Fields an instruction does not
  use are zero, i.e. name ``r0``, which is never pending.

The RTL decoder views the fetched word through the layout of the opcode's format::

    word = Signal(WORD_BITS)
    mat = View(LAYOUTS["mat"], word)     # mat.kt, mat.w_off, mat.reserved ...
"""

from __future__ import annotations

import types
from dataclasses import dataclass

from amaranth.hdl import unsigned
from amaranth.lib import data, enum

from dfx.isa.spec import FormatSpec, Spec, load_spec

__all__ = [
    "CONTROLLER",
    "DEST_OPERAND",
    "FIELD_RULES",
    "FORMAT_OF",
    "INT_DEST",
    "INT_READS",
    "LAYOUTS",
    "REG_READS",
    "RESOLVED",
    "RESOLVED_KINDS",
    "RESOLVED_MAX",
    "UNIT_OF",
    "USED_MASK",
    "WORD_BITS",
    "FieldRule",
    "Opcode",
    "ResolvedOperand",
    "Space",
    "format_layout",
    "opcode_enum",
    "resolved_operands",
    "space_enum",
]

#: Name of the padding field above a format's last field (must be zero).
RESERVED = "reserved"


def format_layout(fmt: FormatSpec) -> data.StructLayout:
    """The StructLayout of one format, padded to the instruction word."""
    members: dict[str, object] = {}
    pos = 0
    for f in fmt.fields:
        assert f.lsb == pos, f"format {fmt.name}: field {f.name} is not contiguous"
        members[f.name] = unsigned(f.width)
        pos += f.width
    if fmt.reserved_width:
        members[RESERVED] = unsigned(fmt.reserved_width)
    return data.StructLayout(members)


def opcode_enum(spec: Spec) -> type[enum.Enum]:
    """An Amaranth enum of the opcodes, shaped ``unsigned(widths.opcode)``."""
    members = {name.upper(): i.opcode for name, i in spec.instructions.items()}

    def body(ns: dict) -> None:
        for k, v in members.items():
            ns[k] = v

    cls = types.new_class(
        "Opcode", (enum.Enum,), {"shape": unsigned(spec.opcode_field.width)}, body
    )
    cls.__module__ = __name__
    cls.__doc__ = f"Opcodes of ISA {spec.name} {spec.version} (spec hash {spec.hash[:12]})."
    return cls


def space_enum(spec: Spec) -> type[enum.Enum]:
    """An Amaranth enum of the memory spaces (member = name upper-cased, value = code)."""
    members = {name.upper(): sp.code for name, sp in spec.spaces.items()}

    def body(ns: dict) -> None:
        for k, v in members.items():
            ns[k] = v

    cls = types.new_class("Space", (enum.Enum,), {"shape": unsigned(spec.widths["space"])}, body)
    cls.__module__ = __name__
    cls.__doc__ = "Memory spaces of the ISA (``spaces`` in isa/spec.yaml)."
    return cls


#: Operand kinds the controller resolves to a value (``r{reg} + imm``) before issue.
RESOLVED_KINDS = ("count", "vaddr", "maddr")
#: Sub-field kinds that name the register / hold the immediate of a resolved operand.
_REG_SUBS, _IMM_SUBS = ("reg", "base"), ("imm", "off")
#: The operand that names an instruction's integer destination register (every instruction
#: that writes ``r{x}`` calls it ``rd`` in isa/spec.yaml; tests/rtl/test_isa_layouts.py checks
#: this against the instructions' docs).
DEST_OPERAND = "rd"
#: The unit of the classes the controller executes itself (``classes.<c>.unit``).
CONTROLLER = "controller"


@dataclass(frozen=True)
class ResolvedOperand:
    """A ``count``/``vaddr``/``maddr`` operand: value = ``r{reg field} + imm field``."""

    name: str
    kind: str
    reg: str  # the field holding the register index (``kt_reg``, ``w_base``)
    imm: str  # the field holding the unsigned immediate (``kt``, ``w_off``)
    imm_bits: int


@dataclass(frozen=True)
class FieldRule:
    """A used field whose allowed values are not every bit pattern (decode rejects others)."""

    name: str
    lsb: int
    width: int
    lo: int  # allowed raw values: lo..hi, and one of ``codes`` when given
    hi: int
    codes: tuple[int, ...] | None


def resolved_operands(fmt: FormatSpec) -> tuple[ResolvedOperand, ...]:
    """The format's resolved operands in format order (module doc)."""
    out = []
    for op in fmt.operands.values():
        if op.kind not in RESOLVED_KINDS:
            continue
        reg = [f for f in op.fields if f.kind in _REG_SUBS]
        imm = [f for f in op.fields if f.kind in _IMM_SUBS]
        assert len(reg) == 1 and len(imm) == 1 and not imm[0].signed, op.name
        out.append(ResolvedOperand(op.name, op.kind, reg[0].name, imm[0].name, imm[0].width))
    return tuple(out)


def _field_rules(fields: tuple) -> tuple[FieldRule, ...]:
    rules = []
    for f in fields:
        if f.signed:
            continue
        codes = tuple(sorted(f.codes)) if f.codes is not None else None
        if codes is None and (f.lo, f.hi) == (0, f.mask):
            continue
        if codes is not None and len(codes) == 1 << f.width:
            continue
        rules.append(FieldRule(f.name, f.lsb, f.width, f.lo, f.hi, codes))
    return tuple(rules)


_SPEC = load_spec()
WORD_BITS: int = _SPEC.word_bits
LAYOUTS: dict[str, data.StructLayout] = {
    name: format_layout(fmt) for name, fmt in _SPEC.formats.items()
}
Opcode = opcode_enum(_SPEC)
FORMAT_OF: dict = {Opcode[name.upper()]: i.format.name for name, i in _SPEC.instructions.items()}
Space = space_enum(_SPEC)
UNIT_OF: dict = {
    Opcode[name.upper()]: _SPEC.classes[i.cls].unit for name, i in _SPEC.instructions.items()
}
USED_MASK: dict = {Opcode[name.upper()]: i.used_mask for name, i in _SPEC.instructions.items()}
FIELD_RULES: dict = {
    Opcode[name.upper()]: _field_rules(i.fields) for name, i in _SPEC.instructions.items()
}
RESOLVED: dict[str, tuple[ResolvedOperand, ...]] = {
    name: resolved_operands(fmt) for name, fmt in _SPEC.formats.items()
}
RESOLVED_MAX: int = max(len(v) for v in RESOLVED.values())
INT_DEST: dict[str, str | None] = {
    name: (DEST_OPERAND if DEST_OPERAND in fmt.operands else None)
    for name, fmt in _SPEC.formats.items()
}
INT_READS: dict[str, tuple[str, ...]] = {
    name: tuple(
        f.name for f in fmt.fields if f.regfile == "int" and f.operand != INT_DEST[name]
    )
    for name, fmt in _SPEC.formats.items()
}
REG_READS: dict[str, tuple[str, ...]] = {
    name: tuple(
        o.name for o in fmt.operands.values() if o.kind == "reg" and o.name != INT_DEST[name]
    )
    for name, fmt in _SPEC.formats.items()
}
