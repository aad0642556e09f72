"""Instruction budgets and the memory limit of the simulators (docs/limits.md).

Both simulators stop a run that executes more instructions (all cards together, loop
iterations replayed by the timing model's memoisation included) than its budget, with one
line naming each card's pc and instruction: a program that never halts ends in bounded time.

The default budget of a text-generation request of ``T = P + G`` tokens on ``n`` cards is
derived from the model: the compiled program of every supported GPT-2 executes, per token,
layer and card, about ``85 + 7 h`` instructions for ``h = ceil(n_head / n)`` heads per card
(measured with the timing model, docs/limits.md: 93 for one head per card, 150 for GPT-2 on
one card, 251 for GPT-2 1.5B with 24 heads on one card; independent of the position and of
quantization). The budget allows more than twice that, plus a fixed start-up allowance::

    budget = 1,000,000 + n * T * (n_layer + 1) * (192 + 16 * h)

A binary without a model (``dfx asm``) gets :data:`PROGRAM_BUDGET_PER_CARD` instructions per
card (about five seconds of functional simulation). ``--max-instructions`` replaces either.

The functional simulator's memories are sparse; the host memory they may allocate (pages and
written-byte masks, :class:`~dfx.sim.functional.memory.MemoryBudget`) is limited to the bytes of
the binary's data segments plus :data:`MEMORY_ALLOWANCE` (fills, stores, host writes);
``--max-memory`` replaces it.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = [
    "MEMORY_ALLOWANCE",
    "PROGRAM_BUDGET_PER_CARD",
    "default_instruction_budget",
    "default_memory_limit",
]

#: Instructions per card of a run without a model (an assembled program).
PROGRAM_BUDGET_PER_CARD = 10_000_000
#: Fixed part of a request's budget (start-up, host configuration, final arg-max).
REQUEST_BASE = 1_000_000
#: Per token, layer and card: instructions allowed, plus this many per head on the card.
PER_LAYER = 192
PER_HEAD = 16
#: Host memory the functional simulator may allocate beyond the binary's data segments.
MEMORY_ALLOWANCE = 4 << 30


def _model_int(model: Any, key: str) -> int | None:
    v = model.get(key) if isinstance(model, dict) else None
    return v if isinstance(v, int) and not isinstance(v, bool) and v > 0 else None


def default_instruction_budget(binary: Any, tokens: int | None = None) -> int:
    """The default budget of a run of ``binary``: a request of ``tokens`` = P + G tokens of a
    compiled model, or (``tokens`` None, or no model dimensions) a program run."""
    n = max(1, binary.n_cards)
    layers, heads = _model_int(binary.model, "n_layer"), _model_int(binary.model, "n_head")
    if tokens is None or layers is None or heads is None:
        return PROGRAM_BUDGET_PER_CARD * n
    per_card = math.ceil(heads / n)
    return REQUEST_BASE + n * tokens * (layers + 1) * (PER_LAYER + PER_HEAD * per_card)


def default_memory_limit(binary: Any) -> int:
    """Host bytes the functional simulator may allocate for ``binary``'s memories."""
    data = sum(seg.length or 0 for card in binary.cards for seg in card.segments
               if seg.fill is None)
    return data + MEMORY_ALLOWANCE
