"""``dfx inspect FILE``: what a ``.dfx`` binary holds, without running it.

Prints the ISA it was built for, the core and board (d x l, clock, memories), the model
configuration and, per card, the instruction count and mix by class, the HBM/DDR bytes its
segments initialise (constant-filled regions such as the KV cache separately) and its
symbols. ``--json`` prints the same as one JSON document (:func:`dfx.isa.container.summary`).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from dfx.host.text import terminal_text
from dfx.isa.container import SPACES, read_binary, summary

EXAMPLES = """\
examples:
  dfx inspect model.dfx
  dfx inspect model.dfx --json | python -m json.tool
  dfx inspect model.dfx --verify     also checks every segment's checksum (reads all data)
"""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "inspect",
        help="summarise a .dfx binary (ISA, core, model, instruction mix, memory, symbols)",
        description="Summarise a .dfx binary without running it: the ISA it was built for,\n"
        "the core and board, the model configuration and, per card, the instruction count\n"
        "and mix by class, the HBM/DDR bytes its segments initialise (constant-filled\n"
        "regions such as the KV cache counted separately) and its symbols.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("file", metavar="FILE", help="a .dfx binary")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.add_argument(
        "--verify",
        action="store_true",
        help="read every memory segment and check its sha256 (slow for big models)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    binary = read_binary(args.file, lazy=not args.verify)
    info = summary(binary)
    if args.json:  # strict JSON (no NaN); json escapes control characters itself
        sys.stdout.write(json.dumps(info, indent=2, allow_nan=False) + "\n")
    else:
        sys.stdout.write(terminal_text(render(info), keep="\n"))
    return 0


# ---------------------------------------------------------------------------------------------
# Human-readable form


def size(n: int) -> str:
    """``1536`` -> ``1.5 KiB``; exact below 1 KiB."""
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            break
    return f"{value:.1f} {unit}"


def _table(rows: list[list[str]], align: str, indent: str = "    ") -> list[str]:
    """Rows as aligned columns; ``align`` has one ``l`` or ``r`` per column."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(align))]
    out = []
    for r in rows:
        cells = [
            c.ljust(w) if a == "l" else c.rjust(w) for c, w, a in zip(r, widths, align, strict=True)
        ]
        out.append((indent + "  ".join(cells)).rstrip())
    return out


def _flat(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(value, dict) and value:
        out = []
        for k, v in value.items():
            out += _flat(v, f"{prefix}.{terminal_text(k)}" if prefix else terminal_text(k))
        return out
    text = json.dumps(value) if not isinstance(value, str) else terminal_text(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return [(prefix, text)]


def _quant_text(q: Any) -> str:
    """The model's weight format: FP16, or the quant spec and the lutmv layer kinds."""
    if not isinstance(q, dict):
        return "fp16 (d x l tiles, conv1d/mm)"
    kinds = ", ".join(f"{k} g={g}" for k, g in (q.get("groups") or {}).items())
    kept = q.get("fp16_layers") or []
    but = f", except {len(kept)} layer(s) kept fp16" if kept else ""
    return f"quantized {q.get('spec')} (lutmv: {kinds or 'no layer'}{but}; the rest fp16)"


def render(info: dict[str, Any]) -> str:
    core, board, isa = info["core"], info["board"], info["isa"]
    lines = [
        f"file        {info['file']}",
        f"format      {info['format']} version {info['container_version']} ({info['tool']})",
        f"isa         {isa['name']} {isa['version']} (hash {isa['hash'][:12]})",
        f"core        {core['name']}: d x l = {core['d']} x {core['l']}, "
        f"{core['clock_mhz']:g} MHz, {core['dtype']}",
        f"board       {board['name']} ({board['part']}): HBM {size(board['hbm_bytes'])} in "
        f"{board['hbm_pseudo_channels']} pseudo-channels, DDR {size(board['ddr_bytes'])}",
        f"cards       {info['n_cards']}",
    ]
    model_info = dict(info["model"])
    wbytes = model_info.pop("weight_bytes", None)
    if model_info:
        q = model_info.get("quant")
        lines.append(f"weights     {_quant_text(q)}")
    model = _flat(model_info)
    if model:
        lines.append("model")
        lines += _table([[k, v] for k, v in model], "ll")
    for card in info["cards"]:
        wb = ""
        if isinstance(wbytes, list) and card["card"] < len(wbytes):
            wb = f", {size(int(wbytes[card['card']]))} of weights in HBM"
        lines += [
            "",
            f"card {card['card']}: {card['instructions']} instructions "
            f"({size(card['program_bytes'])}), {card['debug_entries']} debug annotations{wb}",
        ]
        mix = card["instruction_mix"]
        if mix:
            total = max(card["instructions"], 1)
            lines.append("  instruction mix")
            lines += _table(
                [["class", "count", "share"]]
                + [[c, str(n), f"{100 * n / total:.1f}%"] for c, n in mix.items()],
                "lrr",
            )
        lines.append("  memory")
        rows = [["space", "segments", "data", "filled", "of board"]]
        for space in SPACES:
            m = card["memory"][space]
            used = m["data_bytes"] + m["fill_bytes"]
            share = f"{100 * used / board[space + '_bytes']:.1f}%"
            rows.append(
                [space, str(m["segments"]), size(m["data_bytes"]), size(m["fill_bytes"]), share]
            )
        lines += _table(rows, "lrrrr")
        if card["symbols"]:
            lines.append("  symbols")
            rows = [["name", "space", "addr", "bytes"]]
            for name, sym in sorted(card["symbols"].items()):
                rows.append([terminal_text(name), sym["space"], f"{sym['addr']:#x}",
                             str(sym["bytes"])])
            lines += _table(rows, "llrr")
    return "\n".join(lines) + "\n"
