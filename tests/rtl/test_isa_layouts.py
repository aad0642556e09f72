"""The Amaranth layouts of the instruction formats agree with the Python decoder."""

from __future__ import annotations

from amaranth.hdl import Const, unsigned
from amaranth.lib.data import View
from hypothesis import given, settings
from hypothesis import strategies as st

from dfx.isa.encoding import Instruction
from dfx.isa.spec import load_spec
from dfx.rtl.isa_layouts import FORMAT_OF, LAYOUTS, RESERVED, WORD_BITS, Opcode

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
