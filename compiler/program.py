"""A symbolic program for one card, as lowering builds it.

Operands may name VRF buffers (allocated later by liveness) and off-chip regions (placed by the
memory plan) instead of numbers; branch targets are labels; every instruction carries the
annotation (layer / operation) it came from, which becomes the binary's debug map.
:meth:`Program.resolve` turns it into ISA instructions once buffers and regions have addresses.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from dfx.compiler.memplan import Use
from dfx.isa.encoding import Count, Instruction, MemAddr, VAddr


@dataclass(frozen=True)
class VRef:
    """``off`` vectors into VRF buffer ``buf`` plus register ``reg``."""

    buf: str
    off: int = 0
    reg: int = 0


@dataclass(frozen=True)
class MRef:
    """Address ``region + off`` (plus register ``reg``) in off-chip space ``space``."""

    space: str
    region: str | None = None
    off: int = 0
    reg: int = 0


@dataclass(frozen=True)
class Label:
    name: str


# Operands that an instruction writes (the rest are read), for liveness.
_WRITES = {"y", "dst", "sd", "rd"}
_RECV = {"recv"}


@dataclass
class _Item:
    op: str
    operands: dict[str, Any]
    note: str


class Program:
    """An instruction list under construction for one card."""

    def __init__(self, card: int) -> None:
        self.card = card
        self.items: list[_Item] = []
        self.labels: dict[str, int] = {}
        self.buffers: dict[str, int] = {}  # VRF buffer name -> size in vectors
        self.loops: list[tuple[int, int]] = []  # (first pc, last pc) of loop bodies
        self._note = ""

    # -- building -----------------------------------------------------------------------------
    def buffer(self, name: str, vectors: int) -> str:
        """Declare a VRF buffer of ``vectors`` d-wide vectors; returns its name."""
        old = self.buffers.get(name)
        if old is not None and old != vectors:
            raise ValueError(f"buffer {name} redeclared with {vectors} vectors (was {old})")
        self.buffers[name] = vectors
        return name

    @property
    def pc(self) -> int:
        return len(self.items)

    def note(self, text: str) -> None:
        """Annotate the following instructions (layer / operation) for the debug map."""
        self._note = text

    def label(self, name: str) -> None:
        self.labels[name] = self.pc

    def __call__(self, op: str, **operands: Any) -> int:
        self.items.append(_Item(op, operands, self._note))
        return self.pc - 1

    @contextmanager
    def loop(self, count: Count) -> Iterator[None]:
        """A hardware loop around the instructions emitted inside the ``with`` block."""
        start = self("loop", count=count)
        yield
        self("endloop")
        self.loops.append((start + 1, self.pc - 1))

    def span(self, start_label: str, end_pc: int) -> None:
        """Mark a branch-formed loop (label .. end_pc) for liveness."""
        self.loops.append((self.labels[start_label], end_pc))

    # -- liveness -----------------------------------------------------------------------------
    def uses(self) -> list[Use]:
        out = []
        for pc, it in enumerate(self.items):
            for name, v in it.operands.items():
                if isinstance(v, VRef):
                    write = name in _WRITES or (it.op in _RECV and name == "v")
                    out.append(Use(v.buf, pc, write))
                elif isinstance(v, MRef) and v.space == "vrf":
                    raise ValueError("use VRef for VRF operands")
        return out

    # -- resolution ---------------------------------------------------------------------------
    def resolve(self, vrf: dict[str, int], region: Callable[[str], int]
                ) -> tuple[list[Instruction], list[tuple[int, str]]]:
        """ISA instructions and the debug map [(first pc, annotation), ...]."""
        out: list[Instruction] = []
        debug: list[tuple[int, str]] = []
        for pc, it in enumerate(self.items):
            ops: dict[str, Any] = {}
            for name, v in it.operands.items():
                ops[name] = self._value(it.op, name, v, pc, vrf, region)
            if it.op == "loop":
                ops["body"] = self._loop_body(pc)
            out.append(Instruction.make(it.op, **ops))
            if not debug or debug[-1][1] != it.note:
                debug.append((pc, it.note))
        return out, debug

    def _loop_body(self, pc: int) -> int:
        for start, end in self.loops:
            if start == pc + 1:
                return end - start + 1
        raise ValueError(f"loop at {pc} has no body")

    def _value(self, op: str, name: str, v: Any, pc: int, vrf: dict[str, int],
               region: Callable[[str], int]) -> Any:
        if isinstance(v, VRef):
            addr = vrf[v.buf] + v.off
            if op in ("load", "store", "store_t", "copy") and name in ("dst", "src"):
                return MemAddr("vrf", base=v.reg, off=addr)
            return VAddr(base=v.reg, off=addr)
        if isinstance(v, MRef):
            off = (region(v.region) if v.region else 0) + v.off
            return MemAddr(v.space, base=v.reg, off=off)
        if isinstance(v, Label):
            return self.labels[v.name] - pc
        return v
