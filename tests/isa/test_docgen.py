"""docs/isa.md is generated from the spec and must not drift from it."""

from __future__ import annotations

from dfx.isa import docgen
from dfx.isa.asm import assemble, format_instruction
from dfx.isa.spec import load_spec

SPEC = load_spec()


def test_docs_isa_md_is_up_to_date():
    current = docgen.DEFAULT_OUTPUT.read_text(encoding="utf-8")
    assert current == docgen.render(), (
        "docs/isa.md is out of date with isa/spec.yaml; run: python -m dfx.isa.docgen"
    )
    assert docgen.main(["--check"]) == 0


def test_check_detects_drift(tmp_path, capsys):
    out = tmp_path / "isa.md"
    assert docgen.main(["--check", "-o", str(out)]) == 1  # missing
    assert docgen.main(["-o", str(out)]) == 0
    assert docgen.main(["--check", "-o", str(out)]) == 0
    out.write_text(out.read_text().replace("| `halt` |", "| `stop` |"))
    assert docgen.main(["--check", "-o", str(out)]) == 1
    assert "out of date" in capsys.readouterr().err


def test_page_covers_the_whole_spec():
    page = docgen.render()
    assert SPEC.version in page and SPEC.hash in page
    for name, i in SPEC.instructions.items():
        assert f"| `{name}` | `{i.opcode:#04x}` |" in page
        ex = docgen.example(name)
        assert f"`{format_instruction(ex)}`" in page
        assert assemble(format_instruction(ex)) == [ex]  # examples are valid assembly
    for fmt in SPEC.formats.values():
        assert f"### Format `{fmt.name}`" in page
        for f in fmt.fields:
            assert f"| `{f.bits}` | `{f.name}` | {f.width} |" in page
    for s in SPEC.spaces.values():
        assert f"| `{s.name}` | {s.code} |" in page
    for c in SPEC.classes.values():
        assert f"### {c.name.capitalize()} (unit: {c.unit})" in page


def test_examples_name_only_real_instructions_and_operands():
    for name, ops in docgen.EXAMPLES.items():
        assert name in SPEC.instructions, name
        assert set(ops) <= set(SPEC.instructions[name].operand_names), name
