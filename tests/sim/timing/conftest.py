"""Fixtures of the timing-model tests: the dfx-u280 core and small compiled models."""

from __future__ import annotations

import pytest

from dfx.compiler.driver import compile_model
from dfx.isa.config import CoreConfig, load_core
from dfx.isa.container import Binary


@pytest.fixture(scope="session")
def u280() -> CoreConfig:
    return load_core("dfx-u280")


@pytest.fixture(scope="session")
def tiny4() -> Binary:
    """gpt2-tiny (2 layers) on 4 cards, no weights."""
    return compile_model("gpt2-tiny", cards=4, weights=False).binary


@pytest.fixture(scope="session")
def gpt2_4() -> Binary:
    """GPT-2 124M (12 layers: enough for the loop memo to engage) on 4 cards, no weights."""
    return compile_model("gpt2", cards=4, weights=False).binary


@pytest.fixture(scope="session")
def medium4_rows() -> Binary:
    """GPT-2 345M (24 layers) on 4 cards, no weights, its per-layer DDR block aligned to a row
    of the memory system (one d x l tile): then every layer's DDR loads and conv1d biases
    split into the same ops (rtl/dma: an op never crosses a row), so the layer loop repeats
    exactly and the memo can replay it (sim/timing/memo.py). The compiler aligns that block
    to 64 bytes only (compiler/memplan.py), so this fixture compiles with a row instead."""
    from timing_helpers import row_aligned_ddr

    with row_aligned_ddr():
        return compile_model("gpt2-medium", cards=4, weights=False).binary

