#!/usr/bin/env python3
"""GPT-2 XL with its real 25 heads next to DFX's 24-head variant on 4 cards (issue 11, item 5).

    .venv/bin/python bench/uneven_heads.py                     # 64:64 (~1-2 min of CPU)
    .venv/bin/python bench/uneven_heads.py --prompt-len 32 --gen-len 16
    .venv/bin/python bench/uneven_heads.py --models gpt2,gpt2-mini --gen-len 4   # a smoke test

What it does: for gpt2-xl (E = 1600, 25 heads: split 7/6/6/6) and gpt2-xl-24h (E = 1536,
24 heads: 6/6/6/6) it runs, through the real CLI in a temporary directory,

    dfx compile MODEL -o X.dfx --cards 4 --no-weights -q
    dfx perf X.dfx --prompt-len P --gen-len G --json

and prints one markdown row per model (dfx perf's figures: latency, per-token rates, card 0's
breakdown per generated token, each card's end time) plus the machine, date, load and commit.
Timing-only binaries (``--no-weights``) have the same programs and memory layout as the ones
with weights, so the timing model's figures are the same (docs/timing.md).
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from dfx.host.sysinfo import git_rev, loadavg, machine

MODELS = ("gpt2-xl", "gpt2-xl-24h")
CARDS = 4


def dfx(*args: str, cwd: Path) -> str:
    r = subprocess.run([sys.executable, "-m", "dfx.host", *args], cwd=cwd, capture_output=True,
                       text=True)
    if r.returncode != 0:
        raise SystemExit(f"dfx {' '.join(args)}: exit {r.returncode}: {r.stderr.strip()}")
    return r.stdout


def measure(model: str, prompt: int, gen: int, work: Path) -> dict[str, Any]:
    from dfx.compiler.driver import compile_model

    path = work / f"{model}-{CARDS}.dfx"
    t0 = time.perf_counter()
    dfx("compile", model, "-o", str(path), "--cards", str(CARDS), "--no-weights", "-q",
        cwd=work)
    t1 = time.perf_counter()
    rep = json.loads(dfx("perf", str(path), "--prompt-len", str(prompt), "--gen-len", str(gen),
                         "--json", cwd=work))
    t2 = time.perf_counter()
    part = compile_model(model, cards=CARDS, weights=False).partition  # the split, for the row
    rep["bench"] = {"compile_s": t1 - t0, "perf_s": t2 - t1,
                    "heads": [s.heads[1] for s in part.slices], "n_embd": part.n_embd}
    print(f"  [{model} x{CARDS} {prompt}:{gen}: compile {t1 - t0:.1f} s, perf {t2 - t1:.1f} s "
          f"wall]", file=sys.stderr)
    return rep


def row(model: str, rep: dict[str, Any]) -> list[str]:
    b = rep["bench"]
    gen = rep["breakdown"]["generation_per_token"]
    ends = " / ".join(f"{u['end_ms']:.2f}" for u in rep["units"])
    passes = rep["prompt_len"] + rep["gen_len"] - 1
    weights = rep["roofline"]["weight_bytes_per_card_without_kv"] / passes / 1e6
    return [model, str(rep["bench"]["n_embd"]), "/".join(map(str, b["heads"])),
            f"{weights:,.1f}", f"{rep['total_ms']:.1f}", f"{rep['ttft_ms']:.1f}",
            f"{rep['prompt_ms_per_token']:.3f}", f"{rep['gen_ms_per_token']:.3f}",
            f"{rep['tokens_per_s']:.1f}", f"{gen['matrix']:.3f}", f"{gen['attention']:.3f}",
            f"{gen['vector']:.3f}", f"{gen['ring_sync']:.3f}", ends]


HEAD = ["model", "E", "heads per card", "weights MB / pass (busiest card)",
        "total ms", "TTFT ms", "ms / prompt token", "ms / gen. token", "tokens/s",
        "card 0 matrix", "attention", "vector", "ring sync", "end ms per card"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prompt-len", type=int, default=64)
    ap.add_argument("--gen-len", type=int, default=64)
    ap.add_argument("--models", default=",".join(MODELS),
                    help="comma-separated presets (default: %(default)s)")
    ap.add_argument("--json", metavar="FILE", help="also write both dfx perf reports here")
    args = ap.parse_args(argv)
    models = args.models.split(",")
    start = datetime.datetime.now(datetime.UTC)
    print(f"* Date: {start:%Y-%m-%d %H:%M} UTC. Machine: {machine(numpy=False)}; load "
          f"average {loadavg()} at start. Source: git {git_rev('compiler', 'sim')}.")
    print(f"* Command: `.venv/bin/python bench/uneven_heads.py --prompt-len {args.prompt_len} "
          f"--gen-len {args.gen_len}`: per model `dfx compile MODEL -o X.dfx --cards {CARDS} "
          f"--no-weights -q` then `dfx perf X.dfx --prompt-len {args.prompt_len} --gen-len "
          f"{args.gen_len} --json` (core dfx-u280, board u280). Breakdown columns: card 0, ms "
          "per generated token.", flush=True)
    reps = {}
    with tempfile.TemporaryDirectory(prefix="dfx-uneven-") as tmp:
        for m in models:
            reps[m] = measure(m, args.prompt_len, args.gen_len, Path(tmp))
    print(f"* Load average at the end: {loadavg()}.")
    print()
    print("| " + " | ".join(HEAD) + " |")
    print("|" + "---|" * len(HEAD))
    for m in models:
        print("| " + " | ".join(row(m, reps[m])) + " |")
    if len(models) == 2:
        a, b = reps[models[0]], reps[models[1]]
        print()
        print(f"{models[0]} / {models[1]} per generated token: "
              f"{a['gen_ms_per_token'] / b['gen_ms_per_token']:.3f}; per prompt token: "
              f"{a['prompt_ms_per_token'] / b['prompt_ms_per_token']:.3f}.")
    if args.json:
        Path(args.json).write_text(json.dumps(reps, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
