"""Property-based fuzzing (hypothesis) of the two parsers of untrusted structure: the ``.dfx``
binary reader (and everything a command does with what it accepts) and the assembler.

Properties:

* binary reader: for any mutation of a valid binary (byte flips, truncation, and, above all,
  changes to the checksum-protected document re-signed with a valid checksum: any field
  replaced by any JSON value, deleted, or text inserted), reading either refuses it with a
  :class:`~dfx.isa.errors.DfxError` or gives a binary that ``inspect``, ``disasm``, ``run``
  (functional simulator) and ``perf`` (timing model) handle with nothing but ``DfxError``,
  within an instruction budget and a memory limit;
* assembler: any text (structured lines with operands of every kind and extreme values,
  labels, garbage) either assembles or raises :class:`~dfx.isa.errors.IsaError`; what
  assembles disassembles and re-assembles to the same words.

The suite runs each for a fixed time budget (``DFX_FUZZ_SECONDS``, 8 s by default);
``bench/fuzz_inputs.py`` runs the same properties for longer and prints what it covered.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import struct
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
from hypothesis import HealthCheck, given, settings

from dfx.isa.asm import assemble, assemble_with_labels, disassemble
from dfx.isa.config import load_core
from dfx.isa.container import Binary, CardImage, Segment, read_binary, summary, write_binary
from dfx.isa.encoding import decode_program, encode_program
from dfx.isa.errors import DfxError, IsaError
from dfx.isa.spec import load_spec

FUZZ_SECONDS = float(os.environ.get("DFX_FUZZ_SECONDS", "8"))
CHUNK = 40  # examples per hypothesis run
BUDGET = 20_000  # instructions per simulated run of a fuzzed binary
MEMORY = 64 << 20  # host bytes for its memories
#: Outcomes of the examples run (bench/fuzz_inputs.py prints them).
OUTCOMES: Counter[str] = Counter()


# ---------------------------------------------------------------------------------------------
# Seeds and the binary property


PROGRAM = """\
    li rd=r1, imm=3
    li rd=r2, imm=0x40
    loop count=r1
    lw rd=r3, mem=ddr[r2+0]
    addi rd=r3, rs1=r3, imm=1
    sw rs1=r3, mem=ddr[r2+0]
    endloop
    load dst=vrf[r0+0], src=hbm[r0+0], n=8
    vadd y=v[r0+1], a=v[r0+0], b=v[r0+0], n=1
    store dst=hbm[r0+0x1000], src=vrf[r0+1], n=8
    halt
"""


@functools.cache
def seeds() -> dict[str, bytes]:
    """Valid binaries to mutate: a compiled model without weights (2 cards) and an assembled
    program with data and fill segments and symbols (2 cards, tiny core)."""
    from dfx.compiler.driver import compile_model

    out = {}
    with tempfile.TemporaryDirectory() as d:
        model = compile_model("gpt2-tiny", cards=2, weights=False).binary
        out["model"] = write_binary(Path(d) / "m.dfx", model).read_bytes()
        import numpy as np

        prog = encode_program(assemble(PROGRAM))
        cards = [CardImage(program=prog,
                           segments=[Segment("hbm", 0, np.arange(64, dtype=np.float16)),
                                     Segment("ddr", 0, None, 4096, 0)],
                           debug=[(0, "start"), (7, "vector")],
                           symbols={"buf": {"space": "ddr", "addr": 0x40, "bytes": 4}})
                 for _ in range(2)]
        b = Binary(load_core("tiny"), {"kind": "assembly", "source": "fuzz"}, cards)
        out["program"] = write_binary(Path(d) / "p.dfx", b).read_bytes()
    return out


def split(raw: bytes) -> tuple[dict[str, Any], bytes]:
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8:8 + n]), raw[8 + n:]


def join(header: dict[str, Any], data: bytes, doc_text: str | None = None) -> bytes:
    """A file from a header (the dfx document re-signed when given) and the data area."""
    if doc_text is not None:
        header = dict(header)
        header["__metadata__"] = {
            "dfx": doc_text, "dfx.sha256": hashlib.sha256(doc_text.encode("utf-8",
                                                                          "surrogatepass"))
            .hexdigest()}
    head = json.dumps(header, separators=(",", ":"), allow_nan=True).encode()
    head += b" " * (-len(head) % 8)
    return struct.pack("<Q", len(head)) + head + data


def paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path (tuple of keys / indices) inside a JSON value."""
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value[:8]):
            out += paths(v, prefix + (i,))
    return out


@functools.cache
def seed_paths(name: str) -> list[tuple]:
    return paths(json.loads(split(seeds()[name])[0]["__metadata__"]["dfx"]))


def json_values() -> st.SearchStrategy[Any]:
    scalars = (st.none() | st.booleans()
               | st.integers(-(1 << 70), 1 << 70) | st.integers(-3, 300)
               | st.floats(allow_nan=True, allow_infinity=True)
               | st.text(max_size=12)
               | st.sampled_from(["hbm", "ddr", "cfg", "tokens", "fill", "U8", "", "\x1b["]))
    return st.recursive(scalars, lambda c: st.lists(c, max_size=4)
                        | st.dictionaries(st.text(max_size=8), c, max_size=4), max_leaves=12)


@st.composite
def mutated_binaries(draw: st.DrawFn) -> bytes:
    name = draw(st.sampled_from(sorted(seeds())))
    raw = seeds()[name]
    kind = draw(st.sampled_from(["doc", "doc", "doc", "doc-text", "table", "flip", "cut"]))
    header, data = split(raw)
    if kind == "flip":
        buf = bytearray(raw)
        hi = draw(st.sampled_from([len(raw), 8 + len(json.dumps(header))]))
        for _ in range(draw(st.integers(1, 6))):
            buf[draw(st.integers(0, hi - 1))] ^= draw(st.integers(1, 255))
        return bytes(buf)
    if kind == "cut":
        return raw[:draw(st.integers(0, len(raw) - 1))]
    if kind == "table":
        names = sorted(k for k in header if k != "__metadata__")
        tensor = draw(st.sampled_from(names))
        key = draw(st.sampled_from(["dtype", "shape", "data_offsets"]))
        header = json.loads(json.dumps(header))
        header[tensor][key] = draw(json_values())
        return join(header, data)
    text = header["__metadata__"]["dfx"]
    if kind == "doc-text":
        pos = draw(st.integers(0, len(text)))
        return join(header, data, text[:pos] + draw(st.text(max_size=8)) + text[pos:])
    doc = json.loads(text)
    path = draw(st.sampled_from(seed_paths(name)))
    op = draw(st.sampled_from(["replace", "replace", "delete", "insert"]))
    if not path:
        doc = draw(json_values())
    else:
        parent = doc
        for k in path[:-1]:
            parent = parent[k]
        last = path[-1]
        if op == "delete":
            del parent[last]
        elif op == "insert" and isinstance(parent, dict):
            parent[draw(st.text(max_size=8))] = draw(json_values())
        elif op == "insert":
            parent.insert(last, draw(json_values()))
        else:
            parent[last] = draw(json_values())
    return join(header, data, json.dumps(doc, allow_nan=True))


def check_binary(raw: bytes, directory: Path) -> str:
    """Use ``raw`` as the commands would; only DfxError may come out. Returns the outcome."""
    from dfx.host.commands.inspect import render
    from dfx.host.runtime import execute, is_model
    from dfx.sim.timing import perf, simulate

    path = directory / "fuzz.dfx"
    path.write_bytes(raw)
    try:
        b = read_binary(path)
    except DfxError:
        return "refused on load"
    try:
        info = summary(b)
        json.dumps(info, allow_nan=False)
        render(info)
        for card in b.cards:
            disassemble(decode_program(card.program), annotations=dict(card.debug))
    except DfxError:
        return "refused by inspect"
    try:
        if is_model(b):
            perf(b, 1, 1, max_instructions=BUDGET)
            return "model timed"
        execute(b, max_instructions=BUDGET, memory_limit=MEMORY)
        simulate(b, max_instructions=BUDGET)
        return "program ran"
    except DfxError:
        return "stopped with one line"


def run_for(seconds: float, strategy: st.SearchStrategy[Any], prop: Any) -> int:
    """Run ``prop`` on examples of ``strategy`` for about ``seconds``: hypothesis runs of
    :data:`CHUNK` examples each (fresh random seeds) until the time is spent. A failure is
    shrunk and reported by hypothesis as usual. Returns the number of examples."""
    @settings(max_examples=CHUNK, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def chunk(example: Any) -> None:
        prop(example)

    t0, runs = time.monotonic(), 0
    while runs == 0 or time.monotonic() - t0 < seconds:
        chunk()
        runs += 1
    return runs * CHUNK


def binary_property(raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        OUTCOMES["binary: " + check_binary(raw, Path(d))] += 1


def test_binary_reader_accepts_or_refuses_in_one_line() -> None:
    run_for(FUZZ_SECONDS, mutated_binaries(), binary_property)


# ---------------------------------------------------------------------------------------------
# The assembler property

SPEC = load_spec()
SPACES = sorted(SPEC.spaces) if isinstance(SPEC.spaces, dict) else ["hbm", "ddr", "vrf", "wbuf"]
LABELS = ["top", "end", "a.b", "_x"]


def _num() -> st.SearchStrategy[str]:
    return (st.integers(-40, 300).map(str) | st.integers(0, 1 << 40).map(hex)
            | st.integers(-(1 << 70), 1 << 70).map(str) | st.just("9" * 5000)
            | st.sampled_from(["0b101", "007", "-0x10", "+3", "", "1e3"]))


def _reg(prefix: str) -> st.SearchStrategy[str]:
    return st.integers(0, 40).map(lambda i: f"{prefix}{i}") | st.just(prefix + "9" * 400)


def _addr(space: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.builds(lambda s, r, n: f"{s}[{r}+{n}]", space, _reg("r"), _num()) | st.builds(
        lambda s, n: f"{s}[{n}]", space, _num())


VALUES: dict[str, st.SearchStrategy[str]] = {
    "count": _num() | _reg("r") | st.builds(lambda r, n: f"{r}+{n}", _reg("r"), _num()),
    "uimm": _num() | st.just("auto"),
    "simm": _num(),
    "reg": _reg("r"),
    "sreg": _reg("s"),
    "vaddr": _addr(st.just("v")),
    "maddr": _addr(st.sampled_from(SPACES + ["v", "xyz"])),
    "f32": (st.floats(allow_nan=True, allow_infinity=True).map(repr)
            | st.integers(0, 1 << 33).map(lambda v: f"f32:{v:#x}")),
    "pcrel": st.sampled_from(LABELS + ["nowhere"]) | st.integers(-300, 300).map(
        lambda v: f"@{v:+d}"),
    "flag": st.sampled_from(["0", "1", "2"]),
}


@st.composite
def asm_lines(draw: st.DrawFn) -> str:
    choice = draw(st.integers(0, 9))
    if choice == 0:
        return draw(st.text(max_size=40))
    if choice == 1:
        return draw(st.sampled_from(LABELS)) + ":"
    name = draw(st.sampled_from(sorted(SPEC.instructions)) | st.text(max_size=6))
    ins = SPEC.instructions.get(name)
    ops = list(ins.operands) if ins is not None else []
    parts = []
    for op in draw(st.lists(st.sampled_from(ops), max_size=len(ops), unique_by=lambda o: o.name)
                   if ops else st.just([])):
        if op.kind == "flag" and draw(st.booleans()):
            parts.append(op.name)
        else:
            parts.append(f"{op.name}={draw(VALUES[op.kind])}")
    if draw(st.integers(0, 9)) == 0:
        parts.append(draw(st.text(max_size=10)))
    prefix = draw(st.sampled_from(["", "", "top: ", "    "]))
    return f"{prefix}{name} {', '.join(parts)}".rstrip()


def check_asm(text: str) -> str:
    """Assemble ``text``; only IsaError may come out; what assembles round-trips."""
    try:
        instrs, _labels = assemble_with_labels(text, "fuzz.s", max_instructions=256)
    except IsaError:
        return "refused"
    words = encode_program(instrs)
    listing = disassemble(decode_program(words))
    assert encode_program(assemble(listing, "listing.s")) == words, listing
    return "assembled"


def asm_property(lines: list[str]) -> None:
    OUTCOMES["asm: " + check_asm("\n".join(lines))] += 1


def asm_programs() -> st.SearchStrategy[list[str]]:
    return st.lists(asm_lines(), max_size=24)


def test_assembler_assembles_or_refuses_in_one_line() -> None:
    run_for(FUZZ_SECONDS, asm_programs(), asm_property)
