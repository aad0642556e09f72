"""Typed instructions: construction, validation, encode/decode (everything from the spec)."""

from __future__ import annotations

import copy
import math
import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dfx.isa.encoding import (
    F32,
    Count,
    Instruction,
    MemAddr,
    VAddr,
    decode,
    decode_program,
    encode,
    encode_program,
)
from dfx.isa.errors import IsaError
from dfx.isa.spec import load_spec, parse_spec

SPEC = load_spec()
WB = SPEC.word_bytes


def field_values(ispec, draw_int):
    out = {}
    for f in ispec.fields:
        if f.operand is not None:
            out[f.name] = draw_int(f)
    return out


@st.composite
def instructions(draw, spec=SPEC):
    ispec = draw(st.sampled_from(list(spec.instructions.values())))

    def one(f):
        if f.codes is not None:
            return draw(st.sampled_from(f.codes))
        return draw(st.one_of(st.sampled_from([f.lo, f.hi, 0]), st.integers(f.lo, f.hi)))

    return Instruction.from_fields(ispec.name, spec=spec, **field_values(ispec, one))


def brief_example():
    return Instruction.make(
        "conv1d",
        y=VAddr(base=0, off=12),
        x=VAddr(0, 0),
        w=MemAddr("hbm", base=10, off=4096),
        b=MemAddr("ddr", 0, 64),
        kt=Count(12),
        nt=Count(0, reg=5),
        gelu=True,
    )


def test_make_and_attribute_access():
    i = brief_example()
    assert i.op == "conv1d" and i.opcode == SPEC.instructions["conv1d"].opcode
    assert i.w == MemAddr("hbm", 10, 4096) and i.operands["w"].off == 4096
    assert i.kt == Count(12, 0) and i.nt.reg == 5 and i.gelu is True
    assert i.kt_stride == 0 and i.batch == 0  # defaults
    assert list(i.operands) == list(SPEC.instructions["conv1d"].operand_names)
    f = i.fields
    assert f["w_base"] == 10 and f["w_off"] == 4096 and f["nt_reg"] == 5
    assert f["w_space"] == SPEC.spaces["hbm"].code and f["b_space"] == SPEC.spaces["ddr"].code
    assert f["limit"] == 0  # unused by conv1d


def test_convenience_forms_are_normalised():
    a = Instruction.make(
        "conv1d", y=12, x=(0, 0), w=("hbm", 10, 4096), b=("ddr", 0, 64), kt=12, nt=(0, 5), gelu=1
    )
    assert a == brief_example()
    assert a.y == VAddr(0, 12) and isinstance(a.w, MemAddr) and a.gelu is True
    assert Instruction("conv1d", **brief_example().operands) == brief_example()
    code = SPEC.spaces["wbuf"].code
    assert Instruction.make("load", src=MemAddr(code)).src.space == "wbuf"


def test_immutable_equal_hashable_picklable():
    i = brief_example()
    with pytest.raises(AttributeError):
        i.op = "mm"
    with pytest.raises(AttributeError):
        i.kt = Count(1)
    with pytest.raises(TypeError):
        i.operands["kt"] = Count(1)
    assert len({i, brief_example(), i.replace(kt=13)}) == 2
    assert i.replace(kt=13).kt == Count(13) and i.kt == Count(12)
    assert pickle.loads(pickle.dumps(i)) == i
    assert i != "conv1d"


def test_out_of_range_field_names_field_and_range():
    with pytest.raises(IsaError) as e:
        brief_example().replace(kt=70000)
    assert str(e.value) == "conv1d: field kt (16-bit unsigned) must be in 0..65535, got 70000"
    with pytest.raises(IsaError, match=r"conv1d: field kt \(16-bit unsigned\) .* got -1"):
        Instruction.make("conv1d", kt=-1)
    imm = SPEC.formats["int"].field_by_name["imm"]
    with pytest.raises(
        IsaError,
        match=rf"li: field imm \({imm.width}-bit signed\) must be in "
        rf"{imm.lo}\.\.{imm.hi}, got {imm.hi + 1}",
    ):
        Instruction.make("li", imm=imm.hi + 1)
    n_int = SPEC.registers["int"].count
    with pytest.raises(
        IsaError,
        match=rf"field rd \(.*integer register\) must be in "
        rf"0\.\.{n_int - 1}, got {n_int}",
    ):
        Instruction.make("li", rd=n_int)
    with pytest.raises(IsaError, match=r"conv1d: field nt_reg"):
        Instruction.make("conv1d", nt=Count(0, reg=n_int))
    tgt = SPEC.formats["ctrl"].field_by_name["target"]
    assert Instruction.make("jmp", target=tgt.lo).target == tgt.lo
    with pytest.raises(IsaError, match="jmp: field target"):
        Instruction.make("jmp", target=tgt.lo - 1)


def test_bad_operands():
    with pytest.raises(IsaError, match=r"conv1d: unknown operand 'q' \(operands: y, x, w, b"):
        Instruction.make("conv1d", q=1)
    with pytest.raises(IsaError, match=r"mm: unknown operand 'b'"):
        Instruction.make("mm", b=MemAddr("hbm"))  # b is in the format but not used by mm
    with pytest.raises(IsaError, match="unknown instruction 'frob'"):
        Instruction.make("frob")
    with pytest.raises(IsaError, match=r"operand w: unknown memory space 'sram' \(spaces: "):
        Instruction.make("conv1d", w=MemAddr("sram", 0, 0))
    with pytest.raises(IsaError, match="operand w must be a MemAddr"):
        Instruction.make("conv1d", w=5)
    with pytest.raises(IsaError, match="field rd .* must be an integer"):
        Instruction.make("li", rd=True)
    with pytest.raises(IsaError, match="field rd .* must be an integer"):
        Instruction.make("li", rd="r1")
    with pytest.raises(IsaError, match="gelu is a flag"):
        Instruction.make("conv1d", gelu=2)
    with pytest.raises(IsaError, match="too large for binary32"):
        Instruction.make("sli", imm=1e39)
    with pytest.raises(IsaError, match="must be a float or F32"):
        Instruction.make("sli", imm="1.0")
    with pytest.raises(IsaError, match="unknown field 'zz'"):
        Instruction.from_fields("li", zz=1)


def test_f32_values_and_bit_patterns():
    assert Instruction.make("sli", imm=0.125).imm == F32(0x3E000000)
    assert Instruction.make("sli", imm=1).imm.value == 1.0
    assert Instruction.make("sli", imm=0.1).imm.value == pytest.approx(0.1, rel=1e-7)
    for bits in (0x7FC00001, 0xFFFFFFFF, 0x7F800001, 0x80000000, 0x7F800000, 0x00000001):
        i = Instruction.make("sli", sd=3, imm=F32(bits))
        assert decode(encode(i)).imm.bits == bits
    assert math.isnan(F32(0x7FC00001).value) and "0x7fc00001" in repr(F32(0x7FC00001))


def test_encode_layout_follows_spec():
    i = brief_example()
    word = int.from_bytes(encode(i), "little")
    assert len(encode(i)) == WB and i.encode() == encode(i)
    for f in i.spec.format.fields:
        assert (word >> f.lsb) & f.mask == i.fields[f.name]
    assert word & ((1 << SPEC.widths["opcode"]) - 1) == i.opcode
    assert word >> i.spec.format.width == 0


def _unused_opcode() -> int:
    return min(set(range(1 << SPEC.widths["opcode"])) - set(SPEC.by_opcode))


def test_decode_rejects_unknown_opcode_with_pc():
    op = _unused_opcode()
    with pytest.raises(IsaError) as e:
        decode(bytes([op]) + bytes(WB - 1), pc=12)
    assert str(e.value) == f"illegal instruction at pc 12: opcode {op:#04x} is not defined"
    with pytest.raises(IsaError, match=r"^illegal instruction: opcode"):
        decode(bytes([op]) + bytes(WB - 1))
    prog = encode_program([brief_example()] * 3)
    bad = prog[: 2 * WB] + bytes([op]) + prog[2 * WB + 1 :]
    with pytest.raises(IsaError, match="at pc 2: opcode"):
        decode_program(bad)


def test_decode_rejects_nonzero_reserved_and_unused_bits():
    i = Instruction.make("mm", kt=1)
    fmt = i.spec.format
    assert fmt.reserved_width > 0
    word = i.word | (1 << (SPEC.word_bits - 1))
    with pytest.raises(IsaError) as e:
        decode(word.to_bytes(WB, "little"), pc=7)
    assert str(e.value).startswith(
        f"illegal instruction at pc 7: mm: reserved bits [{SPEC.word_bits - 1}:{fmt.width}] "
        "must be zero"
    )
    b_off = fmt.field_by_name["b_off"]
    word = i.word | (1 << b_off.lsb)
    with pytest.raises(
        IsaError, match="at pc 3: mm: field b_off is not used by mm and must be zero, got 0x1"
    ):
        decode(word.to_bytes(WB, "little"), pc=3)
    nop = Instruction.make("nop")
    for f in nop.spec.format.fields[1:]:
        with pytest.raises(IsaError, match=f"field {f.name} is not used by nop"):
            decode((nop.word | (1 << f.lsb)).to_bytes(WB, "little"))


def test_decode_length_checks():
    with pytest.raises(IsaError, match=f"an instruction is {WB} bytes, got {WB - 1}"):
        decode(bytes(WB - 1), pc=0)
    with pytest.raises(IsaError, match=f"not a multiple of the {WB}-byte instruction word"):
        decode_program(bytes(WB + 1))
    assert decode_program(b"") == []


@settings(max_examples=300, deadline=None)
@given(instructions())
def test_encode_decode_round_trip(ins):
    data = encode(ins)
    back = decode(data, pc=0)
    assert back == ins and back.operands == ins.operands and back.fields == ins.fields
    assert encode(back) == data
    assert Instruction.make(ins.op, **ins.operands) == ins  # operand-level rebuild


@settings(max_examples=50, deadline=None)
@given(st.lists(instructions(), max_size=20))
def test_program_round_trip(prog):
    data = encode_program(prog)
    assert len(data) == WB * len(prog)
    assert decode_program(data) == prog


def test_everything_follows_a_modified_spec():
    """Widths, word size and opcodes come only from the spec: change them and all follows."""
    d = copy.deepcopy(SPEC.raw)
    d["word_bits"] = 512
    d["widths"].update(opcode=10, reg=6, base=6)
    d["registers"]["int"]["count"] = 64
    d["instructions"]["conv1d"]["opcode"] = 0x3FF
    d["formats"]["mat"]["operands"][4]["bits"] = 20  # kt
    spec = parse_spec(d)
    assert spec.opcode_field.width == 10
    i = Instruction.make(
        "conv1d", spec=spec, kt=Count((1 << 20) - 1, reg=63), w=MemAddr("hbm", 63, 5)
    )
    assert len(i.encode()) == 64
    assert i.word & 0x3FF == 0x3FF
    assert decode(i.encode(), spec=spec) == i
    with pytest.raises(IsaError, match=r"field kt \(20-bit unsigned\) must be in 0\.\.1048575"):
        Instruction.make("conv1d", spec=spec, kt=1 << 20)
    from dfx.isa.asm import assemble, disassemble

    text = disassemble([i])
    assert "kt=r63+1048575" in text
    assert assemble(text, spec=spec) == [i]


def test_decode_checks_fields_narrower_than_their_bits():
    """Register indices beyond the register file and undefined space codes are illegal."""
    d = copy.deepcopy(SPEC.raw)
    d["registers"]["int"]["count"] = 20
    del d["spaces"]["wbuf"]
    spec = parse_spec(d)
    li = spec.instructions["li"]
    rd = li.format.field_by_name["rd"]
    word = li.opcode | (25 << rd.lsb)
    with pytest.raises(IsaError) as e:
        decode(word.to_bytes(spec.word_bytes, "little"), pc=4, spec=spec)
    assert str(e.value) == (
        f"illegal instruction at pc 4: li: field rd ({rd.width}-bit integer register) must be "
        "in 0..19, got 25"
    )
    with pytest.raises(IsaError, match="must be in 0..19, got 20"):
        Instruction.make("li", spec=spec, rd=20)
    lw = spec.instructions["lw"]
    sp = lw.format.field_by_name["mem_space"]
    word = lw.opcode | (SPEC.spaces["wbuf"].code << sp.lsb)
    with pytest.raises(
        IsaError,
        match=rf"at pc 0: lw: field mem_space \({sp.width}-bit memory space\) "
        r"must be one of 0, 1, 2, got 3",
    ):
        decode(word.to_bytes(spec.word_bytes, "little"), pc=0, spec=spec)
    with pytest.raises(IsaError, match="unknown memory space 'wbuf'"):
        Instruction.make("lw", spec=spec, mem=MemAddr("wbuf"))
