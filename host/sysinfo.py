"""What a measurement records about where it ran: machine, load and source revision
(every bench script prints these next to its numbers; docs/BENCHMARKS.md)."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

__all__ = ["cpu_model", "machine", "loadavg", "git_rev"]

_ROOT = Path(__file__).resolve().parent.parent


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (``"unknown CPU"`` elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def machine(numpy: bool = True) -> str:
    """One line: OS, architecture, CPU, cores, Python (and numpy) versions."""
    u = platform.uname()
    s = (f"{u.system} {u.release} {u.machine}; {cpu_model()}; {os.cpu_count()} cores; "
         f"Python {platform.python_version()}")
    if numpy:
        import numpy as np

        s += f", numpy {np.__version__}"
    return s


def loadavg() -> str:
    """The 1, 5 and 15-minute load averages (``"?"`` where unknown): benches run on shared
    machines, so every result says how busy the machine was."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def git_rev(*paths: str, root: Path = _ROOT) -> str:
    """Short revision of the source tree, followed by ``(working tree modified)`` when there
    are uncommitted changes (under ``paths`` only, if given); ``"?"`` outside a git checkout."""
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root,
                             capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", *paths], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"
    if not dirty:
        return rev
    return rev + (f" ({', '.join(paths)} modified in the working tree)" if paths
                  else " (working tree modified)")
