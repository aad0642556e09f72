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

from dfx.host.text import terminal_text
from dfx.isa.documents import open_input
from dfx.isa.errors import BinaryFormatError, DfxError, IsaError, indices

#: Largest raw instruction file read (the largest instruction buffer allowed, 2^24 words).
MAX_RAW_BYTES = 32 << 24

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
    with open_input(path) as f:
        try:
            data = f.read(MAX_RAW_BYTES + 1)
        except OSError as e:
            raise DfxError(f"{path}: cannot read: {e.strerror or e}") from None
    if len(data) > MAX_RAW_BYTES:
        raise DfxError(f"{path}: larger than {MAX_RAW_BYTES} bytes: not one program's words")
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
        raise DfxError(f"{path}: no card {args.card} (the binary has cards {indices(n)})")
    cards = [args.card] if args.card is not None else list(range(n))
    out = [
        terminal_text(f"# {path}: ISA {binary.isa_name} {binary.isa_version}, core "
                      f"{binary.core.name}, {n} card{'s' if n != 1 else ''}, built by "
                      f"{binary.tool}") + "\n"
    ]
    for i in cards:
        card = binary.cards[i]
        try:
            instrs = decode_program(card.program)
        except IsaError as e:
            raise BinaryFormatError(f"{path}: card {i}: {e}") from None
        out.append(f"\n# ---- card {i}: {len(instrs)} instructions ----\n")
        # annotations are text from the binary: one line each, no terminal controls
        notes = {pc: terminal_text(text) for pc, text in card.debug}
        out.append(disassemble(instrs, annotations=notes, pcs=args.pcs))
    return "".join(out)


def run(args: argparse.Namespace) -> int:
    from dfx.isa.outputs import check_output, write_output

    path = Path(args.file)
    if args.output is not None:
        check_output(args.output, option="-o", inputs=[args.file])
    if args.raw or path.suffix != ".dfx":
        text = _listing_raw(path, args)
    else:
        text = _listing_dfx(path, args)
    text = terminal_text(text, keep="\n")
    if args.output is not None:
        write_output(args.output, text, option="-o", inputs=[args.file])
    else:
        sys.stdout.write(text)
    return 0
