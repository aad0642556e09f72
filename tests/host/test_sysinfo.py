"""dfx.host.sysinfo: what bench scripts record about the machine."""

from __future__ import annotations

import re

from dfx.host import sysinfo


def test_machine_line_names_cpu_cores_and_versions() -> None:
    line = sysinfo.machine()
    assert sysinfo.cpu_model() in line and "cores" in line and "numpy" in line
    assert "numpy" not in sysinfo.machine(numpy=False)


def test_loadavg_is_three_numbers_or_unknown() -> None:
    la = sysinfo.loadavg()
    assert la == "?" or re.fullmatch(r"[\d.]+ [\d.]+ [\d.]+", la)


def test_git_rev_outside_a_checkout(tmp_path) -> None:  # noqa: ANN001
    assert sysinfo.git_rev(root=tmp_path) == "?"
