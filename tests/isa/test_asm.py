"""The assembly language: assembler, disassembler and their exact round trip."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dfx.isa.asm import assemble, assemble_with_labels, disassemble, format_instruction
from dfx.isa.encoding import F32, Count, Instruction, MemAddr, VAddr, encode_program
from dfx.isa.errors import IsaError
from dfx.isa.spec import load_spec

SPEC = load_spec()


@st.composite
def instructions(draw):
    """A random instruction of a random opcode with random in-range field values."""
    ispec = draw(st.sampled_from(list(SPEC.instructions.values())))
    values = {}
    for f in ispec.fields:
        if f.operand is None:
            continue
        if f.codes is not None:
            values[f.name] = draw(st.sampled_from(f.codes))
        else:
            values[f.name] = draw(
                st.one_of(st.sampled_from([f.lo, f.hi, 0]), st.integers(f.lo, f.hi))
            )
    return Instruction.from_fields(ispec.name, **values)


def brief_example() -> Instruction:
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


def roundtrip(prog: list[Instruction], **kw) -> str:
    text = disassemble(prog, **kw)
    again = assemble(text, "roundtrip.s")
    assert encode_program(again) == encode_program(prog), text
    return text


def test_brief_example_line():
    line = "conv1d y=v[r0+12], x=v[r0+0], w=hbm[r10+0x1000], b=ddr[r0+64], kt=12, nt=r5+0, gelu"
    assert assemble(line) == [brief_example()]
    assert format_instruction(brief_example()) == (
        "conv1d y=v[r0+12], x=v[r0+0], w=hbm[r10+0x1000], b=ddr[r0+64], kt=12, nt=r5, gelu"
    )
    assert str(brief_example()) == format_instruction(brief_example())
    assert repr(brief_example()).startswith("Instruction('conv1d y=")


def test_operand_forms():
    [i] = assemble("conv1d   w = wbuf[ r3 ] , y=v[7], x=v[r2 + 0x10], kt=r4+3, nt=r6, batch=0b11")
    assert i.w == MemAddr("wbuf", 3, 0) and i.y == VAddr(0, 7) and i.x == VAddr(2, 16)
    assert i.kt == Count(3, 4) and i.nt == Count(0, 6) and i.batch == 3 and i.gelu is False
    [i] = assemble("li rd=r31, imm=-0x10")
    assert (i.rd, i.imm) == (31, -16)
    [i] = assemble("conv1d gelu=1")
    assert i.gelu is True
    [i] = assemble("conv1d gelu=0")
    assert i.gelu is False
    [i] = assemble("vmuls s=s255, n=007")
    assert i.s == 255 and i.n == Count(7)


def _extreme_values(ispec, which: str) -> dict[str, int]:
    out = {}
    for k, f in enumerate(f for f in ispec.fields if f.operand is not None):
        if f.codes is not None:
            choice = {"max": max(f.codes), "min": min(f.codes), "zero": 0}.get(
                which, f.codes[k % len(f.codes)]
            )
        elif which == "max":
            choice = f.hi  # all-ones for unsigned fields, max signed
        elif which == "min":
            choice = f.lo  # min signed
        elif which == "zero":
            choice = 0
        elif which == "ones":
            choice = -1 if f.signed else f.hi  # all-ones bit pattern
        else:  # alternate
            choice = f.hi if k % 2 else (f.lo if f.signed else 1)
        out[f.name] = choice
    return out


def extreme_program() -> list[Instruction]:
    prog = []
    for ispec in SPEC.instructions.values():
        for which in ("max", "min", "zero", "ones", "alt"):
            prog.append(Instruction.from_fields(ispec.name, **_extreme_values(ispec, which)))
    return prog


def test_every_opcode_with_extreme_values_round_trips():
    prog = extreme_program()
    assert {i.op for i in prog} == set(SPEC.instructions)
    assert any(i.op == "sli" and i.imm.bits == 0xFFFFFFFF for i in prog)  # a NaN payload
    text = roundtrip(prog)
    roundtrip(prog, pcs=False)
    roundtrip(prog, annotations={0: "first", 5: "layer 0 # with a hash; and semicolon"})
    # and the text of the re-assembled program is the same text
    assert disassemble(assemble(text)) == text


@settings(max_examples=40, deadline=None)
@given(
    st.lists(instructions(), min_size=1, max_size=12),
    st.dictionaries(st.integers(0, 11), st.text(max_size=20), max_size=4),
    st.booleans(),
)
def test_random_programs_round_trip(prog, annotations, pcs):
    roundtrip(prog, annotations=annotations, pcs=pcs)


@settings(max_examples=150, deadline=None)
@given(instructions())
def test_random_instruction_round_trips_alone(ins):
    [back] = assemble(format_instruction(ins))
    assert back == ins


def test_labels_and_relative_targets():
    src = """
    top:    li rd=r1, imm=3      # label before an instruction
    again:
    ; a comment line
            addi rd=r1, rs1=r1, imm=-1
            bne rs1=r1, rs2=r0, target=again
            beq rs1=r1, rs2=r0, target=end
            jmp target=@-4
            jmp target=@+0
    end:
    """
    prog, labels = assemble_with_labels(src, "l.s")
    assert labels == {"top": 0, "again": 1, "end": 6}
    assert [i.operands.get("target") for i in prog] == [None, None, -1, 3, -4, 0]
    text = roundtrip(prog)
    assert "L1:" in text and "target=L1" in text and text.rstrip().endswith("L6:")
    assert "target=@" not in text
    # targets outside the program print as @+N
    assert "target=@+100" in disassemble(assemble("jmp target=@+100"))
    assert "target=@-1" in disassemble(assemble("jmp target=@-1"))


def test_loop_body_is_counted():
    src = """
        loop count=r3
            loop count=4, body=auto
                vadd y=v[r0+0], a=v[r0+0], b=v[r0+12], n=12
                vmuls y=v[r0+0], a=v[r0+0], s=s1, n=12
            endloop
            nop
        endloop
        loop count=2, body=9   # explicit body is kept as written
        endloop
        halt
    """
    prog = assemble(src)
    assert prog[0].body == 6 and prog[1].body == 3 and prog[7].body == 9
    text = roundtrip(prog)
    assert "body=6" in text and "body=3" in text  # always printed, even when zero
    assert assemble("loop count=1, body=0")[0].body == 0
    assert "body=0" in disassemble(assemble("loop count=1, body=0\nendloop"))


def test_f32_text():
    def text(v):
        return format_instruction(Instruction.make("sli", sd=1, imm=v))

    assert text(0.125) == "sli sd=s1, imm=0.125"
    assert text(0.1) == "sli sd=s1, imm=0.1"
    assert text(1.0) == "sli sd=s1, imm=1.0"
    assert text(-0.0) == "sli sd=s1, imm=-0.0"
    assert text(float("inf")) == "sli sd=s1, imm=inf"
    assert text(float("-inf")) == "sli sd=s1, imm=-inf"
    assert text(float("nan")) == "sli sd=s1, imm=nan"
    assert text(F32(0x7FC00001)) == "sli sd=s1, imm=f32:0x7fc00001"
    assert text(F32(0xFFC00000)) == "sli sd=s1, imm=f32:0xffc00000"
    assert text(F32(1)) == "sli sd=s1, imm=1e-45"
    for bits in (0x7FC00001, 0xFFC00000, 1, 0x7F7FFFFF, 0x3DCCCCCD, 0x80000000):
        ins = Instruction.make("sli", imm=F32(bits))
        assert assemble(format_instruction(ins))[0].imm.bits == bits
    assert assemble("sli imm=F32:0x3e000000")[0].imm.value == 0.125
    assert assemble("sli imm=3")[0].imm.value == 3.0


def err(src: str) -> str:
    with pytest.raises(IsaError) as e:
        assemble(src, "prog.s")
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_error_messages_name_file_and_line():
    assert err("nop\n\nconv1d q=1") == (
        "prog.s:3: conv1d: unknown operand 'q' (operands: y, x, w, b, kt, nt, kt_stride, "
        "batch, gelu)"
    )
    assert err("conv1d kt=70000") == (
        "prog.s:1: conv1d: field kt (16-bit unsigned) must be in 0..65535, got 70000"
    )
    assert err("# c\nconv1d1 y=v[0]") == (
        "prog.s:2: unknown instruction 'conv1d1' (did you mean 'conv1d'?)"
    )
    assert err("conv1d y=v[r0+1], y=v[r0+2]") == "prog.s:1: conv1d: operand 'y' given twice"
    assert err("conv1d kt") == "prog.s:1: conv1d: operand kt needs a value (kt=...)"
    assert err("conv1d y=x[r0+1]").startswith(
        "prog.s:1: conv1d: operand y: expected a VRF address like v[r3+12], got 'x[r0+1]'"
    )
    assert err("conv1d w=sram[r0+1]") == (
        "prog.s:1: conv1d: operand w: unknown memory space 'sram' (spaces: hbm, ddr, vrf, wbuf)"
    )
    assert err("conv1d kt=r1+r2").startswith("prog.s:1: conv1d: operand kt: expected a count")
    assert err("li rd=x1").startswith("prog.s:1: li: operand rd: expected an integer register")
    n_int = SPEC.registers["int"].count
    assert err(f"li rd=r{n_int}").startswith("prog.s:1: li: field rd (")
    assert err(f"li rd=r{n_int}").endswith(f"register) must be in 0..{n_int - 1}, got {n_int}")
    assert err("li imm=1.5").startswith("prog.s:1: li: operand imm: expected an integer")
    assert (
        err("sli imm=1e39") == "prog.s:1: sli: field imm (32-bit binary32): 1e+39 is too "
        "large for binary32"
    )
    assert err("sli imm=1e400") == "prog.s:1: sli: operand imm: 1e400 is too large for binary32"
    assert err("sli imm=f32:0x100000000").startswith("prog.s:1: sli: field imm")
    assert err("nop\njmp target=nowhere") == "prog.s:2: jmp: undefined label 'nowhere'"
    assert err("jmp target=@x").startswith("prog.s:1: jmp: operand target: expected a label")
    assert err("a:\nnop\na: halt") == "prog.s:3: duplicate label 'a' (first defined at line 1)"
    assert err("nop\nloop count=3\nnop") == (
        "prog.s:2: loop: no matching endloop to count body= from (give body=N)"
    )
    assert err("conv1d y=v[r0+1],, kt=1") == "prog.s:1: conv1d: empty operand (stray comma?)"
    assert err("conv1d gelu=2").startswith("prog.s:1: conv1d: operand gelu: expected 0 or 1")
    assert err("!!").startswith("prog.s:1: cannot parse '!!'")
    tgt = SPEC.formats["ctrl"].field_by_name["target"]
    assert err(f"jmp target=@+{tgt.hi + 1}").startswith("prog.s:1: jmp: field target (")


def test_disassembly_comments():
    prog = assemble("li rd=r1, imm=1\nhalt")
    text = disassemble(prog, annotations={1: "end of\nprogram"})
    lines = text.splitlines()
    assert lines[0].startswith("    li rd=r1, imm=1") and lines[0].rstrip().endswith("# 0")
    assert lines[1].endswith("# 1  end of program")
    assert disassemble(prog, pcs=False) == "    li rd=r1, imm=1\n    halt\n"
    assert disassemble([]) == ""


def test_cli_asm_and_disasm_round_trip(tmp_path, capsys):
    from dfx.host.cli import main

    src = tmp_path / "prog.s"
    src.write_text(
        "top:\n    loop count=r3\n    vmov y=v[r1+0], a=v[r0+4], n=4\n    endloop\n"
        "    bne rs1=r1, rs2=r0, target=top\n    halt\n"
    )
    out = tmp_path / "prog.dfx"
    assert main(["asm", str(src), "-o", str(out), "--core", "tiny"]) == 0
    assert main(["asm", str(src), "-o", str(tmp_path / "prog.bin"), "--raw"]) == 0
    assert main(["asm", str(src), "--check"]) == 0
    capsys.readouterr()
    assert main(["disasm", str(out)]) == 0
    listing = capsys.readouterr().out
    assert "# 0  top:" in listing and "card 0: 5 instructions" in listing
    assert encode_program(assemble(listing)) == (tmp_path / "prog.bin").read_bytes()
    assert (
        main(["disasm", str(tmp_path / "prog.bin"), "--no-pc", "-o", str(tmp_path / "back.s")]) == 0
    )
    assert assemble((tmp_path / "back.s").read_text()) == assemble(src.read_text())
    bad = tmp_path / "bad.s"
    bad.write_text("nop\nconv1d q=1\n")
    assert main(["asm", str(bad), "--check"]) == 1
    assert f"{bad}:2: conv1d: unknown operand 'q'" in capsys.readouterr().err
    assert main(["disasm", str(out), "--card", "1"]) == 1
    assert "no card 1" in capsys.readouterr().err
    (tmp_path / "odd.bin").write_bytes(bytes(SPEC.word_bytes + 1))
    assert main(["disasm", str(tmp_path / "odd.bin")]) == 1
    assert "not a multiple" in capsys.readouterr().err
