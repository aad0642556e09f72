"""The distribution ships every subpackage and the built-in configurations."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_every_subpackage_is_listed() -> None:
    tool = _pyproject()["tool"]["setuptools"]
    listed = set(tool["packages"])
    dirs = {name: Path(folder) for name, folder in tool["package-dir"].items()}
    found = set()
    for name, folder in dirs.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            found.add(".".join([name, *rel.parts]))
    assert found - listed == set(), f"add to [tool.setuptools] packages: {sorted(found - listed)}"
    assert listed - found == set(), f"listed but missing: {sorted(listed - found)}"


def test_board_data_is_package_data() -> None:
    data = _pyproject()["tool"]["setuptools"]["package-data"]
    assert "cores/*.yaml" in data["dfx.boards"] and "*.yaml" in data["dfx.boards"]
    assert "*.yaml" in data["dfx.isa"]
