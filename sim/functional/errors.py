"""Errors of the functional simulator.

Every error is a :class:`SimError` (a :class:`~dfx.isa.errors.DfxError`, so the CLI prints it
as one line). An error raised while a card executes an instruction is *located*: its message
starts with the card, the pc, the debug-map annotation and the disassembled instruction::

    card 2, pc 1234 (layer / attn.c_proj): conv1d y=v[r0+12], ...: HBM read of
    0x1234..0x1274 includes never-written bytes (first at 0x1240)

(one line; wrapped here). The located fields are also attributes (``card``, ``pc``,
``instruction``, ``annotation``, ``detail``) for programs that want them.
"""

from __future__ import annotations

from dfx.isa.errors import DfxError

__all__ = [
    "SimError",
    "IllegalInstructionError",
    "MemoryAccessError",
    "UninitializedReadError",
    "RegisterError",
    "LoopError",
    "DeadlockError",
    "BudgetExceededError",
    "MemoryLimitError",
    "HostError",
]


class SimError(DfxError):
    """A program (or a host request) that the simulated appliance cannot execute."""

    def __init__(self, detail: str, *, card: int | None = None, pc: int | None = None,
                 instruction: str | None = None, annotation: str | None = None) -> None:
        self.detail = detail
        self.card = card
        self.pc = pc
        self.instruction = instruction
        self.annotation = annotation
        super().__init__(self._message())

    def _message(self) -> str:
        if self.card is None:
            return _one_line(self.detail)
        where = f"card {self.card}"
        if self.pc is not None:
            where += f", pc {self.pc}"
        if self.annotation:
            where += f" ({self.annotation})"
        if self.instruction:
            where += f": {self.instruction}"
        return _one_line(f"{where}: {self.detail}")

    def located(self, card: int, pc: int | None, instruction: str | None,
                annotation: str | None) -> SimError:
        """A copy of this error (same class) that names where it happened."""
        err = type(self).__new__(type(self))
        SimError.__init__(err, self.detail, card=card, pc=pc, instruction=instruction,
                          annotation=annotation)
        return err


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


class IllegalInstructionError(SimError):
    """An instruction whose operands are not allowed (wrong memory space, bad count, no ring,
    shift amount out of range, a loop without its endloop, ...)."""


class MemoryAccessError(SimError):
    """An address outside a memory (HBM, DDR, weight buffer, VRF) or misaligned."""


class UninitializedReadError(SimError):
    """A read of memory bytes or VRF vectors that were never written."""


class RegisterError(SimError):
    """A scalar register index beyond the core's scalar register file."""


class LoopError(SimError):
    """Hardware-loop misuse: nesting too deep, endloop without its loop, a branch out of a loop."""


class DeadlockError(SimError):
    """No card can make progress and not all have halted."""


class BudgetExceededError(SimError):
    """The instruction budget of a run was used up (an infinite loop, or a budget too small)."""


class MemoryLimitError(SimError):
    """The simulated memories would need more host memory than the run's memory limit."""


class HostError(SimError):
    """A bad request from the host side (bad prompt, token id, binary without weights...)."""
