"""The default instruction budget (dfx.sim.limits) is derived with a margin: compiled models
use well under half of it, at full context, on 1, 2 and 4 cards (docs/limits.md)."""

from __future__ import annotations

import pytest

from dfx.compiler.driver import compile_model
from dfx.sim.limits import PROGRAM_BUDGET_PER_CARD, default_instruction_budget
from dfx.sim.timing import simulate
from dfx.sim.timing.card import CLASSES, S_INSTR


@pytest.mark.parametrize("model, cards", [("gpt2-tiny", 1), ("gpt2-tiny", 4),
                                          ("gpt2-mini", 2)])
def test_real_programs_use_less_than_half_the_default_budget(model: str, cards: int) -> None:
    b = compile_model(model, cards=cards, weights=False).binary
    n_ctx = b.model["n_ctx"]
    prompt, gen = (n_ctx - 1, 1) if model == "gpt2-tiny" else (8, 24)
    res = simulate(b, prompt, gen)
    used = sum(sum(s[S_INSTR:S_INSTR + len(CLASSES)]) for s in res.stats)
    budget = default_instruction_budget(b, prompt + gen)
    assert used < budget / 2, (used, budget)
    # without the fixed start-up allowance, the per-token part alone still has 2x margin
    assert used < (budget - 1_000_000) / 2


def test_a_program_gets_a_fixed_budget_per_card() -> None:
    b = compile_model("gpt2-tiny", cards=2, weights=False).binary
    assert default_instruction_budget(b) == 2 * PROGRAM_BUDGET_PER_CARD
