#!/usr/bin/env python3
"""The long run of the property-based fuzzing in tests/isa/test_fuzz_inputs.py (issue 14):
the ``.dfx`` binary reader (with everything inspect, disasm, run and perf do with what it
accepts) and the assembler, each for ``--seconds`` (the suite runs 8 s of each).

    .venv/bin/python bench/fuzz_inputs.py                       # 300 s each
    .venv/bin/python bench/fuzz_inputs.py --seconds 3600 --only binary

Prints, per property, the examples run, examples per second and how they ended (refused on
load, refused by inspect, program ran, model timed, stopped with one line / assembled,
refused). A property violation stops the run with hypothesis' shrunk falsifying example and
a non-zero exit status.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

from dfx.host.sysinfo import cpu_model
from dfx.host.sysinfo import loadavg as load

TESTS = Path(__file__).resolve().parents[1] / "tests" / "isa" / "test_fuzz_inputs.py"


def _properties():  # noqa: ANN202 - the test module, loaded by path (tests are not a package)
    spec = importlib.util.spec_from_file_location("test_fuzz_inputs", TESTS)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=300.0, help="per property (300)")
    ap.add_argument("--only", choices=("binary", "asm"), help="run one property")
    args = ap.parse_args()
    mod = _properties()
    runs = {"binary": (mod.mutated_binaries(), mod.binary_property),
            "asm": (mod.asm_programs(), mod.asm_property)}
    print(f"# fuzz_inputs: {cpu_model()}, load {load()}, {args.seconds:g} s per property")
    for name, (strategy, prop) in runs.items():
        if args.only and name != args.only:
            continue
        mod.OUTCOMES.clear()
        t0 = time.monotonic()
        mod.seeds()  # compile the seeds outside the timed part
        t1 = time.monotonic()
        n = mod.run_for(args.seconds, strategy, prop)
        dt = time.monotonic() - t1
        total = sum(mod.OUTCOMES.values())
        print(f"{name}: {total} examples in {dt:.0f} s ({total / dt:.1f}/s; seeds "
              f"{t1 - t0:.1f} s; {n} drawn)")
        for outcome, count in mod.OUTCOMES.most_common():
            print(f"  {outcome:40s} {count:7d}  {100 * count / max(total, 1):5.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
