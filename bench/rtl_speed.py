#!/usr/bin/env python3
"""RTL simulation speed: the whole tiny core on Verilator running a small GPT-2 request
(goals: >= 100k cycles/s; the request in <= 2 minutes of wall time, the one-time build aside).

    .venv/bin/python bench/rtl_speed.py                  # 2 layers, n_embd 32, 4 heads, vocab 256
    .venv/bin/python bench/rtl_speed.py --prompt 4 --new 4 --quant bcq:q=3,g=32
    .venv/bin/python bench/rtl_speed.py --stall 6        # with random memory stalls

The model (a seeded random GPT-2 saved as a Hugging Face checkpoint) is compiled for one tiny
card and run through :func:`dfx.host.rtl_backend.generate` (the path of
``dfx run --backend rtl``), logits written back. Printed: the one-time build (Verilog
generation and Verilator build, or "cached"), the core's cycles and the timing model's for the
same request, the simulated cycles per wall second of the free-running run, the run's wall
time (loading the memories included; the cocotb process start and the model build not), the
whole request's wall time, and whether tokens and logits equal the functional simulator's.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from dfx.host.sysinfo import git_rev, loadavg, machine

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompt", type=int, default=4, help="prompt tokens (4)")
    ap.add_argument("--new", type=int, default=4, help="tokens to generate (4)")
    ap.add_argument("--quant", default=None, help="e.g. bcq:q=3,g=32 (lutmv)")
    ap.add_argument("--stall", type=int, default=0, help="memory stall probability /16 (0)")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--embd", type=int, default=32)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--vocab", type=int, default=256)
    ap.add_argument("--ctx", type=int, default=16)
    args = ap.parse_args(argv)

    sys.path.insert(0, str(ROOT / "tests" / "e2e"))
    import hfref

    from dfx.compiler.driver import compile_model
    from dfx.compiler.frontend.hf import save_checkpoint
    from dfx.host.rtl_backend import generate
    from dfx.isa.config import load_core
    from dfx.rtl.tb.core_build import build_times, core_model
    from dfx.sim.functional import generate as sim_generate

    print(f"# bench/rtl_speed.py, {datetime.datetime.now().isoformat(timespec='seconds')}")
    print(f"# machine: {machine()}")
    print(f"# load average: {loadavg()}; revision {git_rev('rtl', 'host')}")

    t0 = time.perf_counter()
    msgs: list[str] = []
    model = core_model(load_core("tiny"), progress=lambda s: (msgs.append(s),
                                                              print(f"  build: {s}")))
    build_s = time.perf_counter() - t0
    rec = build_times(model)
    rec_text = ", ".join(f"{k} {v:.0f} s" for k, v in (("Verilog generation", rec["generate_s"]),
                                                       ("Verilator + C++", rec["verilator_s"]))
                         if v is not None)
    if model.cached and not msgs:
        print(f"core model: cached ({build_s:.1f} s to check; recorded when built: {rec_text})")
    else:
        print(f"core model: built in {build_s:.0f} s ({rec_text})")

    with tempfile.TemporaryDirectory() as tmp:
        ckpt = save_checkpoint(hfref.random_model(args.layers, args.embd, args.heads,
                                                  args.ctx, args.vocab, seed=3, scale=4.0),
                               Path(tmp) / "ckpt")
        b = compile_model(str(ckpt), core="tiny", cards=1, quant=args.quant).binary
    rng = np.random.default_rng(0)
    prompt = [int(t) for t in rng.integers(0, args.vocab, args.prompt)]
    print(f"model: GPT-2 {args.layers} layers, n_embd {args.embd}, {args.heads} heads, vocab "
          f"{args.vocab}{', ' + args.quant if args.quant else ', FP16'}; "
          f"{len(b.cards[0].program) // 32} instructions; prompt {args.prompt} + {args.new} new "
          f"tokens; stall {args.stall}/16")

    t0 = time.perf_counter()
    ids, logits, run = generate(b, prompt, args.new, write_logits=True, stall=args.stall)
    total_s = time.perf_counter() - t0
    want_ids, want_logits = sim_generate(b, prompt, args.new, write_logits=True)
    same = ids == want_ids and logits.view(np.uint16).tolist() == \
        want_logits.view(np.uint16).tolist()
    mc = run.model_cycles[0] if run.model_cycles else None
    print(f"core cycles {run.cycles[0]:,} (first fetch to done); timing model {mc:,}"
          + (f" (RTL / model = {run.cycles[0] / mc:.3f})" if mc else ""))
    print(f"simulation: {run.sim_cycles:,} cycles in {run.wall_s:.2f} s = "
          f"{run.cycles_per_s:,.0f} cycles/s, {run.cycles_per_cpu_s:,.0f} per CPU second of "
          f"the simulator (free-running, ap_start to done); memory load {run.load_s:.2f} s")
    print(f"request wall time (RTL, model build excluded): {total_s:.1f} s; "
          f"goal <= 120 s: {'met' if total_s <= 120 else 'NOT met'}; "
          f">= 100k cycles/s: {'met' if run.cycles_per_s >= 100_000 else 'NOT met'} "
          f"({'met' if run.cycles_per_cpu_s >= 100_000 else 'not met'} per CPU second)")
    print(f"tokens {ids[len(prompt):]}; bit-identical to the functional simulator "
          f"(tokens and logits): {same}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
