"""``dfx run OUT.dfx --prompt TEXT --max-new-tokens N``: generate text on the simulated cards."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

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
"""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "run",
        help="generate text with a .dfx binary on simulated cards (functional, bit-exact)",
        description="Run one greedy text-generation request on the simulated DFX appliance.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("binary", metavar="OUT.dfx", help="a binary from dfx compile")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--prompt", metavar="TEXT", help="prompt text (GPT-2 BPE)")
    src.add_argument("--tokens", metavar="IDS", help="prompt token ids, comma separated")
    p.add_argument("--max-new-tokens", type=int, default=16, metavar="N",
                   help="tokens to generate (16)")
    p.add_argument("--json", action="store_true", help="print ids and text as JSON")
    p.add_argument("--logits", metavar="FILE.npy", help="write every step's logits (float32)")
    p.add_argument("--tokenizer", metavar="DIR", help="vocab.json + merges.txt to use")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _parse_ids(text: str) -> list[int]:
    try:
        return [int(t) for t in text.replace(" ", "").split(",") if t]
    except ValueError:
        raise DfxError(f"--tokens must be comma-separated integers, got {text!r}") from None


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


def _save_npy(path: str, array: np.ndarray) -> None:
    """Write atomically: never leave a partial file behind."""
    target = Path(path)
    if target.is_dir():
        raise DfxError(f"--logits {path}: is a directory")
    fd, tmp = tempfile.mkstemp(dir=target.parent if str(target.parent) else ".",
                               prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, array)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def run(args: argparse.Namespace) -> int:
    from dfx.host.runtime import generate

    if args.logits is not None and not Path(args.logits).parent.exists():
        raise DfxError(f"--logits {args.logits}: directory {Path(args.logits).parent} "
                       "does not exist")
    tokens = _parse_ids(args.tokens) if args.tokens is not None else None
    bar = _Bar(not args.quiet and sys.stderr.isatty())
    t0 = time.perf_counter()
    res = generate(args.binary, prompt=args.prompt, tokens=tokens,
                   max_new_tokens=args.max_new_tokens, logits=args.logits is not None,
                   tokenizer=args.tokenizer, progress=bar)
    wall = time.perf_counter() - t0
    if args.logits is not None and res.logits is not None:
        _save_npy(args.logits, res.logits)
    mod = res.stats.get("modelled")
    if args.json:
        print(json.dumps({
            "prompt_ids": res.prompt_ids, "generated_ids": res.new_ids,
            "prompt": res.prompt_text, "text": res.text,
            "simulation_seconds": round(wall, 3), "modelled": mod,
        }))
    else:
        if res.text is not None:
            print(f"{res.prompt_text}{res.text}")
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
        if not args.quiet:
            n = len(res.prompt_ids) + len(res.new_ids) - 1
            print(f"dfx run: {len(res.new_ids)} new tokens; functional simulation "
                  f"{wall:.2f} s ({n / wall:.1f} tokens/s simulated)", file=sys.stderr)
    return 0
