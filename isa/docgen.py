"""Render the ISA reference ``docs/isa.md`` from ``spec.yaml``.

``python -m dfx.isa.docgen`` writes the page; ``--check`` exits 1 when the file on disk differs
from what the spec generates (run in the test suite, so the page cannot drift).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from dfx.isa.asm import assemble, disassemble, format_instruction, format_operand
from dfx.isa.encoding import Count, Instruction, MemAddr, VAddr
from dfx.isa.spec import FieldSpec, Spec, load_spec

__all__ = ["DEFAULT_OUTPUT", "EXAMPLES", "example", "main", "render"]

DEFAULT_OUTPUT = Path(__file__).resolve().parent.parent / "docs" / "isa.md"

#: Example operands for the reference page (instructions not listed show all-zero operands).
EXAMPLES: dict[str, dict[str, Any]] = {
    "loop": {"count": Count(0, reg=3), "body": 4},
    "jmp": {"target": -6},
    "beq": {"rs1": 1, "rs2": 2, "target": 5},
    "bne": {"rs1": 1, "rs2": 0, "target": -7},
    "blt": {"rs1": 4, "rs2": 5, "target": -3},
    "bge": {"rs1": 4, "rs2": 5, "target": 9},
    "li": {"rd": 1, "imm": 768},
    "add": {"rd": 3, "rs1": 1, "rs2": 2},
    "sub": {"rd": 3, "rs1": 3, "rs2": 2},
    "addi": {"rd": 10, "rs1": 10, "imm": 589824},
    "muli": {"rd": 4, "rs1": 2, "imm": 1536},
    "shli": {"rd": 5, "rs1": 2, "imm": 7},
    "shri": {"rd": 5, "rs1": 5, "imm": 1},
    "andi": {"rd": 6, "rs1": 5, "imm": 63},
    "lw": {"rd": 2, "mem": MemAddr("ddr", 0, 64)},
    "sw": {"rs1": 2, "mem": MemAddr("ddr", 7, 0)},
    "conv1d": {
        "y": VAddr(0, 12),
        "x": VAddr(0, 0),
        "w": MemAddr("wbuf", 0, 0),
        "b": MemAddr("hbm", 10, 0x3000),
        "kt": Count(12),
        "nt": Count(48),
        "gelu": True,
    },
    "maskedmm": {
        "y": VAddr(0, 40),
        "x": VAddr(0, 24),
        "w": MemAddr("hbm", 11, 0),
        "kt": Count(1),
        "nt": Count(0, reg=7),
        "limit": 7,
        "scale": 1,
        "max": 16,
    },
    "mm": {
        "y": VAddr(0, 24),
        "x": VAddr(0, 40),
        "w": MemAddr("hbm", 12, 0),
        "kt": Count(0, reg=8),
        "nt": Count(1),
        "kt_stride": 16,
    },
    "vadd": {"y": VAddr(0, 0), "a": VAddr(0, 0), "b": VAddr(0, 12), "n": Count(12)},
    "vsub": {"y": VAddr(0, 36), "a": VAddr(0, 0), "b": VAddr(0, 24), "n": Count(12)},
    "vmul": {"y": VAddr(0, 36), "a": VAddr(0, 36), "b": VAddr(0, 48), "n": Count(12)},
    "vadds": {"y": VAddr(0, 12), "a": VAddr(0, 12), "s": 2, "n": Count(12)},
    "vsubs": {"y": VAddr(0, 40), "a": VAddr(0, 40), "s": 16, "n": Count(0, reg=7)},
    "vmuls": {"y": VAddr(0, 40), "a": VAddr(0, 40), "s": 5, "n": Count(1, reg=7)},
    "vexp": {"y": VAddr(0, 40), "a": VAddr(0, 40), "n": Count(1, reg=7)},
    "vgelu": {"y": VAddr(0, 60), "a": VAddr(0, 60), "n": Count(48)},
    "vmov": {"y": VAddr(3, 0), "a": VAddr(0, 12), "n": Count(12)},
    "vacc": {"sd": 4, "a": VAddr(0, 0), "n": Count(12)},
    "vaccsq": {"sd": 5, "a": VAddr(0, 36), "n": Count(12)},
    "vmax": {"sd": 16, "a": VAddr(0, 40), "n": Count(1, reg=7)},
    "vargmax": {"rd": 2, "a": VAddr(0, 100), "n": Count(50257)},
    "sli": {"sd": 1, "imm": 0.125},
    "sadd": {"sd": 6, "sa": 5, "sb": 3},
    "ssub": {"sd": 6, "sa": 5, "sb": 4},
    "smul": {"sd": 4, "sa": 4, "sb": 3},
    "srecip": {"sd": 5, "sa": 4},
    "srsqrt": {"sd": 5, "sa": 6},
    "load": {"dst": MemAddr("vrf", 0, 0), "src": MemAddr("hbm", 10, 0x1000), "n": Count(768)},
    "store": {
        "dst": MemAddr("hbm", 13, 0),
        "src": MemAddr("vrf", 0, 24),
        "n": Count(64),
        "stride": 128,
    },
    "store_t": {
        "dst": MemAddr("hbm", 14, 0),
        "src": MemAddr("vrf", 0, 12),
        "n": Count(64),
        "stride": 8192,
    },
    "copy": {
        "dst": MemAddr("wbuf", 0, 0),
        "src": MemAddr("hbm", 10, 0x40000),
        "n": Count(0, reg=9),
    },
    "send": {"v": VAddr(0, 12), "n": Count(12)},
    "recv": {"v": VAddr(0, 24), "n": Count(12)},
}

#: The assembly-language example (assembled when the page is rendered, so it stays valid).
ASM_EXAMPLE = """\
top:
    loop count=r3                    # body= is counted up to the matching endloop
    vadd y=v[r0+0], a=v[r0+0], b=v[r0+12], n=12
    endloop
    bne rs1=r1, rs2=r0, target=top  ; or target=@-3
    halt
"""

#: The instruction used for the worked encoding example.
WORKED_EXAMPLE = "conv1d"


def example(name: str, spec: Spec | None = None) -> Instruction:
    """The example instruction shown for ``name``."""
    spec = spec or load_spec()
    ops = EXAMPLES.get(name, {})
    known = spec.instructions[name].operand_by_name
    return Instruction.make(name, spec=spec, **{k: v for k, v in ops.items() if k in known})


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return out


def _range(f: FieldSpec, spec: Spec) -> str:
    if f.codes is not None:
        return ", ".join(
            f"{s.code} = {s.name}" for s in sorted(spec.spaces.values(), key=lambda s: s.code)
        )
    if f.operand_kind == "f32":
        return "binary32 bit pattern"
    if f.operand_kind == "flag":
        return "0, 1"
    if f.regfile == "int":
        return f"r{f.lo}..r{f.hi}"
    if f.regfile == "scalar":
        return f"s{f.lo}..s{f.hi}"
    return f"{f.lo}..{f.hi}"


def render(spec: Spec | None = None) -> str:
    """The Markdown text of the ISA reference page."""
    spec = spec or load_spec()
    op = spec.opcode_field
    L: list[str] = []
    L += [
        f"# {spec.name} instruction set reference",
        "",
        "<!-- Generated from isa/spec.yaml by `python -m dfx.isa.docgen`; do not edit by hand."
        " The test suite fails when this page and the spec differ. -->",
        "",
        f"ISA **{spec.name}** version **{spec.version}**, spec hash `{spec.hash}` (sha256 of "
        "the canonical JSON of the parsed `isa/spec.yaml`; binaries record it).",
        "",
        f"{len(spec.instructions)} instructions in {len(spec.classes)} classes and "
        f"{len(spec.formats)} formats. Everything on this page, and every encoder, decoder, "
        "assembler and RTL layout in the project, is derived from `isa/spec.yaml`.",
        "",
        "## Encoding rules",
        "",
        f"* Every instruction is one little-endian word of {spec.word_bits} bits "
        f"({spec.word_bytes} bytes). A program is a sequence of words; the pc counts "
        "instructions, not bytes.",
        f"* The opcode is always bits {op.bits} ({op.width} bits). It selects the instruction "
        "and therefore its format.",
        f"* The other fields are packed from bit {op.width} upwards, without gaps, in the order "
        "the format lists its operands. Each operand expands to the fields of its kind "
        "(see [Operand kinds](#operand-kinds)), in the kind's order.",
        "* Field names: a one-field operand gives its own name (`rd`, `imm`, `gelu`); in a "
        "multi-field operand the `imm` field takes the operand's name and the others are "
        "`<operand>_<field>` (maddr `w` → `w_space`, `w_base`, `w_off`; count `kt` → `kt`, "
        "`kt_reg`).",
        "* Bits above a format's last field are reserved and must be zero. A field of the "
        "format that an instruction does not use must be zero too. Decoders reject undefined "
        "opcodes and non-zero unused or reserved bits.",
        "* `simm` and `pcrel` fields are two's complement. A `pcrel` target is counted in "
        "instructions from the branch itself (`@+1` is the next instruction).",
        "* Addresses are a base register plus an unsigned offset; r0 always reads as zero, so "
        "`r0 + off` is an absolute address. A count is an immediate plus a register (r0 adds "
        "nothing).",
        "",
    ]
    rules = spec.raw.get("execution") or []
    if rules:
        L += ["## Execution rules", ""]
        L += [f"* {' '.join(str(r).split())}" for r in rules]
        L.append("")
    # worked example
    ex = example(WORKED_EXAMPLE, spec)
    fields = ex.fields
    L += [
        "### Worked example",
        "",
        "```",
        format_instruction(ex),
        "```",
        "",
        f"uses format `{ex.spec.format.name}`; its non-zero fields are:",
        "",
    ]
    rows = [
        [f"`{f.bits}`", f"`{f.name}`", str(fields[f.name]), f"{fields[f.name]:#x}"]
        for f in ex.spec.format.fields
        if fields[f.name]
    ]
    L += _table(["Bits", "Field", "Value", "Hex"], rows)
    L += [
        "",
        f"giving the word `{ex.word:#0{spec.word_bits // 4 + 2}x}`, stored little-endian as "
        "the bytes",
        "",
        "```",
        ex.encode().hex(" "),
        "```",
        "",
    ]

    # assembly
    L += [
        "## Assembly language",
        "",
        "`dfx asm` / `dfx disasm` (module `dfx.isa.asm`) use one instruction per line: "
        "`mnemonic operand=value, ...`. Operands may come in any order; omitted operands are "
        "zero. The text of each operand kind is in the [Operand kinds](#operand-kinds) table; "
        "a set flag is written as its bare name.",
        "",
        "* `#` and `;` start a comment; blank lines are ignored.",
        "* `name:` defines a label, on its own line or before an instruction; a `pcrel` operand "
        "takes a label or a relative count `@+3` / `@-7`.",
        "* `loop` without `body=` (or with `body=auto`): the assembler counts the instructions up "
        "to and including the matching `endloop`.",
        "* Integers are decimal, `0x` hex or `0b` binary; `f32` immediates are float literals "
        "(`0.125`, `-0.0`, `inf`, `nan`) or a bit pattern `f32:0x3e000000`.",
        "* The disassembler prints every non-zero field, so disassembling and re-assembling "
        "any valid instruction gives the same bytes.",
        "",
        "```",
        ASM_EXAMPLE.rstrip("\n"),
        "```",
        "",
        "assembles to (`dfx disasm` output, with the pc of each instruction as a comment):",
        "",
        "```",
        disassemble(assemble(ASM_EXAMPLE, "docs/isa.md", spec)).rstrip("\n"),
        "```",
        "",
    ]

    # registers, spaces
    L += ["## Register files", ""]
    prefix = {"int": "r", "scalar": "s"}
    rows = [
        [
            name,
            f"{prefix.get(name, name)}0..{prefix.get(name, name)}{r.count - 1}",
            str(r.count),
            str(r.bits) if r.bits else "—",
            r.doc,
        ]
        for name, r in spec.registers.items()
    ]
    L += _table(["File", "Registers", "Count", "Bits", "Description"], rows) + [""]
    L += [
        "## Memory spaces",
        "",
        f"A memory-address operand names its space in a {spec.widths['space']}-bit field.",
        "",
    ]
    rows = [
        [f"`{s.name}`", str(s.code), s.unit, s.doc]
        for s in sorted(spec.spaces.values(), key=lambda s: s.code)
    ]
    L += _table(["Space", "Code", "Unit", "Description"], rows) + [""]

    # operand kinds
    L += [
        "## Operand kinds",
        "",
        "Field widths come from `widths` in the spec ("
        + ", ".join(f"{k} {v}" for k, v in spec.widths.items())
        + " bits) or from the operand (`bits` for `imm`, `off_bits` for `off`).",
        "",
    ]
    samples = _kind_samples(spec)
    rows = [
        [
            f"`{k.name}`",
            ", ".join(f"`{f}`" for f in k.fields),
            f"`{samples[k.name]}`" if k.name in samples else "",
            k.doc,
        ]
        for k in spec.operand_kinds.values()
    ]
    L += _table(["Kind", "Fields", "Assembly", "Description"], rows) + [""]

    # formats
    L += ["## Formats", ""]
    for fmt in spec.formats.values():
        L += [
            f"### Format `{fmt.name}`",
            "",
            fmt.doc,
            "",
            f"{fmt.width} of {spec.word_bits} bits used. Instructions: "
            + ", ".join(f"`{i.name}`" for i in spec.instructions.values() if i.format is fmt)
            + ".",
            "",
        ]
        rows = [
            [
                f"`{f.bits}`",
                f"`{f.name}`",
                str(f.width),
                f.operand or "",
                f"{f.operand_kind}.{f.kind}" if f.operand_kind else "opcode",
                _range(f, spec),
            ]
            for f in fmt.fields
        ]
        if fmt.reserved_width:
            rows.append(
                [
                    f"`[{spec.word_bits - 1}:{fmt.width}]`",
                    "reserved",
                    str(fmt.reserved_width),
                    "",
                    "",
                    "0",
                ]
            )
        L += _table(["Bits", "Field", "Width", "Operand", "Kind", "Values"], rows) + [""]

    # instructions
    L += ["## Instructions", ""]
    for cls in spec.classes.values():
        instrs = [i for i in spec.instructions.values() if i.cls == cls.name]
        if not instrs:
            continue
        L += [f"### {cls.name.capitalize()} (unit: {cls.unit})", "", cls.doc, ""]
        rows = []
        for i in instrs:
            ops = ", ".join(f"{o.name}: {o.kind}" for o in i.operands) or "—"
            rows.append(
                [
                    f"`{i.name}`",
                    f"`{i.opcode:#04x}`",
                    f"`{i.format.name}`",
                    ops,
                    i.doc,
                    f"`{format_instruction(example(i.name, spec))}`",
                ]
            )
        L += _table(
            ["Mnemonic", "Opcode", "Format", "Operands", "Description", "Example"], rows
        ) + [""]

    # opcode map
    L += ["## Opcode map", ""]
    rows = [
        [f"`{i.opcode:#04x}`", f"`{i.name}`", i.cls, f"`{i.format.name}`"]
        for i in sorted(spec.instructions.values(), key=lambda i: i.opcode)
    ]
    L += _table(["Opcode", "Mnemonic", "Class", "Format"], rows)
    return "\n".join(L) + "\n"


def _kind_samples(spec: Spec) -> dict[str, str]:
    """One assembly sample per operand kind, taken from the example instructions."""
    out: dict[str, str] = {}
    for name in spec.instructions:
        ins = example(name, spec)
        for o in ins.spec.operands:
            v = ins.operands[o.name]
            if o.kind not in out and v not in (0, False, Count(), VAddr()):
                text = format_operand(o, v)
                out[o.kind] = text if o.kind == "flag" else f"{o.name}={text}"
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m dfx.isa.docgen",
        description="Render the ISA reference page docs/isa.md from isa/spec.yaml.",
    )
    ap.add_argument(
        "-o",
        "--output",
        type=Path,
        default=DEFAULT_OUTPUT,
        help="where to write the page (default: %(default)s)",
    )
    ap.add_argument(
        "--check",
        action="store_true",
        help="do not write; exit 1 if the page is missing or out of date",
    )
    args = ap.parse_args(argv)
    text = render()
    if args.check:
        try:
            current = args.output.read_text(encoding="utf-8")
        except OSError:
            current = None
        if current != text:
            print(
                f"{args.output} is out of date with isa/spec.yaml; run: python -m dfx.isa.docgen",
                file=sys.stderr,
            )
            return 1
        print(f"{args.output} is up to date")
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.output.with_name(args.output.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(args.output)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
