"""``dfx asm PROG.s -o OUT.dfx``: assemble a program into a one-card ``.dfx`` binary.

The assembly language is described in ``docs/isa.md`` (and :mod:`dfx.isa.asm`). The binary
gets the program, no memory segments, the core/board configuration chosen with ``--core`` /
``--board`` and a debug map made of the program's labels, so ``dfx disasm`` shows them.
``--raw`` writes only the instruction words; ``--check`` writes nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from dfx.isa.errors import DfxError

EXAMPLES = """\
The language, one instruction per line (operands in any order, omitted ones are zero):

  top:                                   # a label; '#' and ';' start comments
      loop count=r3                      # body= counted up to the matching endloop
      conv1d y=v[r0+12], x=v[r0+0], w=hbm[r10+0x1000], b=ddr[r0+64], kt=12, nt=r5, gelu
      endloop
      bne rs1=r1, rs2=r0, target=top     # or target=@-3
      halt

operand text: VRF address v[r3+12]; memory address hbm[r10+0x1000] (hbm, ddr, vrf, wbuf);
count 12 / r5 / r5+12; register r7; scalar register s7; integers decimal or 0x..;
float 0.125 / -inf / nan / f32:0x7fc00001; branch target a label or @+3 / @-7; a flag is
its bare name. The full reference, with every instruction: docs/isa.md.

examples:
  dfx asm prog.s -o prog.dfx                     one-card binary for the default core
  dfx asm prog.s -o prog.dfx --core tiny         for another core configuration
  dfx asm prog.s -o prog.bin --raw               just the instruction words
  dfx asm prog.s --check                         assemble and report errors only
  cat prog.s | dfx asm - -o prog.dfx             read the program from stdin
"""

DEFAULT_CORE = "dfx-u280"


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "asm",
        help="assemble a program into a one-card .dfx binary (or raw instruction words)",
        description="Assemble a dfx assembly program (PROG.s) into a one-card .dfx binary\n"
        "for a core configuration, or into raw instruction words with --raw. Errors name\n"
        "the file and line: prog.s:12: conv1d: unknown operand 'q' (operands: ...).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("source", metavar="PROG.s", help="assembly source ('-' reads stdin)")
    p.add_argument(
        "-o",
        "--output",
        metavar="OUT",
        help="file to write (default: PROG.dfx, or PROG.bin with --raw)",
    )
    p.add_argument(
        "--core",
        default=DEFAULT_CORE,
        help=f"core configuration, a name or a YAML path ({DEFAULT_CORE})",
    )
    p.add_argument("--board", default=None, help="board configuration (the core's own)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--raw",
        action="store_true",
        help="write the raw little-endian instruction words, no container",
    )
    mode.add_argument(
        "--check", action="store_true", help="only assemble and validate; write nothing"
    )
    p.set_defaults(func=run)


#: Largest assembly source read (a full instruction buffer is well under 1 MiB of text).
MAX_SOURCE_BYTES = 64 << 20


def _read_source(name: str) -> tuple[str, str]:
    if name == "-":
        return _decode(sys.stdin.buffer.read(MAX_SOURCE_BYTES + 1), "<stdin>"), "<stdin>"
    try:  # any readable file, pipes too (dfx asm <(generate) -o x.dfx)
        with open(name, "rb") as f:
            return _decode(f.read(MAX_SOURCE_BYTES + 1), name), name
    except FileNotFoundError:
        raise DfxError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise DfxError(f"{name}: is a directory, not an assembly source") from None
    except OSError as e:
        raise DfxError(f"{name}: cannot read: {e.strerror or e}") from None


def _decode(raw: bytes, name: str) -> str:
    if len(raw) > MAX_SOURCE_BYTES:
        raise DfxError(f"{name}: larger than the {MAX_SOURCE_BYTES} bytes allowed for a source")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DfxError(f"{name}: not a UTF-8 text file (byte {e.start}; an assembly "
                       "source?)") from None


def _output_path(args: argparse.Namespace) -> str:
    if args.output is not None:
        return str(args.output)
    if args.source == "-":
        raise DfxError("reading from stdin: give the output file with -o")
    return str(Path(args.source).with_suffix(".bin" if args.raw else ".dfx"))


def run(args: argparse.Namespace) -> int:
    from dfx.isa.asm import assemble_with_labels
    from dfx.isa.config import load_core
    from dfx.isa.container import Binary, CardImage, write_binary
    from dfx.isa.encoding import encode_program
    from dfx.isa.outputs import check_output, write_output

    inputs = [None if args.source == "-" else args.source, args.core, args.board]
    out = None
    if not args.check:
        out = _output_path(args)
        check_output(out, option="-o", inputs=inputs)
    core = load_core(args.core, args.board)
    words = core.buffers.instruction_words
    text, source = _read_source(args.source)
    instrs, labels = assemble_with_labels(
        text, source, max_instructions=words,
        buffer=f"the instruction buffer of core {core.name} holds {words} words, "
        "buffers.instruction_words")
    program = encode_program(instrs)
    n = len(instrs)
    if args.check:
        print(f"{source}: {n} instruction{'s' if n != 1 else ''}, ok (core {core.name})")
        return 0
    assert out is not None
    if args.raw:
        write_output(out, program, option="-o", inputs=inputs)
        print(f"wrote {out}: {n} instructions, {len(program)} bytes (raw words)")
        return 0
    if n == 0:
        raise DfxError(f"{source}: no instructions to put in a binary")
    by_pc: dict[int, list[str]] = {}
    for name, pc in labels.items():
        if pc < n:
            by_pc.setdefault(pc, []).append(name)
    debug = [(pc, ", ".join(names) + ":") for pc, names in sorted(by_pc.items())]
    binary = Binary(
        core=core,
        model={"kind": "assembly", "source": source, "labels": labels},
        cards=[CardImage(program=program, debug=debug)],
    )
    write_binary(out, binary, option="-o", inputs=inputs)
    print(f"wrote {out}: {n} instructions, 1 card, core {core.name} on {core.b.name}")
    return 0
