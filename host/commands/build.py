"""``dfx build --board u280 --core dfx-u280 --out DIR``: the Vitis kernel project of a core
on a board (docs/u280.md)."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from dfx.isa.errors import DfxError

EXAMPLES = """\
Everything is derived from the core configuration (boards/cores/NAME.yaml) and the board top's
port description, the one the Verilog is generated from.

examples:
  dfx build --board u280 --core dfx-u280 --out build/u280    the U280 kernel project
  dfx build --board tiny --core tiny --out build/tiny        small, for tests
Output: dfx_core.v (the board top and the core), kernel.xml, package_kernel.tcl (Vivado IP
packager + package_xo), link.cfg (v++: nk, sp per HBM pseudo-channel, slr, the QSFP streams to
the AuroraFlow link kernels), link_hw_emu.cfg, Makefile (make xo; make xclbin TARGET=hw|hw_emu),
README.md and manifest.json (files with sha256, core, board, git revision). The first build of
a configuration generates the Verilog (the tiny core about a minute, dfx-u280 about half an
hour and 8 GB); later builds take it from the cache (~/.cache/dfx/rtl).
"""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "build", help="write the Vitis kernel project (Verilog, packaging, link config) for a "
                      "board",
        description="Write a self-contained Vitis RTL kernel project for a core on a board.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--board", default=None, help="board configuration (the core's own)")
    p.add_argument("--core", default="dfx-u280", help="core configuration (dfx-u280)")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dfx.host.kernel.project import write_project
    from dfx.isa.config import load_core
    from dfx.isa.outputs import check_output_dir

    check_output_dir(args.out, option="--out")  # before the work
    core = load_core(args.core, args.board)
    t0 = time.perf_counter()

    def progress(text: str) -> None:
        if not args.quiet:
            print(f"dfx build: {text}", file=sys.stderr)

    from amaranth._toolchain.yosys import YosysError

    try:
        man = write_project(core, args.out, progress=progress)
    except YosysError as e:  # its message is Yosys' whole output: keep the last line
        last = [ln for ln in str(e).splitlines() if ln.strip()][-1:] or ["failed"]
        raise DfxError(f"--out {args.out}: Verilog generation failed in Yosys: "
                       f"{last[0].strip()}") from None
    if not args.quiet:
        print(f"dfx build: wrote {len(man['files'])} files and manifest.json for {man['kernel']}"
              f" (core {man['core']}, board {man['board']}) to {args.out} "
              f"({time.perf_counter() - t0:.1f} s)", file=sys.stderr)
    return 0
