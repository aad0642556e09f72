"""The ``dfx`` command line: one front door, one sub-command per stage.

Each stage is a module in :mod:`dfx.host.commands` with ``register(subparsers)``, which adds
its parser and sets ``func=run``; ``run(args)`` returns the exit status (None means 0). User
errors are :class:`~dfx.isa.errors.DfxError`: printed as ``dfx: error: <message>`` on one
line (control characters escaped), exit status ``exit_code``. ``--debug`` re-raises them with
a traceback instead.

Every way out has its status (:data:`EXIT_STATUS`, the README's table): usage errors are one
line too; an ``OSError`` that a command did not name is one line with its file; SIGTERM and
SIGHUP become an exception, so every temporary output is removed
(:mod:`dfx.isa.outputs`) before dfx exits with 128 + the signal number; anything else is a bug,
reported as one ``internal error`` line (status 3; ``--debug`` shows the traceback).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any, NoReturn

from dfx.host.commands import asm, disasm
from dfx.host.commands import build as build_cmd
from dfx.host.commands import compile as compile_cmd
from dfx.host.commands import inspect as inspect_cmd
from dfx.host.commands import perf as perf_cmd
from dfx.host.commands import regress as regress_cmd
from dfx.host.commands import rtl as rtl_cmd
from dfx.host.commands import run as run_cmd
from dfx.host.text import one_line
from dfx.isa.container import tool_version
from dfx.isa.errors import DfxError
from dfx.isa.outputs import remove_temporaries

#: The sub-commands, in the order ``dfx --help`` lists them.
COMMANDS = (compile_cmd, run_cmd, perf_cmd, rtl_cmd, build_cmd, regress_cmd, asm, disasm,
            inspect_cmd)

DESCRIPTION = """\
dfx: open hardware design and simulation toolkit for DFX, the multi-FPGA GPT-2
text-generation appliance (Hong et al., MICRO 2022): 4 Alveo U280 cards, one compute
core each (HBM + DDR), joined in a QSFP ring, all running the same program on their share
of the weights.

flow:
  GPT-2 model --compile--> model.dfx --run / perf--> tokens, cycles on simulated cards
  assembly    --asm------> prog.dfx  --disasm / inspect--> listing, summary
  rtl / regress build the hardware core from the same ISA and core configuration and
  check it against the simulators.

A .dfx binary is self-describing: per card, the program and the initial HBM/DDR contents,
plus the ISA version it was built for and the core, board and model configuration. A binary
built for another ISA version is refused: recompile it. Only the stages listed under
"commands" below exist in this version.
"""

EPILOG = """\
examples:
  dfx asm prog.s -o prog.dfx          assemble a program for the default core
  dfx disasm prog.dfx                 list every card's program with debug annotations
  dfx inspect model.dfx               summarise a binary: ISA, core, memory use, symbols
  dfx inspect model.dfx --json        the same, machine-readable
  dfx COMMAND --help                  options of one command

exit status: 0 success; 1 bad input (a file, checkpoint, configuration, option value,
prompt or program that cannot be used, an output that cannot be written, a limit reached);
2 bad binary (not a dfx binary, corrupted, another version or ISA) or bad command line;
3 internal error (a bug); 130 interrupted; 129/143 terminated by SIGHUP/SIGTERM;
141 output pipe closed.
"""

#: Exit statuses, as documented in the README.
EXIT_STATUS = {
    0: "success",
    1: "bad input: a file, checkpoint, configuration, option value, prompt or program that "
       "cannot be used; an output that cannot be written; a limit reached; dfx regress: a "
       "bench failed",
    2: "bad binary (not a dfx binary, corrupted, another version or ISA) or bad command line",
    3: "internal error (a bug; --debug shows the traceback)",
    130: "interrupted (Ctrl-C)",
    129: "terminated by SIGHUP",
    143: "terminated by SIGTERM",
    141: "the output pipe was closed",
}
USAGE = 2
INTERNAL = 3


class _Terminated(BaseException):
    """SIGTERM or SIGHUP, raised in the main thread so that cleanup runs."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _on_signal(signum: int, _frame: Any) -> None:
    raise _Terminated(signum)


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line: ``dfx: error: dfx run: <problem> (dfx run --help)``."""

    def error(self, message: str) -> NoReturn:
        print(f"dfx: error: {self.prog}: {one_line(message)} (see {self.prog} --help)",
              file=sys.stderr)
        raise SystemExit(USAGE)


def version_text() -> str:
    """``dfx X.Y.Z (ISA name version, hash abcdef123456)``."""
    from dfx.isa.spec import load_spec

    spec = load_spec()
    return f"{tool_version()} (ISA {spec.name} {spec.version}, hash {spec.hash[:12]})"


class _VersionAction(argparse.Action):
    """``--version``: computed when asked (loads the ISA specification)."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **kw: Any):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kw)

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> None:
        print(version_text())
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="dfx",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--version", action=_VersionAction, help="print the dfx and ISA versions and exit"
    )
    parser.add_argument(
        "--debug", action="store_true", help="show a traceback for errors (for bug reports)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for module in COMMANDS:
        module.register(sub)
    for name, child in sub.choices.items():
        if child.get_default("func") is None:
            raise AssertionError(f"dfx {name}: register() did not set func")
        # accepted after the command too; SUPPRESS keeps a top-level --debug
        child.add_argument(
            "--debug",
            action="store_true",
            default=argparse.SUPPRESS,
            help="show a traceback for errors",
        )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``dfx`` command line; returns the exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args_list
    previous = _install_signals()
    try:
        return _main(args_list, debug)
    finally:
        remove_temporaries()
        _restore_signals(previous)


def _install_signals() -> dict[int, Any]:
    previous: dict[int, Any] = {}
    if threading.current_thread() is not threading.main_thread():
        return previous
    for name in ("SIGTERM", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is not None:
            previous[sig] = signal.signal(sig, _on_signal)
    return previous


def _restore_signals(previous: dict[int, Any]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)


def _main(args_list: list[str], debug: bool) -> int:
    try:
        parser = build_parser()
        try:
            args = parser.parse_args(args_list)
        except SystemExit as e:  # --help, --version, usage errors
            return _status(e.code)
        debug = args.debug
        if args.command is None:
            print("dfx: error: give a command (dfx --help lists them)", file=sys.stderr)
            return USAGE
        status = args.func(args)
        sys.stdout.flush()  # a closed pipe shows up here, not at interpreter exit
        return 0 if status is None else int(status)
    except DfxError as e:
        if debug:
            raise
        print(f"dfx: error: {one_line(e)}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        if debug:
            raise
        print("dfx: interrupted", file=sys.stderr)
        return 130
    except _Terminated as e:
        name = signal.Signals(e.signum).name
        print(f"dfx: terminated by {name}", file=sys.stderr)
        return 128 + e.signum
    except BrokenPipeError:
        # the reader went away (dfx disasm x.dfx | head): stop quietly, and stop Python from
        # complaining when it flushes stdout at exit
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):  # stdout is not a real file (captured in tests)
            pass
        return 141
    except MemoryError:
        if debug:
            raise
        print("dfx: error: out of memory (the host cannot hold what this run needs; see "
              "docs/limits.md)", file=sys.stderr)
        return 1
    except OSError as e:  # a file problem no command named: still one line, with the file
        if debug:
            raise
        where = f"{e.filename}: " if e.filename else ""
        print(f"dfx: error: {one_line(where + str(e.strerror or e))}", file=sys.stderr)
        return 1
    except Exception as e:  # noqa: BLE001 - a bug: one line, the traceback with --debug
        if debug:
            raise
        print(f"dfx: internal error: {type(e).__name__}: {one_line(e)} (a bug: run again "
              "with --debug and report the traceback)", file=sys.stderr)
        return INTERNAL


def _status(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(f"dfx: error: {one_line(code)}", file=sys.stderr)
    return USAGE


if __name__ == "__main__":
    raise SystemExit(main())
