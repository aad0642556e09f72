#!/usr/bin/env python3
"""Functional-simulation speed: tokens per second of a GPT-2 request on N simulated cards
(target: >= 2 tokens/s for gpt2 (124M) on 4 cards on a 2-core machine).

    .venv/bin/python bench/sim_speed.py                         # gpt2, 4 cards, 8 + 32 tokens
    .venv/bin/python bench/sim_speed.py --model gpt2-mini --cards 2 --prompt 8 --new 32
    .venv/bin/python bench/sim_speed.py --profile               # + cProfile top entries

The model (seeded random weights, scale 4 so the tokens vary) is compiled once, then one
request runs through ``dfx.host.runtime.generate`` (the path of ``dfx run``), with logits
written back as ``dfx run --logits`` does. Speed = processed tokens / wall time, where the
cards process P + G - 1 tokens (every prompt token and every generated token but the last).
A second, identical request measures the warm speed (prepared weights cached). On a shared
machine wall times include waiting for the CPU: the load average and CPU time are printed.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime
import io
import pstats
import sys
import time

import numpy as np

from dfx.host.sysinfo import loadavg as load
from dfx.host.sysinfo import machine


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="gpt2")
    ap.add_argument("--cards", type=int, default=4)
    ap.add_argument("--prompt", type=int, default=8, help="prompt tokens (8)")
    ap.add_argument("--new", type=int, default=32, help="tokens to generate (32)")
    ap.add_argument("--scale", type=float, default=4.0)
    ap.add_argument("--profile", action="store_true", help="profile the cold request")
    args = ap.parse_args(argv)

    from dfx.compiler.driver import compile_model
    from dfx.host.runtime import generate
    from dfx.sim.functional import Appliance

    print(f"# bench/sim_speed.py {' '.join(argv if argv is not None else sys.argv[1:])}"
          .rstrip())
    print(f"# {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}; {machine()}")
    t0 = time.perf_counter()
    comp = compile_model(args.model, cards=args.cards, scale=args.scale)
    print(f"compiled {args.model} for {args.cards} cards in {time.perf_counter() - t0:.1f} s")
    vocab = int(comp.binary.model["vocab_size"])
    prompt = np.random.default_rng(0).integers(0, vocab, args.prompt).tolist()
    steps = args.prompt + args.new - 1

    prof = cProfile.Profile() if args.profile else None
    cpu0, t0 = time.process_time(), time.perf_counter()
    if prof:
        prof.enable()
    res = generate(comp.binary, tokens=prompt, max_new_tokens=args.new, logits=True)
    if prof:
        prof.disable()
    cold, cold_cpu = time.perf_counter() - t0, time.process_time() - cpu0
    print(f"cold request: {steps} tokens processed in {cold:.2f} s = {steps / cold:.2f} tokens/s "
          f"(CPU {cold_cpu:.2f} s = {steps / cold_cpu:.2f} tokens per CPU-second); "
          f"load {load()}")

    app = Appliance(comp.binary)  # warm: prepared weights stay cached between requests
    app.generate(prompt, args.new, write_logits=True)
    cpu0, t0 = time.process_time(), time.perf_counter()
    toks, _ = app.generate(prompt, args.new, write_logits=True)
    warm, warm_cpu = time.perf_counter() - t0, time.process_time() - cpu0
    assert toks[args.prompt:] == res.new_ids
    stats = app.stats()
    print(f"warm request: {steps} tokens processed in {warm:.2f} s = {steps / warm:.2f} tokens/s "
          f"(CPU {warm_cpu:.2f} s); {stats['instructions']:,} instructions on "
          f"{args.cards} cards = {stats['instructions'] / warm:,.0f} instructions/s; "
          f"load {load()}")
    print(f"generated ids: {res.new_ids[:12]}{' ...' if len(res.new_ids) > 12 else ''}")
    print()
    print("| model | cards | tokens (P + G - 1) | cold: s, tokens/s | warm: s, tokens/s |")
    print("|---|---|---|---|---|")
    print(f"| {args.model} | {args.cards} | {args.prompt} + {args.new} - 1 = {steps} | "
          f"{cold:.2f} s, **{steps / cold:.2f}** | {warm:.2f} s, **{steps / warm:.2f}** |")
    if prof:
        for key, what in (("tottime", "own time"), ("cumulative", "cumulative time")):
            s = io.StringIO()
            pstats.Stats(prof, stream=s).sort_stats(key).print_stats(25)
            print(f"\ncProfile, cold request, by {what} (top 25):")
            print(s.getvalue())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
