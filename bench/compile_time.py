#!/usr/bin/env python3
"""Compile time of the big presets, with weights, stage by stage (target: <= 60 s for a
1.5B model on 4 cards, writing the binary included).

    .venv/bin/python bench/compile_time.py                    # the default set below
    .venv/bin/python bench/compile_time.py gpt2-xl-24h:4      # one model:cards
    .venv/bin/python bench/compile_time.py --profile gpt2-xl-24h:4   # + cProfile top 25

Each configuration runs in a fresh Python process (clean peak memory, no warm caches):
``compile_model(model, cards=N)`` with weights, then ``write_binary`` to a temporary file
(``--dir``, default /tmp), which is deleted afterwards. Reported: wall time of every stage
(``Compilation.timings``), of writing the binary and in total; process CPU time; peak RSS;
binary size. The machine's load average is printed too: on a shared machine wall times
include waiting for the CPU.

gpt2-xl has 25 heads, which cannot be split over 4 cards (heads are split across cards);
it is measured on 5 cards (and 1), gpt2-xl-24h (DFX's 24-head variant) on 4.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime
import json
import os
import platform
import pstats
import resource
import subprocess
import sys
import tempfile
import time

from dfx.host.sysinfo import cpu_model
from dfx.host.sysinfo import loadavg as load

DEFAULT = ["gpt2-xl-24h:4", "gpt2-xl:5", "gpt2-xl:1", "gpt2:4"]


def machine() -> str:
    cpu = cpu_model()
    u = platform.uname()
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{u.system} {u.release} {u.machine}; {cpu}; {os.cpu_count()} cores; "
            f"{mem:.0f} GiB; Python {platform.python_version()}")


def one(spec: str, directory: str, profile: bool) -> dict:
    """Compile and write one model:cards in this process; returns the measurements."""
    from dfx.compiler.driver import compile_model
    from dfx.isa.container import write_binary

    name, cards = spec.split(":")
    cpu0, t0 = time.process_time(), time.perf_counter()
    prof = cProfile.Profile() if profile else None
    if prof:
        prof.enable()
    comp = compile_model(name, cards=int(cards), weights=True)
    t1 = time.perf_counter()
    fd, tmp = tempfile.mkstemp(dir=directory, suffix=".dfx")
    os.close(fd)
    try:
        write_binary(tmp, comp.binary)
        t2 = time.perf_counter()
        size = os.path.getsize(tmp)
    finally:
        os.unlink(tmp)
    if prof:
        prof.disable()
    out = {
        "spec": spec,
        "stages": comp.timings,
        "compile_s": t1 - t0,
        "write_s": t2 - t1,
        "total_s": t2 - t0,
        "cpu_s": time.process_time() - cpu0,
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "binary_gb": size / 1e9,
        "instructions": sum(len(i) for i in comp.instructions),
        "load": load(),
    }
    if prof:
        import io

        s = io.StringIO()
        pstats.Stats(prof, stream=s).sort_stats("cumulative").print_stats(25)
        out["profile"] = s.getvalue()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("specs", nargs="*", default=DEFAULT, help="model:cards (default: %(default)s)")
    ap.add_argument("--dir", default="/tmp", help="where to write the binaries (deleted after)")
    ap.add_argument("--profile", action="store_true", help="print cProfile's top 25 entries")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(one(args.specs[0], args.dir, args.profile)))
        return 0

    print(f"# bench/compile_time.py {' '.join(argv if argv is not None else sys.argv[1:])}"
          .rstrip())
    print(f"# {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}; {machine()}")
    print()
    rows = []
    for spec in args.specs:
        cmd = [sys.executable, __file__, "--child", "--dir", args.dir, spec]
        if args.profile:
            cmd.append("--profile")
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode:
            print(f"{spec}: failed: {proc.stderr.strip().splitlines()[-1]}")
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        r["process_s"] = wall
        rows.append(r)
        print(f"{spec}: {r['total_s']:.1f} s (compile {r['compile_s']:.1f} s + write "
              f"{r['write_s']:.1f} s; process incl. start-up {wall:.1f} s), "
              f"CPU {r['cpu_s']:.1f} s, peak RSS {r['peak_rss_gib']:.1f} GiB, "
              f"binary {r['binary_gb']:.2f} GB, load {r['load']}", flush=True)
        if "profile" in r:
            print(r["profile"])
    if not rows:
        return 1
    stages = list(rows[0]["stages"])
    print()
    print("| model:cards | " + " | ".join(stages) + " | write | total | CPU | peak RSS | binary |")
    print("|---|" + "---|" * (len(stages) + 5))
    for r in rows:
        cells = [f"{r['stages'].get(s, 0):.1f}" for s in stages]
        print(f"| {r['spec']} | " + " | ".join(cells) + f" | {r['write_s']:.1f} | "
              f"**{r['total_s']:.1f}** | {r['cpu_s']:.1f} | {r['peak_rss_gib']:.1f} GiB | "
              f"{r['binary_gb']:.2f} GB |")
    print()
    print("(seconds, wall clock; load average at the end of each run: "
          + ", ".join(f"{r['spec']} {r['load']}" for r in rows) + ")")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
