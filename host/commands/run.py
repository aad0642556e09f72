"""``dfx run OUT.dfx --prompt TEXT --max-new-tokens N``: generate text on the simulated cards."""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from typing import Any

import numpy as np

from dfx.host.text import terminal_text
from dfx.isa.errors import DfxError

EXAMPLES = """\
The appliance is started once per request: the cards run every prompt token and every
generated token through all layers themselves and pick each next token by greedy arg-max
(DFX §IV-A). Execution is bit-exact with the hardware's arithmetic (docs/numerics.md).

examples:
  dfx run tiny.dfx --prompt "Hello, I am" --max-new-tokens 16
  dfx run tiny.dfx --tokens 15496,995 --max-new-tokens 8 --json
  dfx run tiny.dfx --prompt "The" --max-new-tokens 4 --logits steps.npy
      (float32 [steps, vocab]; row t holds the logits after token t)
  dfx run prog.dfx                       a program from dfx asm: each card's final state
  dfx run prog.dfx --max-instructions 1G    a larger instruction budget (docs/limits.md)
  dfx run tiny.dfx --tokens 1,2,3 --max-new-tokens 4 --backend rtl
      the same request on the core's RTL (Verilator; several cards: a ring of cores and
      routers in one model; the first run builds it, minutes); --json adds rtl_cycles and
      model_cycles per card
  dfx run tiny.dfx --tokens 1,2 --max-new-tokens 2 --backend rtl --waves run.fst
  dfx run tiny.dfx --tokens 1,2 --max-new-tokens 2 --backend rtl --trace rtl.json
      each card's unit busy intervals, taken from the RTL's issue handshakes, in the trace
      format of dfx perf --trace: open both in https://ui.perfetto.dev to compare
  dfx run tiny.dfx --tokens 1,2 --max-new-tokens 2 --backend rtl --top board
      the Alveo kernel top (dfx build's dfx_core: core, router, QSFP clock crossing)
"""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "run",
        help="generate text with a .dfx binary on simulated cards (functional, bit-exact)",
        description="Run one greedy text-generation request on the simulated DFX appliance,\n"
        "or, for a binary without a model (dfx asm), run its program until every card halts\n"
        "and print each card's final state.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("binary", metavar="OUT.dfx", help="a binary from dfx compile (or dfx asm)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--prompt", metavar="TEXT", help="prompt text (GPT-2 BPE)")
    src.add_argument("--tokens", metavar="IDS", help="prompt token ids, comma separated")
    p.add_argument("--max-new-tokens", type=int, default=16, metavar="N",
                   help="tokens to generate (16)")
    p.add_argument("--json", action="store_true", help="print ids and text as JSON")
    p.add_argument("--logits", metavar="FILE.npy", help="write every step's logits (float32)")
    p.add_argument("--tokenizer", metavar="DIR", help="vocab.json + merges.txt to use")
    add_limit_options(p)
    p.add_argument("--backend", choices=("functional", "rtl", "xrt"), default="functional",
                   help="functional simulator (default), the cores' RTL on Verilator (rtl) "
                   "or Alveo cards through XRT (xrt: docs/u280.md)")
    p.add_argument("--xclbin", metavar="FILE", help="with --backend xrt: the kernel's xclbin "
                   "(dfx build, make xclbin)")
    p.add_argument("--waves", metavar="FILE.fst", help="with --backend rtl: write the run's "
                   "waveform (FST; a second, traced model build)")
    p.add_argument("--trace", metavar="FILE.json", help="with --backend rtl: write each card's "
                   "unit busy intervals as Chrome/Perfetto trace events (as dfx perf --trace)")
    p.add_argument("--top", choices=("core", "board"), default=None,
                   help="with --backend rtl: simulate the core testbench top (core, default: "
                   "faster, with --trace) or the Alveo kernel top dfx build packages (board: "
                   "router and QSFP clock crossing on a second clock, the ring on link clock)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def add_limit_options(p: argparse.ArgumentParser) -> None:
    """``--max-instructions`` and ``--max-memory`` (docs/limits.md)."""
    p.add_argument("--max-instructions", type=count_arg, metavar="N", default=None,
                   help="instruction budget of the run, all cards together (default: derived "
                   "from the model, 10M per card for a program; docs/limits.md)")
    p.add_argument("--max-memory", type=bytes_arg, metavar="SIZE", default=None,
                   help="host memory the simulated memories may use, e.g. 8G (default: the "
                   "binary's data + 4G; docs/limits.md)")


def count_arg(text: str) -> int:
    """A positive integer, with an optional k/M/G suffix (1000s)."""
    return _scaled(text, 1000, "a positive count such as 500000 or 2G")


def bytes_arg(text: str) -> int:
    """A size in bytes with an optional K/M/G/T suffix (1024s)."""
    return _scaled(text, 1024, "a size such as 512M or 8G")


def _scaled(text: str, base: int, want: str) -> int:
    m = re.fullmatch(r"\s*([0-9]{1,15})\s*([kKmMgGtT]?)i?[bB]?\s*", text)
    if not m or int(m.group(1)) < 1:
        raise argparse.ArgumentTypeError(f"expected {want}, got {text[:40]!r}")
    return int(m.group(1)) * base ** " kmgt".index(m.group(2).lower() or " ")


_TOKEN = re.compile(r"[+-]?[0-9]+")


def _parse_ids(text: str) -> list[int]:
    items = [t for t in text.replace(" ", "").split(",") if t]
    out = []
    for t in items:
        if not _TOKEN.fullmatch(t):
            shown = text if len(text) <= 60 else text[:57] + "..."
            raise DfxError(f"--tokens must be comma-separated integers, got {shown!r}")
        if len(t.lstrip("+-")) > 12:
            raise DfxError(f"--tokens: token id of {len(t.lstrip('+-'))} digits is outside any "
                           "vocabulary")
        out.append(int(t))
    return out


class _Bar:
    """A one-line progress bar on stderr (only on a terminal)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled, self.t0 = enabled, time.perf_counter()

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled or total <= 0:
            return
        width = 30
        fill = int(width * done / total)
        dt = time.perf_counter() - self.t0
        rate = done / dt if dt > 0 else 0.0
        sys.stderr.write(f"\r[{'#' * fill}{'.' * (width - fill)}] {done}/{total} tokens "
                         f"{rate:.1f} tok/s")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def run(args: argparse.Namespace) -> int:
    from dfx.host.runtime import is_model
    from dfx.isa.container import read_binary

    binary = read_binary(args.binary, lazy=True)
    for option in ("waves", "trace", "top"):
        if getattr(args, option, None) is not None and getattr(args, "backend", "") != "rtl":
            raise DfxError(f"--{option} needs --backend rtl"
                           + (" (the timing model's trace: dfx perf --trace)"
                              if option == "trace" else ""))
    if getattr(args, "backend", "") == "xrt":
        from dfx.host.xrt_backend import import_pyxrt

        import_pyxrt()  # one line saying what to install, before any work
    if is_model(binary):
        return _generate(binary, args)
    return _execute(binary, args)


def _execute(binary: Any, args: argparse.Namespace) -> int:
    """A binary without a model: run the program, print each card's final state."""
    from dfx.host.runtime import PROGRAM_ONLY, execute

    if getattr(args, "backend", "functional") == "rtl":
        raise DfxError(f"{args.binary}: {PROGRAM_ONLY}; --backend rtl runs compiled models "
                       "only (use the functional simulator for programs)")
    given = [o for o, v in (("--prompt", args.prompt), ("--tokens", args.tokens),
                            ("--logits", args.logits), ("--tokenizer", args.tokenizer)) if v]
    if given:
        raise DfxError(f"{args.binary}: {PROGRAM_ONLY}, so {given[0]} does not apply; run "
                       "it without it to execute the program")
    t0 = time.perf_counter()
    res = execute(binary, max_instructions=args.max_instructions, memory_limit=args.max_memory)
    wall = time.perf_counter() - t0
    if args.json:
        print(json.dumps({"instructions": res.instructions, "cards": res.cards,
                          "simulation_seconds": round(wall, 3)}))
        return 0
    for c in res.cards:
        regs = ", ".join(f"{k} = {v}" for k, v in c["registers"].items()) or "all zero"
        print(f"card {c['card']}: halted at pc {c['pc']} after {c['instructions']:,} "
              f"instructions; registers: {regs}")
    if not args.quiet:
        print(f"dfx run: {res.instructions:,} instructions on {len(res.cards)} card(s); "
              f"functional simulation {wall:.2f} s", file=sys.stderr)
    return 0


def _generate(binary: Any, args: argparse.Namespace) -> int:
    """A compiled model: one greedy generation request."""
    from dfx.host.runtime import generate
    from dfx.isa.outputs import check_output, write_output

    if args.prompt is None and args.tokens is None:
        raise DfxError(f"{args.binary}: a compiled model: give --prompt TEXT or --tokens IDS")
    inputs = [args.binary]
    if args.logits is not None:
        check_output(args.logits, option="--logits", inputs=inputs)
    backend = getattr(args, "backend", "functional")
    rtl_options = None
    if backend == "rtl":
        from dfx.host.rtl_backend import rtl_run_options

        rtl_options = rtl_run_options(args, inputs)
    elif backend == "xrt":
        rtl_options = {"xclbin": getattr(args, "xclbin", None)}
    tokens = _parse_ids(args.tokens) if args.tokens is not None else None
    bar = _Bar(not args.quiet and sys.stderr.isatty())
    t0 = time.perf_counter()
    res = generate(binary, prompt=args.prompt, tokens=tokens,
                   max_new_tokens=args.max_new_tokens, logits=args.logits is not None,
                   tokenizer=args.tokenizer, progress=bar, max_instructions=args.max_instructions,
                   memory_limit=args.max_memory, backend=backend, rtl_options=rtl_options)
    wall = time.perf_counter() - t0
    if args.logits is not None and res.logits is not None:
        logits = res.logits
        write_output(args.logits, lambda f: np.save(f, logits), option="--logits",
                     inputs=inputs)
    mod = res.stats.get("modelled")
    if args.json:
        out = {
            "prompt_ids": res.prompt_ids, "generated_ids": res.new_ids,
            "prompt": res.prompt_text, "text": res.text,
            "simulation_seconds": round(wall, 3), "modelled": mod,
        }
        if backend == "rtl":
            out.update(backend="rtl", rtl_cycles=res.stats["rtl_cycles"],
                       model_cycles=res.stats["model_cycles"])
        print(json.dumps(out))
    else:
        if res.text is not None:
            text = f"{res.prompt_text}{res.text}"
            print(terminal_text(text, keep="\n\t") if sys.stdout.isatty() else text)
        else:
            print(",".join(map(str, res.prompt_ids + res.new_ids)))
        if mod:
            per = mod["gen_ms_per_token"]
            print(f"modelled latency on {mod['cards']} x {mod['core']} ({mod['board']}, "
                  f"{mod['clock_mhz']:g} MHz): {mod['total_ms']:.3f} ms total, "
                  f"{mod['ttft_ms']:.3f} ms to first token"
                  + (f", {per:.3f} ms per generated token" if per else "")
                  + " (dfx perf for the breakdown)")
        elif res.stats.get("modelled_error"):
            print(f"modelled latency: unavailable (timing model: {res.stats['modelled_error']})",
                  file=sys.stderr)
        sys.stdout.flush()
        if not args.quiet and backend == "rtl":
            from dfx.host.rtl_backend import rtl_summary

            print(rtl_summary(res, wall), file=sys.stderr)
        elif not args.quiet:
            n = len(res.prompt_ids) + len(res.new_ids) - 1
            print(f"dfx run: {len(res.new_ids)} new tokens; functional simulation "
                  f"{wall:.2f} s ({n / wall:.1f} tokens/s simulated)", file=sys.stderr)
    return 0
