"""``dfx disasm FILE``: list the program of a ``.dfx`` binary (or of raw instruction words).

For a ``.dfx`` every card's program is listed (or one with ``--card N``), each instruction
with its pc and the binary's debug annotation (layer / operation from the compiler, labels
from ``dfx asm``) as comments. The listing of one card assembles back to the same words.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from dfx.isa.errors import BinaryFormatError, DfxError, IsaError

EXAMPLES = """\
The listing is valid assembly: branch targets become labels L<pc>:, and the pc and the
debug annotation of each instruction are '#' comments. Every non-zero field is printed,
so `dfx asm` turns the listing of one card back into identical instruction words.

examples:
  dfx disasm model.dfx                    every card, with pcs and debug annotations
  dfx disasm model.dfx --card 2           card 2 only
  dfx disasm prog.bin                     raw instruction words (any suffix but .dfx)
  dfx disasm model.dfx --card 0 --no-pc -o card0.s && dfx asm card0.s --check
"""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "disasm",
        help="list the program of a .dfx binary or of raw instruction words",
        description="Disassemble the program of a .dfx binary (every card, or --card N)\n"
        "or a raw file of instruction words into dfx assembly, annotated with the binary's\n"
        "debug map and the pc of each instruction.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("file", metavar="FILE", help="a .dfx binary or raw instruction words")
    p.add_argument("--card", type=int, metavar="N", help="only card N of a .dfx")
    p.add_argument(
        "--raw", action="store_true", help="treat FILE as raw instruction words whatever its suffix"
    )
    p.add_argument(
        "--no-pc", dest="pcs", action="store_false", help="leave out the pc comment column"
    )
    p.add_argument("-o", "--output", metavar="OUT.s", help="write the listing to a file")
    p.set_defaults(func=run)


def _listing_raw(path: Path, args: argparse.Namespace) -> str:
    from dfx.isa.asm import disassemble
    from dfx.isa.encoding import decode_program

    if args.card not in (None, 0):
        raise DfxError(
            f"{path}: raw instruction words hold one program; --card {args.card} "
            "needs a .dfx binary"
        )
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DfxError(f"{path}: no such file") from None
    except OSError as e:
        raise DfxError(f"{path}: cannot read: {e.strerror or e}") from None
    try:
        instrs = decode_program(data)
    except IsaError as e:
        raise IsaError(f"{path}: {e}") from None
    head = f"# {path}: {len(instrs)} instructions (raw words)\n"
    return head + disassemble(instrs, pcs=args.pcs)


def _listing_dfx(path: Path, args: argparse.Namespace) -> str:
    from dfx.isa.asm import disassemble
    from dfx.isa.container import read_binary
    from dfx.isa.encoding import decode_program

    binary = read_binary(path, lazy=True)
    n = binary.n_cards
    if args.card is not None and not 0 <= args.card < n:
        raise DfxError(f"{path}: no card {args.card} (the binary has cards 0..{n - 1})")
    cards = [args.card] if args.card is not None else list(range(n))
    out = [
        f"# {path}: ISA {binary.isa_name} {binary.isa_version}, core {binary.core.name}, "
        f"{n} card{'s' if n != 1 else ''}, built by {binary.tool}\n"
    ]
    for i in cards:
        card = binary.cards[i]
        try:
            instrs = decode_program(card.program)
        except IsaError as e:
            raise BinaryFormatError(f"{path}: card {i}: {e}") from None
        out.append(f"\n# ---- card {i}: {len(instrs)} instructions ----\n")
        out.append(disassemble(instrs, annotations=dict(card.debug), pcs=args.pcs))
    return "".join(out)


def run(args: argparse.Namespace) -> int:
    path = Path(args.file)
    if args.raw or path.suffix != ".dfx":
        text = _listing_raw(path, args)
    else:
        text = _listing_dfx(path, args)
    if args.output:
        try:
            Path(args.output).write_text(text, encoding="utf-8")
        except OSError as e:
            raise DfxError(f"{args.output}: cannot write: {e.strerror or e}") from None
    else:
        sys.stdout.write(text)
    return 0
