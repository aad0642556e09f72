"""``dfx perf OUT.dfx --prompt-len P --gen-len G``: modelled latency of one request.

Runs the binary on the cycle-level timing model (:mod:`dfx.sim.timing`, docs/timing.md) and
reports time to first token, generation latency per token, total latency, tokens/s, where the
time goes (per unit and per kind of work), HBM bandwidth per card and the weight-streaming
roofline. Binaries compiled with ``--quant`` (``lutmv`` layers) also get the LUT-GEMM unit's
lane utilisation and what bound its instructions (HBM, lanes, scalers). ``--json`` prints the
same as one JSON document; ``--trace FILE`` also writes a Chrome/Perfetto trace of the first
``--trace-tokens`` tokens.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from dfx.host.commands.run import count_arg
from dfx.isa.errors import DfxError

EXAMPLES = """\
Timing does not depend on the weights: a binary compiled with --no-weights is enough.

examples:
  dfx compile gpt2-xl-24h -o xl.dfx --cards 4 --no-weights
  dfx perf xl.dfx --prompt-len 64 --gen-len 64
  dfx compile gpt2-xl-24h -o xlq.dfx --cards 4 --no-weights --quant bcq:q=3,g=128
  dfx perf xlq.dfx --prompt-len 64 --gen-len 64          (LUT-GEMM: adds the lut unit)
  dfx perf xl.dfx --prompt-len 64 --gen-len 64 --json | python -m json.tool
  dfx perf xl.dfx --prompt-len 8 --gen-len 2 --trace xl.trace.json
      (open it in https://ui.perfetto.dev or chrome://tracing: one process per card,
       one thread per unit, lutmv on thread "lut")
"""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "perf",
        help="model the latency of a request on the DFX appliance (cycle-level timing)",
        description="Time one text-generation request of a .dfx binary on the cycle-level\n"
        "timing model of the appliance: TTFT, ms per generated token, tokens/s, a\n"
        "breakdown per unit and kind of work, HBM bandwidth and the roofline.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("binary", metavar="OUT.dfx", help="a binary from dfx compile")
    p.add_argument("--prompt-len", type=int, required=True, metavar="P",
                   help="prompt tokens")
    p.add_argument("--gen-len", type=int, required=True, metavar="G",
                   help="tokens to generate")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.add_argument("--trace", metavar="FILE",
                   help="write a Chrome/Perfetto trace-event JSON file")
    p.add_argument("--trace-tokens", type=int, default=1, metavar="N",
                   help="tokens the trace covers (1; traces grow fast)")
    p.add_argument("--no-memo", action="store_true",
                   help="simulate every loop iteration (slow; for cross-checks)")
    p.add_argument("--max-instructions", type=count_arg, metavar="N", default=None,
                   help="instruction budget, all cards together (default: derived from the "
                   "model; docs/limits.md)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dfx.host.runtime import PROGRAM_ONLY, is_model
    from dfx.isa.container import read_binary
    from dfx.sim.timing import perf
    from dfx.sim.timing.appliance import MAX_TRACE_EVENTS

    binary = read_binary(args.binary, lazy=True)
    if not is_model(binary):
        raise DfxError(f"{args.binary}: {PROGRAM_ONLY}; dfx perf times text-generation "
                       "requests of a compiled model (dfx run executes a program)")
    report = perf(binary, args.prompt_len, args.gen_len, trace=args.trace,
                  trace_tokens=args.trace_tokens, memo=not args.no_memo,
                  max_instructions=args.max_instructions)
    if args.json:
        sys.stdout.write(report.to_json() + "\n")
    else:
        sys.stdout.write(report.render())
        if args.trace:
            cut = (f" (cut at {MAX_TRACE_EVENTS:,} events: lower --trace-tokens)"
                   if report.simulation.get("trace_truncated") else "")
            print(f"dfx perf: wrote {report.simulation['trace_events']:,} trace events to "
                  f"{args.trace}{cut}", file=sys.stderr)
    return 0
