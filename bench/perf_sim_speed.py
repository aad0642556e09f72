#!/usr/bin/env python3
"""Timing-model speed and headline numbers (docs/timing.md, "Speed").

    .venv/bin/python bench/perf_sim_speed.py                    # the two reference runs
    .venv/bin/python bench/perf_sim_speed.py --model gpt2-xl-24h --cards 4 --prompt 64 --gen 64
    .venv/bin/python bench/perf_sim_speed.py --check-memo       # also time without the memo

Each run compiles a timing-only binary (no weights), writes it to a temporary file, and runs
``dfx perf`` on it through :func:`dfx.sim.timing.perf` (reading the file, as the command does).
It prints the modelled latencies and the simulator's wall and CPU time; on a shared machine
the wall time includes waiting for the CPU, so the load average is printed too. The target:
GPT-2 1.5B (gpt2-xl-24h, 48 layers) on 4 cards, 64 + 64 tokens, in <= 15 s wall on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REFERENCE = (("gpt2-xl-24h", 4, 64, 64), ("gpt2-medium", 1, 32, 32))


def run(model: str, cards: int, prompt: int, gen: int, check_memo: bool) -> None:
    from dfx.compiler.driver import compile_model
    from dfx.isa.container import write_binary
    from dfx.sim.timing import perf

    with tempfile.TemporaryDirectory() as d:
        path = write_binary(Path(d) / "model.dfx",
                            compile_model(model, cards=cards, weights=False).binary)
        load = os.getloadavg()[0]
        w0, c0 = time.perf_counter(), time.process_time()
        rep = perf(path, prompt, gen)
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        print(f"{model} on {cards} card(s), {prompt} + {gen} tokens")
        print(f"  modelled: TTFT {rep.ttft_ms:.3f} ms ({rep.prompt_ms_per_token:.3f} ms per "
              f"prompt token), {rep.gen_ms_per_token:.3f} ms per generated token "
              f"({rep.tokens_per_s:.1f} tokens/s), total {rep.total_ms:.3f} ms")
        print(f"  roofline: {rep.roofline['per_token_ms']:.3f} ms per token at "
              f"{rep.roofline['board_peak_gbs']:.0f} GB/s")
        gen_row = rep.breakdown.get("generation_per_token", {})
        print("  per generated token (ms): " +
              ", ".join(f"{k} {v:.3f}" for k, v in gen_row.items()))
        sim = rep.simulation
        print(f"  simulator: {wall:.2f} s wall, {cpu:.2f} s CPU (load average {load:.1f}); "
              f"{sim['instructions']:,} instructions modelled, {sim['steps']:,} handled, "
              f"{sim['memo_iterations']:,} loop iterations replayed")
        if check_memo:
            w0 = time.perf_counter()
            full = perf(path, prompt, gen, memo=False)
            same = full.to_dict()["breakdown"] == rep.to_dict()["breakdown"] \
                and full.total_ms == rep.total_ms and full.units == rep.units
            print(f"  without memo: {time.perf_counter() - w0:.2f} s wall, identical: {same}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model")
    ap.add_argument("--cards", type=int, default=4)
    ap.add_argument("--prompt", type=int, default=64)
    ap.add_argument("--gen", type=int, default=64)
    ap.add_argument("--check-memo", action="store_true")
    args = ap.parse_args(argv)
    runs = [(args.model, args.cards, args.prompt, args.gen)] if args.model else REFERENCE
    for r in runs:
        run(*r, check_memo=args.check_memo)
    return 0


if __name__ == "__main__":
    sys.exit(main())
