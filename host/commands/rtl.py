"""``dfx rtl --core NAME --out DIR``: Verilog of the whole core as a Vitis kernel (or of single
units with ``--unit``), with a manifest."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from dfx.isa.errors import DfxError

EXAMPLES = """\
The core is built from the same configuration the compiler and simulators read
(boards/cores/NAME.yaml): d, l, pipeline latencies, table sizes, HBM channels.

examples:
  dfx rtl --core tiny --out build/rtl-tiny              the whole core, small
  dfx rtl --core dfx-u280 --out build/rtl --lint        the U280 kernel, Verilator-linted
  dfx rtl --core dfx-u280 --out build/rtl --unit mpu    one unit at full size
Output (the core): dfx_core.v, the kernel top dfx_core with the Vitis port names (ap_clk,
ap_rst_n, s_axi_control_*, interrupt, m_axi_hbmNN_*, m_axi_ddr_*, tx_*/rx_* streams), one
<module>.v per arithmetic block, lane or scaler it instantiates (each distinct one converted
once), and manifest.json (ports and interfaces, parameters, ISA hash, control register map,
sha256 of each file, tool versions). With --unit: <unit>.v (top module dfx_<unit>) and
manifest.json (ports and latency of each unit).
"""


def register(subparsers: Any) -> None:
    from dfx.rtl.generate import UNIT_NAMES

    p = subparsers.add_parser(
        "rtl", help="generate Verilog of the core (a Vitis kernel) or of its units (Amaranth)",
        description="Generate Verilog for the DFX core as a Vitis RTL kernel, or for single "
                    "datapath units.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--core", default="dfx-u280", help="core configuration (dfx-u280)")
    p.add_argument("--board", default=None, help="board configuration (the core's own)")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory")
    p.add_argument("--unit", action="append", choices=UNIT_NAMES, metavar="UNIT",
                   help=f"this unit instead of the core (repeatable): {', '.join(UNIT_NAMES)}")
    p.add_argument("--lint", action="store_true",
                   help="also lint the Verilog with Verilator (the project's waivers)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dfx.isa.config import load_core
    from dfx.isa.outputs import check_output_dir, output_directory
    from dfx.rtl.generate import generate

    check_output_dir(args.out, option="--out")  # before the work
    core = load_core(args.core, args.board)
    t0 = time.perf_counter()

    def progress(text: str) -> None:
        if not args.quiet:
            print(f"dfx rtl: {text}", file=sys.stderr)

    from amaranth._toolchain.yosys import YosysError

    # the files are generated into a temporary directory and moved in when all are complete
    with output_directory(args.out, option="--out") as stage:
        try:
            manifest = generate(core, stage / "out", args.unit, run_lint=args.lint,
                                progress=progress)
        except YosysError as e:  # its message is Yosys' whole output: keep the last line
            last = [ln for ln in str(e).splitlines() if ln.strip()][-1:] or ["failed"]
            raise DfxError(f"--out {args.out}: Verilog generation failed in Yosys: "
                           f"{last[0].strip()}") from None
        for f in (stage / "out").iterdir():
            f.rename(stage / f.name)
        (stage / "out").rmdir()
    if not args.quiet:
        what = (f"{len(manifest['units'])} unit(s)" if "units" in manifest else
                f"{manifest['top']} ({len(manifest['files'])} files)")
        print(f"dfx rtl: wrote {what} and manifest.json to {args.out} "
              f"({time.perf_counter() - t0:.1f} s)", file=sys.stderr)
    return 0
