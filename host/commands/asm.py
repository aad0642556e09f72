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


def _read_source(name: str) -> tuple[str, str]:
    if name == "-":
        return sys.stdin.read(), "<stdin>"
    try:
        return Path(name).read_text(encoding="utf-8"), name
    except FileNotFoundError:
        raise DfxError(f"{name}: no such file") from None
    except UnicodeDecodeError:
        raise DfxError(f"{name}: not a UTF-8 text file (an assembly source?)") from None
    except OSError as e:
        raise DfxError(f"{name}: cannot read: {e.strerror or e}") from None


def _output_path(args: argparse.Namespace) -> Path:
    if args.output:
        return Path(args.output)
    if args.source == "-":
        raise DfxError("reading from stdin: give the output file with -o")
    return Path(args.source).with_suffix(".bin" if args.raw else ".dfx")


def run(args: argparse.Namespace) -> int:
    from dfx.isa.asm import assemble_with_labels
    from dfx.isa.encoding import encode_program

    text, source = _read_source(args.source)
    instrs, labels = assemble_with_labels(text, source)
    program = encode_program(instrs)
    n = len(instrs)
    if args.check:
        print(f"{source}: {n} instruction{'s' if n != 1 else ''}, ok")
        return 0
    out = _output_path(args)
    if args.raw:
        _write_raw(out, program)
        print(f"wrote {out}: {n} instructions, {len(program)} bytes (raw words)")
        return 0

    from dfx.isa.config import load_core
    from dfx.isa.container import Binary, CardImage, write_binary

    if n == 0:
        raise DfxError(f"{source}: no instructions to put in a binary")
    core = load_core(args.core, args.board)
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
    write_binary(out, binary)
    print(f"wrote {out}: {n} instructions, 1 card, core {core.name} on {core.b.name}")
    return 0


def _write_raw(out: Path, data: bytes) -> None:
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        tmp.write_bytes(data)
        tmp.replace(out)
    except OSError as e:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise DfxError(f"{out}: cannot write: {e.strerror or e}") from None
