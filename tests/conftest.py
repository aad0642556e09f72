"""Suite-wide options: ``--fullsize`` runs the tests marked ``fullsize`` (the dfx-u280-sized
generation, lint and exhaustive table checks: minutes to tens of minutes and gigabytes each),
which are skipped otherwise."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--fullsize", action="store_true", default=False,
                     help="also run the full-size (dfx-u280) generation and lint tests "
                          "(marker fullsize; tens of minutes each)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--fullsize"):
        return
    skip = pytest.mark.skip(reason="full size (dfx-u280): run with --fullsize")
    for item in items:
        if "fullsize" in item.keywords:
            item.add_marker(skip)
