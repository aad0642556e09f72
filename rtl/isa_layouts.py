"""Amaranth data layouts of the instruction formats, derived from ``isa/spec.yaml`` at import.

* ``LAYOUTS[format_name]`` is a :class:`amaranth.lib.data.StructLayout` of ``word_bits`` bits:
  the format's fields (``opcode`` first, then each operand's fields, in bit order, each
  ``unsigned(width)``) and a ``reserved`` field padding it to the word. Signed immediates are
  kept ``unsigned`` here (the raw two's-complement bits, as the Python decoder's
  ``Instruction.fields``); the datapath sign-extends where it needs to.
* ``Opcode`` is an :class:`amaranth.lib.enum.Enum` with shape ``unsigned(widths.opcode)``,
  one member per instruction (member name = mnemonic upper-cased, value = opcode).
* ``FORMAT_OF[Opcode.X]`` gives the format name of each opcode.

The RTL decoder views the fetched word through the layout of the opcode's format::

    word = Signal(WORD_BITS)
    mat = View(LAYOUTS["mat"], word)     # mat.kt, mat.w_off, mat.reserved ...
"""

from __future__ import annotations

import types

from amaranth.hdl import unsigned
from amaranth.lib import data, enum

from dfx.isa.spec import FormatSpec, Spec, load_spec

__all__ = ["FORMAT_OF", "LAYOUTS", "Opcode", "WORD_BITS", "format_layout", "opcode_enum"]

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


_SPEC = load_spec()
WORD_BITS: int = _SPEC.word_bits
LAYOUTS: dict[str, data.StructLayout] = {
    name: format_layout(fmt) for name, fmt in _SPEC.formats.items()
}
Opcode = opcode_enum(_SPEC)
FORMAT_OF: dict = {Opcode[name.upper()]: i.format.name for name, i in _SPEC.instructions.items()}
