#!/usr/bin/env python3
"""The timing model's cycle count against the core RTL's, program by program (issue 10;
docs/timing.md "Validation").

    .venv/bin/python bench/timing_vs_rtl.py                    # tiny and small, every program
    .venv/bin/python bench/timing_vs_rtl.py --cores tiny --random 4
    .venv/bin/python bench/timing_vs_rtl.py --json out.json    # also the rows as JSON

For each core configuration it builds (or reuses) the Verilator model of the core testbench
(:func:`dfx.rtl.tb.core_build.core_model`: the core and its memory models with the timing
model's channel timing) and runs on it, one Verilator run each:

* the timing checks' directed programs (tests/sim/timing/rtl_programs.py);
* the core regression's directed programs and random programs (``dfx.rtl.tb.core_directed``,
  ``dfx.rtl.tb.core_random``: loops, branches, every instruction class);
* a small GPT-2 (2 layers, 4 heads, vocabulary 256; n_embd 32 on tiny, 64 on small), FP16 and
  BCQ-quantized (``bcq:q=3,g=32``, lutmv), a 4-token prompt and 4 new tokens;
* the same FP16 GPT-2 compiled for 2 and 4 cards (``--cards``), on the ring model
  (:func:`dfx.rtl.tb.core_build.ring_model`: the cards, their routers and the board's link
  models, one Verilator run): one row per card.

RTL cycles are the core's ``cycles`` register (first fetch to done); model cycles are
:func:`dfx.sim.timing.simulate`'s end for the same binary and request (the ring model's
cards meet their routers directly, as on the board). Printed: one markdown table per core
(program, RTL cycles, model cycles, difference), then the largest difference.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PROMPT = [5, 17, 200, 3]
NEW = 4
# layers, embd, heads, ctx, vocab of the small GPT-2 per core
GPT2 = {"tiny": (2, 32, 4, 16, 256), "small": (2, 64, 4, 16, 256)}
QUANT = "bcq:q=3,g=32"


def timing_programs(core: Any) -> list[tuple[str, Any]]:
    """tests/sim/timing/rtl_programs.py's directed programs as binaries."""
    sys.path.insert(0, str(ROOT / "tests" / "sim" / "timing"))
    import numpy as np
    from rtl_programs import directed, images

    from dfx.isa.container import Binary, CardImage, Segment
    from dfx.isa.encoding import encode_program

    img = images()
    segs = [Segment(space, 0, np.frombuffer(data, np.uint8)) for space, data in img.items()]
    return [(f"timing-{name}", Binary(core, {"name": name}, [
        CardImage(program=encode_program(prog), segments=segs)]))
        for name, prog in directed(core).items()]


def regression_programs(core: Any, random: int, seed: int) -> list[tuple[str, Any]]:
    """The core regression's directed programs and ``random`` random ones."""
    from dfx.rtl.tb.core_directed import directed_programs
    from dfx.rtl.tb.core_random import random_program

    progs = [p for p in directed_programs(core, seed) if p.kind != "fault"
             and p.expect == "OK" and not p.notes.get("known")]
    progs += [random_program(core, seed + k) for k in range(random)]
    return [(p.name, p.binary(core)) for p in progs]


def _gpt2_checkpoint(core: Any, workdir: Path) -> tuple[str, str]:
    sys.path.insert(0, str(ROOT / "tests" / "e2e"))
    import hfref

    from dfx.compiler.frontend.hf import save_checkpoint

    layers, embd, heads, ctx, vocab = GPT2[core.name]
    ckpt = save_checkpoint(hfref.random_model(layers, embd, heads, ctx, vocab, seed=3,
                                              scale=4.0), workdir / f"gpt2-{core.name}")
    return str(ckpt), f"gpt2 {layers}L e{embd}"


def gpt2_binaries(core: Any, workdir: Path) -> list[tuple[str, Any]]:
    from dfx.compiler.driver import compile_model

    ckpt, name = _gpt2_checkpoint(core, workdir)
    return [(f"{name} fp16", compile_model(ckpt, core=core.name, cards=1).binary),
            (f"{name} {QUANT}", compile_model(ckpt, core=core.name, cards=1,
                                              quant=QUANT).binary)]


def ring_binaries(core: Any, workdir: Path, cards: list[int]) -> list[tuple[str, Any]]:
    """The FP16 small GPT-2 for each card count of ``cards``."""
    from dfx.compiler.driver import compile_model

    ckpt, name = _gpt2_checkpoint(core, workdir)
    return [(f"{name} fp16 {n} cards", compile_model(ckpt, core=core.name, cards=n).binary)
            for n in cards]


def rtl_request_cycles(binary: Any, workdir: Path) -> list[int]:
    """The GPT-2 request on the core testbench (one card) or the ring model: the host's
    writes (:func:`dfx.host.device.request_writes`), no progress watcher; each card's
    cycles."""
    from dfx.host import rtl_backend as rb
    from dfx.host.device import request_writes
    from dfx.rtl.tb.core_job import HostAccess

    req = request_writes(binary, PROMPT, NEW, False)
    writes = [[HostAccess(space, addr, hex=data.hex()) for space, addr, data in card]
              for card in req.writes]
    reads = [HostAccess(req.tokens.space, req.tokens.addr, name="tokens",
                        bytes=req.tokens.nbytes)]
    _res, run = rb._run(binary, {"stall": 0, "wait": "interrupt", "vrf": None, "srf": False},
                        reads=reads, writes=writes, watch=None, model_cycles=None,
                        waves=None, status=None, progress=None, workdir=str(workdir),
                        keep=False, max_cycles=5_000_000, timeout_s=6 * 3600.0)
    return [int(c) for c in run.cycles]


def rtl_program(model: Any, core: Any, binary: Any, workdir: Path) -> int:
    """One program on the core testbench until it halts: its cycle count."""
    from dfx.rtl.tb.core_build import core_layout
    from dfx.rtl.tb.core_job import card_job
    from dfx.rtl.tb.core_run import run_job

    job = card_job(binary.cards[0], core, core_layout(core), workdir, max_cycles=2_000_000)
    res = run_job(model, job, workdir, timeout_s=3600.0)
    if res.outcome != "done" or res.status:
        raise RuntimeError(f"the RTL run ended with {res.outcome}, status {res.status}")
    return int(res.cycles)


def rtl_request(binary: Any, workdir: Path) -> int:
    """The GPT-2 request on the core testbench: card 0's cycles."""
    return rtl_request_cycles(binary, workdir)[0]


def model_cycles(binary: Any, request: bool) -> int:
    from dfx.sim.timing import simulate

    res = simulate(binary, len(PROMPT), NEW) if request else simulate(binary)
    return int(res.end[0])


def ring_rows(name: str, core: Any, work: Path, cards: list[int]) -> list[dict[str, Any]]:
    """The multi-card rows: one Verilator ring run per card count, one row per card."""
    rows: list[dict[str, Any]] = []
    for k, (prog, binary) in enumerate(ring_binaries(core, work, cards)):
        d = work / f"ring{k}"
        d.mkdir()
        try:
            rtl = rtl_request_cycles(binary, d)
        except Exception as e:  # noqa: BLE001 - reported in the table
            print(f"| {prog} | failed: {e} | | |", flush=True)
            rows.append({"core": name, "program": prog, "error": str(e)})
            continue
        from dfx.sim.timing import simulate

        mod = [int(e) for e in simulate(binary, len(PROMPT), NEW).end]
        for c, (r, m) in enumerate(zip(rtl, mod, strict=True)):
            diff = m - r
            pct = 100.0 * diff / r
            print(f"| {prog}, card {c} | {r:,} | {m:,} | {diff:+,} ({pct:+.2f} %) |",
                  flush=True)
            rows.append({"core": name, "program": f"{prog}, card {c}", "rtl_cycles": r,
                         "model_cycles": m, "difference": diff, "percent": pct})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cores", nargs="+", default=["tiny", "small"])
    ap.add_argument("--random", type=int, default=6, help="random programs per core (6)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--skip", nargs="*", default=[],
                    help="program groups to leave out: timing, regression, gpt2, ring")
    ap.add_argument("--cards", nargs="*", type=int, default=[2, 4],
                    help="card counts of the ring rows (2 4; none: no ring rows)")
    ap.add_argument("--json", default=None, help="also write the rows as JSON")
    args = ap.parse_args(argv)

    from dfx.host.sysinfo import git_rev, loadavg, machine
    from dfx.isa.config import load_core
    from dfx.rtl.tb.core_build import core_model

    print(f"# bench/timing_vs_rtl.py, {datetime.datetime.now().isoformat(timespec='seconds')}")
    print(f"# machine: {machine()}; load average {loadavg()}; revision "
          f"{git_rev('rtl', 'sim')}")
    rows: list[dict[str, Any]] = []
    for name in args.cores:
        core = load_core(name)
        model = None
        if not {"timing", "regression", "gpt2"} <= set(args.skip):  # one-card rows
            t0 = time.time()
            model = core_model(core, progress=lambda s, n=name: print(f"# [{n} build] {s}",
                                                                      flush=True))
            print(f"# {name}: Verilator model ready ({time.time() - t0:.0f} s)", flush=True)
        with tempfile.TemporaryDirectory(prefix="dfx-tvr-") as tmp:
            work = Path(tmp)
            items: list[tuple[str, Any, bool]] = []
            if "timing" not in args.skip:
                items += [(n, b, False) for n, b in timing_programs(core)]
            if "regression" not in args.skip:
                items += [(n, b, False) for n, b in regression_programs(core, args.random,
                                                                        args.seed)]
            if "gpt2" not in args.skip:
                items += [(n, b, True) for n, b in gpt2_binaries(core, work)]
            print(f"\n## {name}\n")
            print("| program | RTL cycles | model cycles | difference |")
            print("|---|---:|---:|---:|")
            for k, (prog, binary, request) in enumerate(items):
                d = work / f"run{k}"
                d.mkdir()
                try:
                    rtl = rtl_request(binary, d) if request else rtl_program(model, core,
                                                                            binary, d)
                except Exception as e:  # noqa: BLE001 - reported in the table
                    print(f"| {prog} | failed: {e} | | |", flush=True)
                    rows.append({"core": name, "program": prog, "error": str(e)})
                    continue
                mod = model_cycles(binary, request)
                diff = mod - rtl
                pct = 100.0 * diff / rtl
                print(f"| {prog} | {rtl:,} | {mod:,} | {diff:+,} ({pct:+.2f} %) |", flush=True)
                rows.append({"core": name, "program": prog, "rtl_cycles": rtl,
                             "model_cycles": mod, "difference": diff, "percent": pct})
            if "ring" not in args.skip and args.cards:
                rows += ring_rows(name, core, work, args.cards)
    done = [r for r in rows if "percent" in r]
    if done:
        worst = max(done, key=lambda r: abs(r["percent"]))
        exact = sum(1 for r in done if r["difference"] == 0)
        print(f"\n# {len(done)} programs: {exact} exact; largest difference "
              f"{worst['percent']:+.2f} % ({worst['core']}: {worst['program']}); "
              f"{sum(1 for r in done if abs(r['percent']) > 0.5)} above 0.5 %, "
              f"{sum(1 for r in done if abs(r['percent']) > 2.0)} above 2 %")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
