"""Fault codes of the core: why it stopped early (status register ``status``, docs/core.md).

Each code names the functional simulator's error class (:mod:`dfx.sim.functional.errors`)
that the same program raises there, so the host reports an RTL fault exactly like a simulator
error: ``card c, pc p: <instruction>: <what>``. ``OK`` (0) means the program halted.
"""

from __future__ import annotations

from amaranth.lib import enum

__all__ = ["ERROR_CLASS", "Fault", "MESSAGE"]


class Fault(enum.Enum, shape=8):
    """The core's fault codes (value 0: no fault)."""

    OK = 0
    UNDEFINED_OPCODE = 1
    RESERVED_BITS = 2
    PC_RANGE = 3
    LOOP = 4
    COUNT = 5
    SPACE = 6
    ALIGN = 7
    MEM_RANGE = 8
    VRF_RANGE = 9
    SREG = 10
    RING = 11
    PROGRAM_SIZE = 12
    OVERLAP = 13


ERROR_CLASS: dict[Fault, str] = {
    Fault.UNDEFINED_OPCODE: "IllegalInstructionError",
    Fault.RESERVED_BITS: "IllegalInstructionError",
    Fault.PC_RANGE: "IllegalInstructionError",
    Fault.LOOP: "LoopError",
    Fault.COUNT: "IllegalInstructionError",
    Fault.SPACE: "IllegalInstructionError",
    Fault.ALIGN: "MemoryAccessError",
    Fault.MEM_RANGE: "MemoryAccessError",
    Fault.VRF_RANGE: "MemoryAccessError",
    Fault.SREG: "RegisterError",
    Fault.RING: "IllegalInstructionError",
    Fault.PROGRAM_SIZE: "HostError",
    Fault.OVERLAP: "IllegalInstructionError",
}
"""The :mod:`dfx.sim.functional.errors` class each fault corresponds to."""

MESSAGE: dict[Fault, str] = {
    Fault.UNDEFINED_OPCODE: "undefined opcode",
    Fault.RESERVED_BITS: "reserved bits or fields the instruction does not use are not zero",
    Fault.PC_RANGE: "the pc or a branch target is outside the program",
    Fault.LOOP: "hardware-loop misuse (body, nesting, endloop or a branch out of a loop)",
    Fault.COUNT: "a count is out of range",
    Fault.SPACE: "an operand is in a memory space it may not use",
    Fault.ALIGN: "a misaligned address or stride",
    Fault.MEM_RANGE: "an access past the end of a memory",
    Fault.VRF_RANGE: "a VRF range outside the VRF",
    Fault.SREG: "a scalar register beyond the core's scalar register file",
    Fault.RING: "send/recv need the ring, but this appliance has only one card",
    Fault.PROGRAM_SIZE: "the program does not fit the instruction buffer",
    Fault.OVERLAP: "a result range overlaps a source the unit has not finished reading",
}
"""One-line description of each fault (the host adds card, pc and instruction)."""
