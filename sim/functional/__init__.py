"""dfx.sim.functional: the functional simulator of the DFX appliance.

It executes each card's instruction stream with the golden arithmetic (:mod:`dfx.isa.golden`),
bit for bit: :class:`Appliance` (N cards on a ring, host interface, :func:`generate`),
:class:`Card` (one core), :class:`Memory` (sparse HBM/DDR/weight buffer with written-ness
tracking and channel statistics), :class:`Ring`/:class:`Link` (the router FIFOs), and the
:class:`SimError` family (one-line messages naming card, pc, annotation and instruction).

Example::

    from dfx.sim.functional import generate
    tokens, logits = generate("gpt2.dfx", [464, 2068], max_new_tokens=8, write_logits=True)
"""

from .appliance import DEFAULT_TILE_CACHE_BYTES, Appliance, generate
from .card import SEMANTICS, Card
from .errors import (
    BudgetExceededError,
    DeadlockError,
    HostError,
    IllegalInstructionError,
    LoopError,
    MemoryAccessError,
    RegisterError,
    SimError,
    UninitializedReadError,
)
from .memory import Memory
from .ring import Link, Ring

__all__ = [
    "Appliance",
    "generate",
    "DEFAULT_TILE_CACHE_BYTES",
    "Card",
    "SEMANTICS",
    "Memory",
    "Link",
    "Ring",
    "SimError",
    "IllegalInstructionError",
    "MemoryAccessError",
    "UninitializedReadError",
    "RegisterError",
    "LoopError",
    "DeadlockError",
    "BudgetExceededError",
    "HostError",
]
