"""The ISA specification loads, validates and resolves to consistent bit fields."""

from __future__ import annotations

import copy

import pytest
import yaml

from dfx.isa.spec import IMPLEMENTED_KINDS, SpecError, load_spec, parse_spec, spec_path

SPEC = load_spec()


def raw() -> dict:
    return copy.deepcopy(SPEC.raw)


def test_loads_and_is_cached():
    assert load_spec() is SPEC
    assert SPEC.word_bytes * 8 == SPEC.word_bits
    assert len(SPEC.hash) == 64 and int(SPEC.hash, 16) >= 0
    assert SPEC.version == str(yaml.safe_load(spec_path().read_text())["version"])


def test_opcode_is_the_lowest_field_of_every_format():
    for fmt in SPEC.formats.values():
        first = fmt.fields[0]
        assert (first.name, first.lsb, first.width) == ("opcode", 0, SPEC.widths["opcode"])


def test_fields_are_packed_contiguously_in_operand_order():
    for fmt in SPEC.formats.values():
        pos = 0
        for f in fmt.fields:
            assert f.lsb == pos, (fmt.name, f.name)
            pos += f.width
        assert pos == fmt.width <= SPEC.word_bits
        # operand order of the format = field order
        ops = [f.operand for f in fmt.fields[1:]]
        assert list(dict.fromkeys(ops)) == list(fmt.operands)


def test_field_names_and_widths_follow_the_kinds():
    mat = SPEC.formats["mat"].field_by_name
    w = SPEC.widths
    assert [n for n in mat if n.startswith("w_")] == ["w_space", "w_base", "w_off"]
    assert mat["w_space"].width == w["space"] and mat["w_base"].width == w["base"]
    assert mat["w_off"].width == SPEC.raw["formats"]["mat"]["operands"][2]["off_bits"]
    assert mat["kt"].kind == "imm" and mat["kt_reg"].kind == "reg"
    assert mat["kt_reg"].width == w["reg"]
    assert mat["y_base"].operand == "y" and mat["y_off"].operand_kind == "vaddr"
    assert mat["gelu"].width == 1 and mat["scale"].width == w["sreg"]


def test_signed_ranges_and_register_ranges():
    for fmt in SPEC.formats.values():
        for f in fmt.fields:
            if f.signed:
                assert (f.lo, f.hi) == (-(1 << (f.width - 1)), (1 << (f.width - 1)) - 1)
            elif f.regfile:
                assert f.hi == SPEC.registers[f.regfile].count - 1
            elif f.codes:
                assert set(f.codes) == {s.code for s in SPEC.spaces.values()}
            else:
                assert (f.lo, f.hi) == (0, f.mask)


def test_instructions_opcodes_and_used_fields():
    assert len(SPEC.by_opcode) == len(SPEC.instructions)
    for name, i in SPEC.instructions.items():
        assert SPEC.by_opcode[i.opcode] is i and i.name == name
        assert i.cls in SPEC.classes and i.format.name in SPEC.formats
        assert i.fields[0].name == "opcode"
        used = {f.operand for f in i.fields[1:]}
        assert used == set(i.operand_names)
        mask = 0
        for f in i.fields:
            mask |= f.word_mask
        assert mask == i.used_mask
    assert {k for k in SPEC.operand_kinds} <= IMPLEMENTED_KINDS


def test_hash_ignores_comments_but_not_content(tmp_path):
    text = spec_path().read_text()
    p = tmp_path / "spec.yaml"
    p.write_text("# another comment\n" + text.replace("\nname: dfx", "\n# x\nname: dfx"))
    assert load_spec(p).hash == SPEC.hash
    p2 = tmp_path / "spec2.yaml"
    p2.write_text(text.replace('doc: "Do nothing."', 'doc: "Do nothing at all."'))
    assert load_spec(p2).hash != SPEC.hash


def _expect(data: dict, *fragments: str) -> None:
    with pytest.raises(SpecError) as e:
        parse_spec(data, source="t.yaml")
    msg = str(e.value)
    assert msg.startswith("t.yaml: ")
    assert "\n" not in msg
    for frag in fragments:
        assert frag in msg, msg


def test_rejects_duplicate_opcode():
    d = raw()
    d["instructions"]["halt"]["opcode"] = d["instructions"]["nop"]["opcode"]
    _expect(d, "instructions.halt.opcode", "duplicates instruction 'nop'")


def test_rejects_opcode_too_wide():
    d = raw()
    d["instructions"]["halt"]["opcode"] = 1 << d["widths"]["opcode"]
    _expect(d, "instructions.halt.opcode", "must be 0..")


def test_rejects_format_wider_than_word():
    d = raw()
    d["formats"]["mat"]["operands"][0]["off_bits"] = d["word_bits"]
    _expect(d, "formats.mat", "more than word_bits")


def test_rejects_unknown_format_operand():
    d = raw()
    d["instructions"]["conv1d"]["operands"].append("zz")
    _expect(d, "instructions.conv1d.operands", "'zz' is not an operand of format mat")


def test_rejects_unknown_kind_class_format_and_keys():
    d = raw()
    d["formats"]["ctrl"]["operands"][0]["kind"] = "regg"
    _expect(d, "formats.ctrl.operands.rs1", "unknown kind 'regg'")
    d = raw()
    d["instructions"]["nop"]["class"] = "nope"
    _expect(d, "instructions.nop.class", "unknown class 'nope'")
    d = raw()
    d["instructions"]["nop"]["format"] = "nope"
    _expect(d, "instructions.nop.format", "unknown format 'nope'")
    d = raw()
    d["formats"]["mat"]["operands"][4]["bitz"] = 3
    _expect(d, "formats.mat.operands.kt", "unknown key(s) bitz")
    d = raw()
    del d["formats"]["mat"]["operands"][4]["bits"]
    _expect(d, "formats.mat.operands.kt", "missing key(s): bits")


def test_rejects_inconsistent_registers_spaces_and_names():
    d = raw()
    d["registers"]["int"]["count"] = (1 << d["widths"]["reg"]) + 1
    _expect(d, "registers.int.count", "do not fit")
    d = raw()
    d["spaces"]["ddr"]["code"] = d["spaces"]["hbm"]["code"]
    _expect(d, "spaces.ddr.code", "duplicates space 'hbm'")
    d = raw()
    d["spaces"]["ddr"]["code"] = 1 << d["widths"]["space"]
    _expect(d, "spaces.ddr.code")
    d = raw()
    d["formats"]["ctrl"]["operands"][0]["name"] = "opcode"
    _expect(d, "reserved name")
    d = raw()
    d["formats"]["mat"]["operands"].append({"name": "kt_reg", "kind": "reg"})
    _expect(d, "formats.mat", "collides")
    d = raw()
    del d["widths"]["opcode"]
    _expect(d, "widths", "missing width 'opcode'")
    d = raw()
    d["instructions"]["nop"]["doc"] = ""
    _expect(d, "instructions.nop.doc")
    d = raw()
    d["word_bits"] = 100
    _expect(d, "word_bits", "multiple of 8")


def test_rejects_bad_yaml(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("a: [1,\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(p)
    with pytest.raises(SpecError, match="cannot read"):
        load_spec(tmp_path / "missing.yaml")


def test_parse_does_not_mutate_its_input():
    d = raw()
    parse_spec(d)
    assert d == SPEC.raw
