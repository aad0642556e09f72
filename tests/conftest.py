"""Suite-wide options: ``--fullsize`` runs the tests marked ``fullsize`` (the dfx-u280-sized
generation, lint and exhaustive table checks: minutes to tens of minutes and gigabytes each),
``--extended`` the tests marked ``extended`` (a check whose only cost is a Verilator model of
its own, such as the traced core of ``dfx run --waves``, covered at a smaller scale by the
default run); both are skipped otherwise."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--fullsize", action="store_true", default=False,
                     help="also run the full-size (dfx-u280) generation and lint tests "
                          "(marker fullsize; tens of minutes each)")
    parser.addoption("--extended", action="store_true", default=False,
                     help="also run the checks that need a Verilator model of their own "
                          "(marker extended; minutes each, mostly the build)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for marker, option, reason in (
            ("fullsize", "--fullsize", "full size (dfx-u280): run with --fullsize"),
            ("extended", "--extended", "a Verilator model of its own: run with --extended")):
        if config.getoption(option):
            continue
        skip = pytest.mark.skip(reason=reason)
        for item in items:
            if marker in item.keywords:
                item.add_marker(skip)
