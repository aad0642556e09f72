"""The Amaranth layouts of the instruction formats agree with the Python decoder."""

from __future__ import annotations

import re

from amaranth.hdl import Const, unsigned
from amaranth.lib.data import View
from hypothesis import given, settings
from hypothesis import strategies as st

from dfx.isa.encoding import Instruction, decode
from dfx.isa.errors import IsaError
from dfx.isa.spec import load_spec
from dfx.rtl.isa_layouts import (
    CONTROLLER,
    DEST_OPERAND,
    FIELD_RULES,
    FORMAT_OF,
    INT_DEST,
    INT_READS,
    LAYOUTS,
    REG_READS,
    RESERVED,
    RESOLVED,
    RESOLVED_MAX,
    UNIT_OF,
    USED_MASK,
    WORD_BITS,
    Opcode,
    Space,
)

SPEC = load_spec()


def test_layouts_match_the_spec():
    assert WORD_BITS == SPEC.word_bits
    assert set(LAYOUTS) == set(SPEC.formats)
    for name, fmt in SPEC.formats.items():
        layout = LAYOUTS[name]
        assert layout.size == SPEC.word_bits
        members = list(layout)
        for (fname, field), spec_field in zip(members, fmt.fields, strict=False):
            assert fname == spec_field.name
            assert field.offset == spec_field.lsb and field.shape == unsigned(spec_field.width)
        if fmt.reserved_width:
            assert members[-1][0] == RESERVED and members[-1][1].offset == fmt.width
            assert len(members) == len(fmt.fields) + 1
        else:
            assert len(members) == len(fmt.fields)


def test_opcode_enum():
    assert Opcode.as_shape() == unsigned(SPEC.widths["opcode"])
    assert {m.name.lower(): m.value for m in Opcode} == {
        n: i.opcode for n, i in SPEC.instructions.items()
    }
    assert all(FORMAT_OF[Opcode[n.upper()]] == i.format.name for n, i in SPEC.instructions.items())


@st.composite
def instructions(draw):
    ispec = draw(st.sampled_from(list(SPEC.instructions.values())))
    values = {}
    for f in ispec.fields:
        if f.operand is not None:
            values[f.name] = (
                draw(st.sampled_from(f.codes))
                if f.codes is not None
                else draw(st.integers(f.lo, f.hi))
            )
    return Instruction.from_fields(ispec.name, **values)


def view_fields(ins: Instruction) -> dict[str, int]:
    layout = LAYOUTS[ins.spec.format.name]
    view = View(layout, Const(ins.word, WORD_BITS))
    return {name: Const.cast(view[name]).value for name, _ in layout}


@settings(max_examples=100, deadline=None)
@given(instructions())
def test_view_over_encoded_word_matches_python_decoder(ins):
    got = view_fields(ins)
    assert got.pop(RESERVED, 0) == 0
    assert got == ins.fields
    assert Opcode(got["opcode"]) is Opcode[ins.op.upper()]
    const = LAYOUTS[ins.spec.format.name].from_bits(ins.word)
    assert all(const[name] == value for name, value in ins.fields.items())


# -- derived tables for the front end and the controller -------------------------------------

def test_space_enum_and_units():
    assert {m.name.lower(): m.value for m in Space} == {n: s.code for n, s in SPEC.spaces.items()}
    assert Space.as_shape() == unsigned(SPEC.widths["space"])
    for name, i in SPEC.instructions.items():
        assert UNIT_OF[Opcode[name.upper()]] == SPEC.classes[i.cls].unit
    ctrl = {n for n, i in SPEC.instructions.items() if SPEC.classes[i.cls].unit == CONTROLLER}
    assert ctrl == {i.name for i in SPEC.instructions.values() if i.cls in ("control", "integer")}


def test_resolved_operands_in_format_order():
    # docs/core.md "Controller -> issue": the order of val[] per format
    expected = {
        "mat": ["y", "x", "w", "b", "kt", "nt"],
        "lut": ["y", "x", "w", "b", "n", "ng"],
        "vec": ["y", "a", "b", "n"],
        "dma": ["dst", "src", "n"],
        "route": ["v", "n"],
        "int": ["mem"],
        "ctrl": ["count"],
        "scal": [],
    }
    assert {f: [o.name for o in ops] for f, ops in RESOLVED.items()} == expected
    assert RESOLVED_MAX == max(len(v) for v in expected.values())
    for fname, ops in RESOLVED.items():
        fmt = SPEC.formats[fname]
        for o in ops:
            spec_op = fmt.operands[o.name]
            assert o.kind == spec_op.kind
            reg, imm = fmt.field_by_name[o.reg], fmt.field_by_name[o.imm]
            assert reg.regfile == "int" and reg.operand == o.name
            assert imm.operand == o.name and not imm.signed and imm.width == o.imm_bits
            assert {reg.name, imm.name} | {f.name for f in spec_op.fields if f.kind == "space"} \
                == {f.name for f in spec_op.fields}


def test_integer_register_fields():
    for fname, fmt in SPEC.formats.items():
        int_fields = {f.name for f in fmt.fields if f.regfile == "int"}
        dest = INT_DEST[fname]
        assert set(INT_READS[fname]) | ({dest} if dest else set()) == int_fields
        assert all(REG_READS[fname][i] in INT_READS[fname] for i in range(len(REG_READS[fname])))
    # every instruction whose doc writes "r{x} = ..." writes its DEST_OPERAND, and only those
    writes = re.compile(r"r\{(\w+)\} =(?!=)")
    for name, i in SPEC.instructions.items():
        targets = set(writes.findall(i.doc))
        assert targets <= {DEST_OPERAND}, name
        assert bool(targets) == (DEST_OPERAND in i.operand_names), name


def test_used_masks_and_field_rules():
    for name, i in SPEC.instructions.items():
        op = Opcode[name.upper()]
        assert USED_MASK[op] == i.used_mask
        assert USED_MASK[op] & 0xFF == 0xFF
        for rule in FIELD_RULES[op]:
            f = i.format.field_by_name[rule.name]
            assert (rule.lsb, rule.width) == (f.lsb, f.width)


@settings(max_examples=200, deadline=None)
@given(instructions(), st.integers(0, WORD_BITS - 1))
def test_used_mask_is_what_the_decoder_accepts(ins, bit):
    word = ins.word ^ (1 << bit)
    op = Opcode[ins.op.upper()]
    try:
        decode(word.to_bytes(WORD_BITS // 8, "little"))
        accepted = True
    except IsaError:
        accepted = False
    if bit < 8:
        return  # another opcode
    if not USED_MASK[op] >> bit & 1:
        assert not accepted
    elif not FIELD_RULES[op]:
        assert accepted
