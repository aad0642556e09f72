"""The parsed, validated ISA specification (``isa/spec.yaml``).

``spec.yaml`` is the single source of truth for opcodes, formats, field widths and bit
positions; this module reads it, checks it for consistency and resolves every format to an
ordered list of bit fields. Everything else (encoder, decoder, assembler, simulators, RTL
layouts, ``docs/isa.md``) is derived from the :class:`Spec` returned by :func:`load_spec`.

Field layout rules (the header comment of ``spec.yaml``):

* the opcode is the first field, at bit 0, ``widths.opcode`` bits wide;
* then each operand of the format, in the order the format lists them, expands to the
  sub-fields of its kind (``operand_kinds.<kind>.fields``), packed upwards without gaps;
* bits above the last field are reserved (must be zero).

Field names: a one-field kind gives the operand's name (``rd``, ``imm``, ``gelu``); for
multi-field kinds the ``imm`` sub-field takes the operand's name and every other sub-field is
``<operand>_<sub>`` (maddr ``w`` → ``w_space``, ``w_base``, ``w_off``; count ``kt`` → ``kt``,
``kt_reg``). Sub-field widths come from ``widths`` (``base``, ``reg``, ``sreg``, ``space``,
``opcode``), otherwise from the operand: ``bits`` for ``imm`` and ``<sub>_bits`` for the others
(``off_bits``).
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from dfx.isa.errors import IsaError

__all__ = [
    "ClassSpec",
    "FieldSpec",
    "FormatSpec",
    "InstrSpec",
    "KindSpec",
    "OperandSpec",
    "RegFileSpec",
    "SpaceSpec",
    "Spec",
    "SpecError",
    "IMPLEMENTED_KINDS",
    "RESERVED_NAMES",
    "load_spec",
    "parse_spec",
    "spec_path",
]


class SpecError(IsaError):
    """``spec.yaml`` itself is malformed or inconsistent."""


#: Operand kinds the encoder/assembler implement (their meaning, not their widths, is code).
IMPLEMENTED_KINDS = frozenset(
    {"vaddr", "maddr", "count", "reg", "sreg", "uimm", "simm", "f32", "pcrel", "flag"}
)
#: Operand kinds whose ``imm`` sub-field is two's-complement signed.
SIGNED_KINDS = frozenset({"simm", "pcrel"})
#: Sub-fields that index a register file, and which one.
REGFILE_OF_SUBFIELD = {"base": "int", "reg": "int", "sreg": "scalar"}
#: Names an operand or field may not take (attributes of ``Instruction`` and the RTL padding).
RESERVED_NAMES = frozenset(
    {
        "op",
        "opcode",
        "spec",
        "word",
        "operands",
        "fields",
        "reserved",
        "replace",
        "make",
        "encode",
        "text",
        "cls",
        "format",
    }
)
#: Register files the ISA needs (r and s registers).
REQUIRED_REGFILES = ("int", "scalar")

_TOP_KEYS = {
    "name",
    "version",
    "word_bits",
    "registers",
    "spaces",
    "operand_kinds",
    "widths",
    "formats",
    "classes",
    "instructions",
}


# ---------------------------------------------------------------------------------------------
# Resolved objects


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One bit field of a format: bits ``[lsb + width - 1 : lsb]`` of the word."""

    name: str
    lsb: int
    width: int
    kind: str  # sub-field kind: opcode, base, off, space, imm, reg, sreg
    operand: str | None  # the operand it belongs to (None for the opcode)
    operand_kind: str | None  # the operand's kind (vaddr, maddr, ..., None for the opcode)
    signed: bool = False
    lo: int = 0  # smallest allowed (decoded) value
    hi: int = 0  # largest allowed (decoded) value
    regfile: str | None = None  # "int"/"scalar" for register-index fields
    codes: tuple[int, ...] | None = None  # allowed values when not a plain range (spaces)

    @property
    def msb(self) -> int:
        return self.lsb + self.width - 1

    @property
    def mask(self) -> int:
        """All-ones mask of ``width`` bits (not shifted)."""
        return (1 << self.width) - 1

    @property
    def word_mask(self) -> int:
        """The field's bits in the instruction word."""
        return self.mask << self.lsb

    @property
    def bits(self) -> str:
        """``[msb:lsb]`` as in the docs."""
        return f"[{self.msb}:{self.lsb}]" if self.width > 1 else f"[{self.lsb}]"

    def describe(self) -> str:
        """Short description used in error messages: ``16-bit unsigned``."""
        if self.kind == "opcode":
            what = "opcode"
        elif self.regfile == "int":
            what = "integer register"
        elif self.regfile == "scalar":
            what = "scalar register"
        elif self.kind == "space":
            what = "memory space"
        elif self.operand_kind == "flag":
            what = "flag"
        elif self.operand_kind == "f32":
            what = "binary32"
        else:
            what = "signed" if self.signed else "unsigned"
        return f"{self.width}-bit {what}"

    def allowed(self) -> str:
        if self.codes is not None:
            return "one of " + ", ".join(str(c) for c in self.codes)
        return f"in {self.lo}..{self.hi}"

    def check(self, value: int, where: str) -> None:
        """Raise :class:`IsaError` unless ``value`` is allowed in this field."""
        if self.codes is not None:
            ok = value in self.codes
        else:
            ok = self.lo <= value <= self.hi
        if not ok:
            raise IsaError(
                f"{where}: field {self.name} ({self.describe()}) must be {self.allowed()}, "
                f"got {value}"
            )

    def to_raw(self, value: int) -> int:
        """Decoded value → the field's unsigned bit pattern (two's complement if signed)."""
        return value & self.mask

    def from_raw(self, raw: int) -> int:
        """The field's bit pattern → decoded value."""
        if self.signed and raw >> (self.width - 1):
            return raw - (1 << self.width)
        return raw


@dataclass(frozen=True, slots=True)
class KindSpec:
    name: str
    doc: str
    fields: tuple[str, ...]
    signed: bool


@dataclass(frozen=True, slots=True, eq=False)
class OperandSpec:
    """An operand of a format: its kind and the fields it expands to."""

    name: str
    kind: str
    fields: tuple[FieldSpec, ...]
    params: Mapping[str, int]  # bits / off_bits as written in the spec

    @property
    def field_by_sub(self) -> dict[str, FieldSpec]:
        return {f.kind: f for f in self.fields}


@dataclass(frozen=True, slots=True, eq=False)
class FormatSpec:
    name: str
    doc: str
    operands: Mapping[str, OperandSpec]  # in format order
    fields: tuple[FieldSpec, ...]  # opcode first, in bit order
    width: int  # bits used by fields
    word_bits: int

    @property
    def reserved_width(self) -> int:
        return self.word_bits - self.width

    @property
    def field_by_name(self) -> dict[str, FieldSpec]:
        return {f.name: f for f in self.fields}


@dataclass(frozen=True, slots=True, eq=False)
class InstrSpec:
    name: str
    opcode: int
    cls: str
    format: FormatSpec
    operands: tuple[OperandSpec, ...]  # in the instruction's listed order
    doc: str
    fields: tuple[FieldSpec, ...]  # fields it uses (opcode first), in bit order
    used_mask: int  # word bits covered by the used fields

    @property
    def operand_names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.operands)

    @property
    def operand_by_name(self) -> dict[str, OperandSpec]:
        return {o.name: o for o in self.operands}


@dataclass(frozen=True, slots=True)
class SpaceSpec:
    name: str
    code: int
    unit: str
    doc: str


@dataclass(frozen=True, slots=True)
class RegFileSpec:
    name: str
    count: int
    bits: int | None
    doc: str


@dataclass(frozen=True, slots=True)
class ClassSpec:
    name: str
    unit: str
    doc: str


@dataclass(frozen=True)
class Spec:
    """The whole ISA, resolved. Obtain with :func:`load_spec`."""

    name: str
    version: str
    hash: str  # sha256 of the canonical JSON of the parsed YAML (comments do not count)
    word_bits: int
    widths: Mapping[str, int]
    registers: Mapping[str, RegFileSpec]
    spaces: Mapping[str, SpaceSpec]
    operand_kinds: Mapping[str, KindSpec]
    formats: Mapping[str, FormatSpec]
    classes: Mapping[str, ClassSpec]
    instructions: Mapping[str, InstrSpec]  # in spec order
    opcode_field: FieldSpec
    source: str = ""
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def word_bytes(self) -> int:
        return self.word_bits // 8

    @functools.cached_property
    def by_opcode(self) -> dict[int, InstrSpec]:
        return {i.opcode: i for i in self.instructions.values()}

    @functools.cached_property
    def space_by_code(self) -> dict[int, SpaceSpec]:
        return {s.code: s for s in self.spaces.values()}


# ---------------------------------------------------------------------------------------------
# Loading and validation


@functools.cache
def spec_path() -> Path:
    """Path of the packaged ``spec.yaml``."""
    return Path(str(resources.files("dfx.isa").joinpath("spec.yaml")))


def spec_hash(data: Any) -> str:
    """sha256 hex of the canonical JSON dump of the parsed YAML."""
    canon = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canon.encode("utf-8")).hexdigest()


@functools.lru_cache(maxsize=8)
def _load_cached(path: str) -> Spec:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise SpecError(f"{p}: cannot read the ISA specification: {e.strerror or e}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise SpecError(f"{p}: not valid YAML: {' '.join(str(e).split())}") from None
    return parse_spec(data, source=str(p))


def load_spec(path: str | Path | None = None) -> Spec:
    """Load and validate ``spec.yaml`` (the packaged one by default). Cached per path."""
    return _load_cached(str(Path(path) if path is not None else spec_path()))


class _Checker:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, msg: str) -> SpecError:
        return SpecError(f"{self.source}: {where}: {msg}")

    def mapping(self, obj: Any, where: str) -> Mapping[str, Any]:
        if not isinstance(obj, Mapping):
            raise self.fail(where, f"must be a mapping, got {type(obj).__name__}")
        for k in obj:
            if not isinstance(k, str):
                raise self.fail(where, f"key {k!r} must be a string")
        return obj

    def int_(self, obj: Any, where: str, lo: int = 0, hi: int | None = None) -> int:
        if isinstance(obj, bool) or not isinstance(obj, int):
            raise self.fail(where, f"must be an integer, got {obj!r}")
        if obj < lo or (hi is not None and obj > hi):
            rng = f"{lo}..{hi}" if hi is not None else f">= {lo}"
            raise self.fail(where, f"must be {rng}, got {obj}")
        return obj

    def str_(self, obj: Any, where: str, allow_empty: bool = False) -> str:
        if not isinstance(obj, str) or (not allow_empty and not obj.strip()):
            raise self.fail(where, f"must be a non-empty string, got {obj!r}")
        return " ".join(obj.split())

    def name(self, obj: Any, where: str) -> str:
        if not isinstance(obj, str) or not obj.isidentifier() or obj != obj.lower():
            raise self.fail(where, f"name {obj!r} must be a lowercase identifier")
        if obj.startswith("_"):
            raise self.fail(where, f"name {obj!r} must not start with '_'")
        return obj

    def keys(
        self,
        obj: Mapping[str, Any],
        where: str,
        required: set[str],
        optional: set[str] = frozenset(),
    ) -> None:
        missing = sorted(required - set(obj))
        if missing:
            raise self.fail(where, f"missing key(s): {', '.join(missing)}")
        extra = sorted(set(obj) - required - set(optional))
        if extra:
            allowed = ", ".join(sorted(required | set(optional)))
            raise self.fail(where, f"unknown key(s) {', '.join(extra)} (allowed: {allowed})")


def parse_spec(data: Any, source: str = "spec.yaml") -> Spec:
    """Validate the parsed YAML of a spec and resolve it. Raises :class:`SpecError`."""
    c = _Checker(source)
    top = c.mapping(data, "top level")
    c.keys(top, "top level", _TOP_KEYS, {"execution"})
    name = c.str_(top["name"], "name")
    version = c.str_(str(top["version"]), "version")
    word_bits = c.int_(top["word_bits"], "word_bits", lo=8)
    if word_bits % 8:
        raise c.fail("word_bits", f"must be a multiple of 8, got {word_bits}")

    # widths ------------------------------------------------------------------------------
    widths_raw = c.mapping(top["widths"], "widths")
    widths: dict[str, int] = {}
    for k, v in widths_raw.items():
        widths[c.name(k, "widths")] = c.int_(v, f"widths.{k}", lo=1, hi=word_bits)
    for needed in ("opcode", *REGFILE_OF_SUBFIELD, "space"):
        if needed not in widths:
            raise c.fail("widths", f"missing width '{needed}'")

    # registers ---------------------------------------------------------------------------
    regs_raw = c.mapping(top["registers"], "registers")
    registers: dict[str, RegFileSpec] = {}
    for rname, r in regs_raw.items():
        where = f"registers.{rname}"
        r = c.mapping(r, where)
        c.keys(r, where, {"count", "doc"}, {"bits"})
        bits = c.int_(r["bits"], f"{where}.bits", lo=1) if "bits" in r else None
        registers[rname] = RegFileSpec(
            rname,
            c.int_(r["count"], f"{where}.count", lo=1),
            bits,
            c.str_(r["doc"], f"{where}.doc"),
        )
    for needed in REQUIRED_REGFILES:
        if needed not in registers:
            raise c.fail("registers", f"missing register file '{needed}'")
    for sub, rf in REGFILE_OF_SUBFIELD.items():
        if registers[rf].count > 1 << widths[sub]:
            raise c.fail(
                f"registers.{rf}.count",
                f"{registers[rf].count} registers do not fit the {widths[sub]}-bit "
                f"'{sub}' field (widths.{sub})",
            )

    # spaces ------------------------------------------------------------------------------
    spaces_raw = c.mapping(top["spaces"], "spaces")
    spaces: dict[str, SpaceSpec] = {}
    seen_codes: dict[int, str] = {}
    for sname, s in spaces_raw.items():
        where = f"spaces.{sname}"
        c.name(sname, where)
        s = c.mapping(s, where)
        c.keys(s, where, {"code", "unit", "doc"})
        code = c.int_(s["code"], f"{where}.code", hi=(1 << widths["space"]) - 1)
        if code in seen_codes:
            raise c.fail(f"{where}.code", f"code {code} duplicates space '{seen_codes[code]}'")
        seen_codes[code] = sname
        spaces[sname] = SpaceSpec(
            sname, code, c.str_(s["unit"], f"{where}.unit"), c.str_(s["doc"], f"{where}.doc")
        )
    if not spaces:
        raise c.fail("spaces", "at least one memory space is needed")
    space_codes = tuple(sorted(seen_codes))

    # operand kinds -----------------------------------------------------------------------
    kinds_raw = c.mapping(top["operand_kinds"], "operand_kinds")
    kinds: dict[str, KindSpec] = {}
    for kname, k in kinds_raw.items():
        where = f"operand_kinds.{kname}"
        if kname not in IMPLEMENTED_KINDS:
            raise c.fail(
                where,
                f"kind '{kname}' is not implemented by dfx.isa "
                f"(implemented: {', '.join(sorted(IMPLEMENTED_KINDS))})",
            )
        k = c.mapping(k, where)
        c.keys(k, where, {"doc", "fields"})
        subs = k["fields"]
        if not isinstance(subs, list) or not subs:
            raise c.fail(f"{where}.fields", "must be a non-empty list of sub-field names")
        subs_t = tuple(c.name(s, f"{where}.fields") for s in subs)
        if len(set(subs_t)) != len(subs_t):
            raise c.fail(f"{where}.fields", "duplicate sub-field")
        kinds[kname] = KindSpec(
            kname, c.str_(k["doc"], f"{where}.doc"), subs_t, kname in SIGNED_KINDS
        )

    opcode_field = FieldSpec(
        "opcode", 0, widths["opcode"], "opcode", None, None, lo=0, hi=(1 << widths["opcode"]) - 1
    )

    # formats -----------------------------------------------------------------------------
    formats_raw = c.mapping(top["formats"], "formats")
    formats: dict[str, FormatSpec] = {}
    for fname, f in formats_raw.items():
        where = f"formats.{fname}"
        c.name(fname, where)
        f = c.mapping(f, where)
        c.keys(f, where, {"doc", "operands"})
        ops_raw = f["operands"]
        if not isinstance(ops_raw, list):
            raise c.fail(f"{where}.operands", "must be a list")
        lsb = opcode_field.width
        fields: list[FieldSpec] = [opcode_field]
        operands: dict[str, OperandSpec] = {}
        for i, o in enumerate(ops_raw):
            owhere = f"{where}.operands[{i}]"
            o = c.mapping(o, owhere)
            oname = c.name(o.get("name"), f"{owhere}.name")
            owhere = f"{where}.operands.{oname}"
            if oname in operands:
                raise c.fail(owhere, "duplicate operand name")
            if oname in RESERVED_NAMES:
                raise c.fail(owhere, f"'{oname}' is a reserved name")
            kname = o.get("kind")
            if kname not in kinds:
                raise c.fail(owhere, f"unknown kind {kname!r} (kinds: {', '.join(kinds)})")
            kind = kinds[kname]
            params_needed = {
                ("bits" if s == "imm" else f"{s}_bits") for s in kind.fields if s not in widths
            }
            c.keys(o, owhere, {"name", "kind"} | params_needed)
            params = {
                p: c.int_(o[p], f"{owhere}.{p}", lo=1, hi=word_bits) for p in sorted(params_needed)
            }
            if kname == "flag" and params.get("bits") != 1:
                raise c.fail(f"{owhere}.bits", "a flag is 1 bit")
            if kname == "f32" and params.get("bits") != 32:
                raise c.fail(f"{owhere}.bits", "an f32 immediate is 32 bits")
            ofields: list[FieldSpec] = []
            for sub in kind.fields:
                width = (
                    widths[sub]
                    if sub in widths
                    else params["bits" if sub == "imm" else f"{sub}_bits"]
                )
                if len(kind.fields) == 1 or sub == "imm":
                    fld_name = oname
                else:
                    fld_name = f"{oname}_{sub}"
                signed = sub == "imm" and kind.signed
                regfile = REGFILE_OF_SUBFIELD.get(sub)
                codes = None
                if signed:
                    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
                elif regfile is not None:
                    lo, hi = 0, min(registers[regfile].count, 1 << width) - 1
                else:
                    lo, hi = 0, (1 << width) - 1
                if sub == "space":
                    codes = space_codes
                    lo, hi = min(codes), max(codes)
                ofields.append(
                    FieldSpec(
                        fld_name, lsb, width, sub, oname, kname, signed, lo, hi, regfile, codes
                    )
                )
                lsb += width
            operands[oname] = OperandSpec(oname, kname, tuple(ofields), params)
            fields.extend(ofields)
        names_seen: dict[str, str] = {}
        for fl in fields:
            if fl.name in names_seen:
                raise c.fail(
                    where,
                    f"field name '{fl.name}' (operand {fl.operand}) collides "
                    f"with operand {names_seen[fl.name]}",
                )
            if fl.name in RESERVED_NAMES - {"opcode"}:
                raise c.fail(where, f"field name '{fl.name}' is reserved")
            names_seen[fl.name] = fl.operand or "opcode"
        if lsb > word_bits:
            raise c.fail(where, f"fields need {lsb} bits, more than word_bits ({word_bits})")
        formats[fname] = FormatSpec(
            fname, c.str_(f["doc"], f"{where}.doc"), operands, tuple(fields), lsb, word_bits
        )

    # classes -----------------------------------------------------------------------------
    classes_raw = c.mapping(top["classes"], "classes")
    classes: dict[str, ClassSpec] = {}
    for cname, cl in classes_raw.items():
        where = f"classes.{cname}"
        c.name(cname, where)
        cl = c.mapping(cl, where)
        c.keys(cl, where, {"unit", "doc"})
        classes[cname] = ClassSpec(
            cname, c.str_(cl["unit"], f"{where}.unit"), c.str_(cl["doc"], f"{where}.doc")
        )

    # instructions ------------------------------------------------------------------------
    instrs_raw = c.mapping(top["instructions"], "instructions")
    instructions: dict[str, InstrSpec] = {}
    by_opcode: dict[int, str] = {}
    for iname, ins in instrs_raw.items():
        where = f"instructions.{iname}"
        c.name(iname, where)
        ins = c.mapping(ins, where)
        c.keys(ins, where, {"opcode", "class", "format", "operands", "doc"})
        opcode = c.int_(ins["opcode"], f"{where}.opcode", hi=opcode_field.hi)
        if opcode in by_opcode:
            raise c.fail(
                f"{where}.opcode",
                f"opcode {opcode:#04x} duplicates instruction '{by_opcode[opcode]}'",
            )
        by_opcode[opcode] = iname
        if ins["class"] not in classes:
            raise c.fail(
                f"{where}.class", f"unknown class {ins['class']!r} (classes: {', '.join(classes)})"
            )
        if ins["format"] not in formats:
            raise c.fail(
                f"{where}.format",
                f"unknown format {ins['format']!r} (formats: {', '.join(formats)})",
            )
        fmt = formats[ins["format"]]
        ops = ins["operands"]
        if not isinstance(ops, list):
            raise c.fail(f"{where}.operands", "must be a list of operand names")
        used: list[OperandSpec] = []
        for oname in ops:
            if oname not in fmt.operands:
                raise c.fail(
                    f"{where}.operands",
                    f"operand {oname!r} is not an operand of format {fmt.name} "
                    f"(operands: {', '.join(fmt.operands)})",
                )
            if any(u.name == oname for u in used):
                raise c.fail(f"{where}.operands", f"operand {oname!r} listed twice")
            used.append(fmt.operands[oname])
        used_names = {u.name for u in used}
        used_fields = tuple(f for f in fmt.fields if f.operand is None or f.operand in used_names)
        mask = 0
        for f in used_fields:
            mask |= f.word_mask
        instructions[iname] = InstrSpec(
            iname,
            opcode,
            ins["class"],
            fmt,
            tuple(used),
            c.str_(ins["doc"], f"{where}.doc"),
            used_fields,
            mask,
        )
    if not instructions:
        raise c.fail("instructions", "no instructions defined")

    return Spec(
        name=name,
        version=version,
        hash=spec_hash(data),
        word_bits=word_bits,
        widths=widths,
        registers=registers,
        spaces=spaces,
        operand_kinds=kinds,
        formats=formats,
        classes=classes,
        instructions=instructions,
        opcode_field=opcode_field,
        source=source,
        raw=data,
    )
