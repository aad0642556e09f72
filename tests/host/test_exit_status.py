"""The README's exit-status table is the CLI's (dfx.host.cli.EXIT_STATUS), and every error
class maps to the status of its kind: 2 only for bad binaries (and usage), 1 for bad input."""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import dfx
from dfx.host import cli
from dfx.isa.errors import BinaryFormatError, DfxError

README = Path(__file__).resolve().parents[2] / "README.md"


def _readme_table() -> dict[int, str]:
    text = README.read_text()
    section = text[text.index("### Exit status and limits"):]
    rows = re.findall(r"^\| (\d+) \| (.+?) \|$", section, re.M)
    return {int(code): meaning.replace("`", "") for code, meaning in rows}


def test_readme_table_is_the_cli_table() -> None:
    assert _readme_table() == cli.EXIT_STATUS


def _all_error_classes() -> set[type]:
    for pkg in ("dfx.isa", "dfx.compiler", "dfx.sim", "dfx.host"):
        mod = importlib.import_module(pkg)
        for info in pkgutil.walk_packages(mod.__path__, pkg + "."):
            if ".tb" in info.name or info.name.endswith("__main__"):
                continue
            importlib.import_module(info.name)
    seen, todo = set(), [DfxError]
    while todo:
        c = todo.pop()
        seen.add(c)
        todo += [s for s in c.__subclasses__() if s not in seen]
    return seen


def test_error_classes_exit_with_the_status_of_their_kind() -> None:
    assert dfx  # the namespace package
    for cls in _all_error_classes():
        want = 2 if issubclass(cls, BinaryFormatError) else 1
        assert cls.exit_code == want, f"{cls.__module__}.{cls.__name__}: {cls.exit_code}"
        assert cls.exit_code in cli.EXIT_STATUS
