"""The dfx assembly language: a readable text form of instructions, derived from the spec.

One instruction per line, ``mnemonic operand=value, ...``::

    top:                                   # a label (own line, or before an instruction)
        loop count=r3                      # body= is counted up to the matching endloop
        conv1d y=v[r0+12], x=v[r0+0], w=hbm[r10+0x1000], b=ddr[r0+64], kt=12, nt=r5, gelu
        endloop
        bne rs1=r1, rs2=r0, target=top     ; or target=@-3
        halt

Operand text by kind (``operand_kinds`` in ``spec.yaml``):

========  ==========================================================================
vaddr     ``v[r3+12]`` (also ``v[r3]``, ``v[12]``)
maddr     ``hbm[r10+0x1000]`` — any memory space name, same forms as vaddr
count     ``12``, ``r5``, ``r5+12``
reg       ``r7``;  sreg ``s7``
uimm      decimal or ``0x``/``0b``;  simm the same, may be negative
f32       a float literal (``0.125``, ``-0.0``, ``inf``, ``nan``) or ``f32:0x3e000000``
pcrel     a label or ``@+3`` / ``@-7`` (instructions relative to this one)
flag      its bare name when set (``gelu``); ``gelu=0``/``gelu=1`` also accepted
========  ==========================================================================

Operands may be given in any order and those left out are zero. ``#`` and ``;`` start a
comment. :func:`disassemble` prints every operand that is not zero (and every address,
register and count operand) so that disassembling and re-assembling any valid instruction
gives the same bytes.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from typing import Any

from dfx.isa.encoding import F32, Count, Instruction, MemAddr, VAddr, f32_bits
from dfx.isa.errors import IsaError
from dfx.isa.spec import InstrSpec, OperandSpec, Spec, load_spec

__all__ = [
    "assemble",
    "assemble_with_labels",
    "disassemble",
    "format_instruction",
    "format_operand",
    "parse_operand",
]

#: The hardware loop whose ``body`` operand the assembler counts up to the matching end.
LOOP_OP, LOOP_BODY, LOOP_END = "loop", "body", "endloop"
#: Offsets from this value up are printed in hex in memory addresses.
HEX_FROM = 0x1000

_LABEL_RE = re.compile(r"\s*([A-Za-z_.$][\w.$]*)\s*:")
_MNEMONIC_RE = re.compile(r"([A-Za-z_][\w.]*)(?:\s+(.*))?$")
_ADDR_RE = re.compile(r"([A-Za-z_]\w*)\s*\[(.*)\]$")
_REG_RE = re.compile(r"r(\d{1,6})$")
_SREG_RE = re.compile(r"s(\d{1,6})$")
_PCREL_RE = re.compile(r"@\s*([+-]\s*\d+|0)$")
_NAME_RE = re.compile(r"[A-Za-z_.$][\w.$]*$")


# ---------------------------------------------------------------------------------------------
# Formatting


def _hex_or_dec(v: int) -> str:
    return f"{v:#x}" if v >= HEX_FROM else str(v)


def _f32_text(f: F32) -> str:
    """Shortest float literal that assembles back to exactly these bits, else f32:0x..."""
    v = f.value
    if v != v:  # NaN: only the canonical one has a float spelling
        return "nan" if f.bits == f32_bits(float("nan")) else f"f32:0x{f.bits:08x}"
    for p in range(1, 10):
        text = repr(float(f"{v:.{p}g}"))
        try:
            if f32_bits(float(text)) == f.bits:
                return text
        except OverflowError:  # rounded up past the largest binary32
            continue
    return f"f32:0x{f.bits:08x}"  # pragma: no cover - 9 digits always suffice


def format_operand(
    op: OperandSpec, value: Any, pc: int | None = None, labels: Mapping[int, str] | None = None
) -> str:
    """The text of one operand value (without ``name=``; a set flag is its name)."""
    kind = op.kind
    if kind == "vaddr":
        return f"v[r{value.base}+{value.off}]"
    if kind == "maddr":
        return f"{value.space}[r{value.base}+{_hex_or_dec(value.off)}]"
    if kind == "count":
        if value.reg and value.imm:
            return f"r{value.reg}+{value.imm}"
        return f"r{value.reg}" if value.reg else str(value.imm)
    if kind == "reg":
        return f"r{value}"
    if kind == "sreg":
        return f"s{value}"
    if kind == "f32":
        return _f32_text(value)
    if kind == "pcrel":
        if pc is not None and labels is not None and pc + value in labels:
            return labels[pc + value]
        return f"@{value:+d}"
    if kind == "flag":
        return op.name if value else f"{op.name}=0"
    return str(value)  # uimm, simm


def _printed(ispec: InstrSpec, op: OperandSpec, value: Any) -> bool:
    if op.kind == "flag":
        return bool(value)
    if op.kind == "uimm":
        return value != 0 or (ispec.name == LOOP_OP and op.name == LOOP_BODY)
    return True


def format_instruction(
    ins: Instruction, pc: int | None = None, labels: Mapping[int, str] | None = None
) -> str:
    """One instruction as assembly text (no label, no comment)."""
    parts = []
    for op in ins.spec.operands:
        value = ins.operands[op.name]
        if not _printed(ins.spec, op, value):
            continue
        text = format_operand(op, value, pc, labels)
        parts.append(text if op.kind == "flag" else f"{op.name}={text}")
    return f"{ins.op} {', '.join(parts)}" if parts else ins.op


def disassemble(
    instrs: Sequence[Instruction], annotations: Mapping[int, str] | None = None, pcs: bool = True
) -> str:
    """Assembly text for a program. Branch targets inside the program (or just past its end)
    get labels ``L<pc>:``; others print as ``@+N``. ``annotations`` (pc → text) and the pc
    (``pcs``) are appended as ``#`` comments. The result assembles to identical bytes."""
    annotations = annotations or {}
    n = len(instrs)
    targets: set[int] = set()
    for pc, ins in enumerate(instrs):
        for op in ins.spec.operands:
            if op.kind == "pcrel" and 0 <= pc + ins.operands[op.name] <= n:
                targets.add(pc + ins.operands[op.name])
    labels = {t: f"L{t}" for t in sorted(targets)}
    body = [(pc, "    " + format_instruction(ins, pc, labels)) for pc, ins in enumerate(instrs)]
    col = min(max((len(t) for _, t in body), default=0), 76)
    pcw = len(str(max(n - 1, 0)))
    lines = []
    for pc, text in body:
        if pc in labels:
            lines.append(f"{labels[pc]}:")
        note = []
        if pcs:
            note.append(f"{pc:>{pcw}}")
        ann = annotations.get(pc)
        if ann:
            note.append(" ".join(str(ann).split()))
        lines.append(f"{text:<{col}}  # {'  '.join(note)}" if note else text)
    if n in labels:
        lines.append(f"{labels[n]}:")
    return "\n".join(lines) + "\n" if lines else ""


# ---------------------------------------------------------------------------------------------
# Parsing


def _int(text: str) -> int:
    t = text.replace(" ", "")
    sign = -1 if t.startswith("-") else 1
    body = t[1:] if t[:1] in "+-" else t
    if not body or not (body[0].isdigit()):
        raise ValueError(text)
    if len(body) > 80:  # no operand field is that wide; int() would refuse > 4300 digits
        raise ValueError(f"number of {len(body)} digits is too long")
    try:
        v = int(body, 0)
    except ValueError:
        v = int(body, 10)  # leading zeros: 007
    return sign * v


def _sum(text: str) -> tuple[int, int] | None:
    """``r5+12`` / ``12`` / ``r5`` / ``12+r5`` → (imm, reg); None if malformed."""
    imm = reg = None
    for term in text.split("+"):
        term = term.strip()
        m = _REG_RE.match(term)
        if m:
            if reg is not None:
                return None
            reg = int(m.group(1))
            continue
        try:
            v = _int(term)
        except ValueError:
            return None
        if imm is not None:
            return None
        imm = v
    if imm is None and reg is None:
        return None
    return imm or 0, reg or 0


def _parse_f32(text: str) -> F32 | float | None:
    low = text.lower()
    if low.startswith("f32:"):
        try:
            return F32(_int(low[4:]))
        except ValueError:
            return None
    try:
        v = float(text)
    except ValueError:
        return None
    if v in (float("inf"), float("-inf")) and "inf" not in low:
        raise IsaError(f"{text} is too large for binary32")
    return v


_EXPECT = {
    "vaddr": "a VRF address like v[r3+12]",
    "maddr": "a memory address like hbm[r10+0x1000]",
    "count": "a count like 12, r5 or r5+12",
    "reg": "an integer register like r7",
    "sreg": "a scalar register like s7",
    "uimm": "an unsigned integer",
    "simm": "an integer",
    "f32": "a float (0.125, -inf, nan) or f32:0x3e000000",
    "pcrel": "a label or @+N / @-N",
    "flag": "0 or 1 (or just the flag's name)",
}


def parse_operand(op: OperandSpec, text: str, spec: Spec | None = None) -> Any:
    """Parse one operand's value text. Returns the value for ``Instruction.make``, or a
    ``str`` label name for a pcrel label reference. Raises ValueError if malformed."""
    kind = op.kind
    t = text.strip()
    if kind in ("vaddr", "maddr"):
        m = _ADDR_RE.match(t)
        if m:
            prefix, inner = m.groups()
            s = _sum(inner)
            if s is not None:
                imm, reg = s
                if kind == "vaddr" and prefix == "v":
                    return VAddr(reg, imm)
                if kind == "maddr":
                    spaces = (spec or load_spec()).spaces
                    if prefix not in spaces:
                        raise IsaError(
                            f"operand {op.name}: unknown memory space {prefix!r} "
                            f"(spaces: {', '.join(spaces)})"
                        )
                    return MemAddr(prefix, reg, imm)
    elif kind == "count":
        s = _sum(t)
        if s is not None:
            return Count(*s)
    elif kind in ("reg", "sreg"):
        m = (_REG_RE if kind == "reg" else _SREG_RE).match(t)
        if m:
            return int(m.group(1))
    elif kind in ("uimm", "simm"):
        try:
            return _int(t)
        except ValueError:
            pass
    elif kind == "f32":
        try:
            v = _parse_f32(t)
        except IsaError as e:
            raise IsaError(f"operand {op.name}: {e}") from None
        if v is not None:
            return v
    elif kind == "pcrel":
        m = _PCREL_RE.match(t)
        if m:
            return _int(m.group(1))
        if _NAME_RE.match(t):
            return t  # a label, resolved by the assembler
    elif kind == "flag":
        low = t.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
    raise ValueError(f"operand {op.name}: expected {_EXPECT[kind]}, got {t!r}")


class _Line:
    __slots__ = ("lineno", "mnemonic", "args", "auto_end")

    def __init__(self, lineno: int, mnemonic: str, args: str) -> None:
        self.lineno = lineno
        self.mnemonic = mnemonic
        self.args = args
        self.auto_end: int | None = None  # pc of the matching endloop (for loops)


def _cut(text: str, n: int = 60) -> str:
    """``repr`` of source text for a message, cut at ``n`` characters."""
    r = repr(text)
    return r if len(r) <= n else r[: n - 3] + "..."


def _strip_comment(line: str) -> str:
    cut = len(line)
    for ch in "#;":
        i = line.find(ch)
        if i >= 0:
            cut = min(cut, i)
    return line[:cut]


def assemble(text: str, source: str = "<stdin>", spec: Spec | None = None) -> list[Instruction]:
    """Assemble a program. Errors are :class:`IsaError` ``source:line: message``."""
    return assemble_with_labels(text, source, spec)[0]


def assemble_with_labels(
    text: str, source: str = "<stdin>", spec: Spec | None = None, *,
    max_instructions: int | None = None, buffer: str = "",
) -> tuple[list[Instruction], dict[str, int]]:
    """Like :func:`assemble`, also returning the labels (name → pc, in definition order).

    ``max_instructions``: the size of the instruction buffer the program must fit
    (``buffers.instruction_words`` of a core; ``buffer`` names it in the message). Assembly
    stops at the first line beyond it."""
    spec = spec or load_spec()
    lines: list[_Line] = []
    labels: dict[str, tuple[int, int]] = {}  # name → (pc, lineno)
    loop_stack: list[_Line] = []

    def err(lineno: int, msg: str) -> IsaError:
        return IsaError(f"{source}:{lineno}: {msg}")

    # pass 1: labels, instruction lines, loop nesting
    for lineno, raw in enumerate(text.splitlines(), start=1):
        rest = _strip_comment(raw)
        while True:
            m = _LABEL_RE.match(rest)
            if not m:
                break
            name = m.group(1)
            if name in labels:
                raise err(
                    lineno, f"duplicate label {name!r} (first defined at line {labels[name][1]})"
                )
            labels[name] = (len(lines), lineno)
            rest = rest[m.end() :]
        rest = rest.strip()
        if not rest:
            continue
        m = _MNEMONIC_RE.match(rest)
        if not m:
            raise err(lineno, f"cannot parse {_cut(rest)} (expected: mnemonic operand=value, "
                      "...)")
        if max_instructions is not None and len(lines) >= max_instructions:
            raise err(lineno, f"the program does not fit: more than {max_instructions} "
                      f"instructions{' (' + buffer + ')' if buffer else ''}")
        ln = _Line(lineno, m.group(1), m.group(2) or "")
        if ln.mnemonic == LOOP_OP:
            loop_stack.append(ln)
        elif ln.mnemonic == LOOP_END and loop_stack:
            loop_stack.pop().auto_end = len(lines)
        lines.append(ln)

    # pass 2: operands
    out: list[Instruction] = []
    for pc, ln in enumerate(lines):
        ispec = spec.instructions.get(ln.mnemonic)
        if ispec is None:
            close = difflib.get_close_matches(ln.mnemonic, list(spec.instructions), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise err(ln.lineno, f"unknown instruction {ln.mnemonic!r}{hint}")
        op_by_name = ispec.operand_by_name
        names = ", ".join(op_by_name) or "none"
        values: dict[str, Any] = {}
        items = [a.strip() for a in ln.args.split(",")] if ln.args.strip() else []
        for item in items:
            if not item:
                raise err(ln.lineno, f"{ispec.name}: empty operand (stray comma?)")
            name, eq, val = item.partition("=")
            name = name.strip()
            if name not in op_by_name:
                raise err(ln.lineno, f"{ispec.name}: unknown operand {name!r} (operands: {names})")
            if name in values:
                raise err(ln.lineno, f"{ispec.name}: operand {name!r} given twice")
            op = op_by_name[name]
            if not eq:
                if op.kind != "flag":
                    raise err(ln.lineno, f"{ispec.name}: operand {name} needs a value ({name}=...)")
                values[name] = True
                continue
            if ispec.name == LOOP_OP and name == LOOP_BODY and val.strip() == "auto":
                continue
            try:
                v = parse_operand(op, val, spec)
            except (ValueError, IsaError) as e:
                raise err(ln.lineno, f"{ispec.name}: {e}") from None
            if op.kind == "pcrel" and isinstance(v, str):
                if v not in labels:
                    raise err(ln.lineno, f"{ispec.name}: undefined label {v!r}")
                v = labels[v][0] - pc
            values[name] = v
        if ispec.name == LOOP_OP and LOOP_BODY in op_by_name and LOOP_BODY not in values:
            if ln.auto_end is None:
                raise err(
                    ln.lineno,
                    f"{LOOP_OP}: no matching {LOOP_END} to count "
                    f"{LOOP_BODY}= from (give {LOOP_BODY}=N)",
                )
            values[LOOP_BODY] = ln.auto_end - pc
        try:
            out.append(Instruction.make(ispec.name, spec=spec, **values))
        except IsaError as e:
            raise err(ln.lineno, str(e)) from None
    return out, {name: pc for name, (pc, _) in labels.items()}
