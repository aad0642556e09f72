"""``dfx compile SRC -o OUT.dfx --cards N``: a GPT-2 checkpoint or preset to a DFX binary."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from dfx.isa.errors import DfxError, indices

EXAMPLES = """\
SRC is a local Hugging Face GPT-2 directory (config.json + model.safetensors, optionally
vocab.json + merges.txt) or a built-in preset with seeded random weights:
  gpt2-tiny, gpt2-mini (small, for demos and tests), gpt2 (124M), gpt2-medium (345M),
  gpt2-large (774M), gpt2-xl (1.5B, 25 heads), gpt2-xl-24h (DFX's 1.5B variant, 24 heads).
Nothing is ever downloaded.

examples:
  dfx compile gpt2-tiny -o tiny.dfx --cards 4
  dfx compile ./my-gpt2/ -o my.dfx --cards 2 --core dfx-u280
  dfx compile gpt2-xl-24h -o xl.dfx --cards 4 --no-weights   timing-only binary (dfx perf)
  dfx compile gpt2-tiny --cards 2 --emit asm | less          annotated program of card 0
  dfx compile gpt2-tiny --emit ir                            the graph IR

quantized compilation (LUT-GEMM, docs/compiler.md): --quant SPEC quantizes the Conv1D weights
to binary-coding quantization and runs them as lutmv (table look-ups, no dequantization).
SPEC is SCHEME:key=value,... with SCHEME bcq (non-uniform) or rtn (uniform int-q, exact in
BCQ form); q = bits per weight (1..4), g = group of inputs sharing scales (default 128, or
row), exclude = +-separated layer patterns kept in FP16 (default lm_head; none for nothing).
Layers: h.{i}.attn.c_attn, h.{i}.attn.c_proj, h.{i}.mlp.c_fc, h.{i}.mlp.c_proj, lm_head.
  dfx compile gpt2 -o gpt2-q3.dfx --cards 4 --quant bcq:q=3,g=128
  dfx compile gpt2 -o gpt2-int4.dfx --cards 4 --quant rtn:q=4,g=128
  dfx compile gpt2 -o x.dfx --quant bcq:q=3,g=128,exclude=lm_head+h.*.attn.c_proj
  dfx compile gpt2 -o x.dfx --quant bcq:q=2,g=row,exclude=none   (the LM head too)

The model is split as DFX does: attention by heads, FC layers by output columns, the LM head
by vocabulary, with ring all-gathers between them; results are bit-identical on 1, 2 and 4
cards. Heads need not divide by the card count (25 heads on 4 cards: 7/6/6/6), but every
card needs at least one head.
"""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "compile",
        help="compile a GPT-2 checkpoint or preset into a .dfx binary for N cards",
        description="Compile a GPT-2 model for 1..N simulated DFX cards: frontend (checkpoint "
        "-> graph IR), partitioning, memory planning, lowering to the ISA, VRF allocation, "
        "emission of per-card programs and memory images.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("src", metavar="SRC", help="checkpoint directory or preset name")
    p.add_argument("-o", "--output", metavar="OUT.dfx", help="binary to write")
    p.add_argument("--cards", type=int, default=1, metavar="N", help="number of cards (1)")
    p.add_argument("--core", default="dfx-u280", help="core configuration (dfx-u280)")
    p.add_argument("--board", default=None, help="board configuration (the core's own)")
    p.add_argument("--emit", choices=("ir", "asm"), help="print the graph IR or the assembly")
    p.add_argument("--card", type=int, default=0, help="card whose assembly --emit asm prints")
    p.add_argument(
        "--no-weights",
        action="store_true",
        help="leave weights out (a timing-only binary for dfx perf)",
    )
    p.add_argument("--quant", metavar="SPEC", default=None,
                   help="quantize weights for LUT-GEMM, e.g. bcq:q=3,g=128 (see below)")
    p.add_argument("--seed", type=int, default=0, help="seed of a preset's random weights (0)")
    p.add_argument(
        "--scale", type=float, default=1.0, help="multiply a preset's weight matrices by this (1.0)"
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dfx.compiler.driver import compile_model
    from dfx.compiler.frontend.hf import checkpoint_files
    from dfx.compiler.quant import QuantSpec
    from dfx.isa.asm import disassemble
    from dfx.isa.container import write_binary
    from dfx.isa.outputs import check_output

    if args.output is None and args.emit is None:
        raise DfxError("give -o OUT.dfx (or --emit ir|asm to only print)")
    inputs = [*checkpoint_files(args.src), args.core, args.board]
    if args.output is not None:  # before the work: a bad output fails at once
        check_output(args.output, option="-o", inputs=inputs)
    quant = QuantSpec.parse(args.quant) if args.quant is not None else None
    t0 = time.perf_counter()
    # Progress goes to an interactive terminal only, so that a failing run prints one line.
    show = not args.quiet and sys.stderr.isatty()

    def progress(stage: str) -> None:
        if show:
            print(f"dfx compile: {stage} done ({time.perf_counter() - t0:.1f} s)", file=sys.stderr)

    comp = compile_model(
        args.src,
        cards=args.cards,
        core=args.core,
        board=args.board,
        weights=not args.no_weights,
        seed=args.seed,
        scale=args.scale,
        progress=progress,
        quant=quant,
    )
    if args.emit == "ir":
        sys.stdout.write(comp.graph.dump())
    elif args.emit == "asm":
        if not 0 <= args.card < args.cards:
            raise DfxError(f"--card {args.card}: the binary has cards {indices(args.cards)}")
        notes = dict(comp.debug[args.card])
        sys.stdout.write(disassemble(comp.instructions[args.card], annotations=notes))
    if args.output is not None:
        write_binary(args.output, comp.binary, option="-o", inputs=inputs)
        if not args.quiet:
            n = sum(len(i) for i in comp.instructions)
            wb = comp.binary.model["weight_bytes"]
            q = f", quant {quant.text()}" if quant is not None else ""
            print(
                f"dfx compile: wrote {args.output}: {args.cards} card(s), {n} instructions, "
                f"{max(wb) / 2**20:.1f} MiB of weights per card{q} "
                f"({time.perf_counter() - t0:.1f} s)",
                file=sys.stderr,
            )
    return 0
