"""A linear-time combinational-cycle check for Amaranth 0.5 conversions (docs/core.md
"Verilog generation").

Every conversion builds a netlist and checks it for combinational cycles
(``amaranth.hdl._nir.Netlist.check_comb_cycles``). In Amaranth 0.5 that check walks, for every
output bit of an operator whose bits each depend on all its inputs (``+``, ``<``, shifts,
comparisons, dynamic part selects...), all the input bits again: out_bits x in_bits steps per
operator (amaranth-lang/amaranth#1628; fixed upstream by #1632, not in a 0.5 release). Wide
datapaths make it the dominant cost: 90 % of the LUT stream reader's conversion at the tiny
core, hours for the dfx-u280 memory system with its 16384-bit rows.

:func:`fast_cycle_check` (a context manager) makes conversions inside it use
:func:`check_comb_cycles`: the same graph with one node per such operator (its output bits lead
to the node, the node to its inputs), which has a cycle exactly when the original has one,
walked once with an explicit stack. When it finds a cycle it runs Amaranth's own check, which
raises ``CombinationalCycle`` with its usual path message. The netlist and the Verilog are
unchanged (the check only reads them). Outside Amaranth 0.5 it does nothing.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import amaranth
from amaranth.hdl import _nir

__all__ = ["ACTIVE", "check_comb_cycles", "fast_cycle_check"]

#: Whether this Amaranth has the check this module replaces (0.5.x).
ACTIVE = amaranth.__version__.startswith("0.5.")

_ORIGINAL = _nir.Netlist.check_comb_cycles
_lock = threading.Lock()
_depth = 0


def _all_inputs(cell: Any) -> bool:
    """Whether every output bit of ``cell`` depends on the same nets (all of its inputs)."""
    if isinstance(cell, _nir.Operator):
        if len(cell.inputs) == 1:
            return cell.operator != "~"
        if len(cell.inputs) == 2:
            return cell.operator not in ("&", "|", "^")
        return False
    return isinstance(cell, (_nir.Part, _nir.Matches, _nir.AsyncReadPort))


def _finds_cycle(netlist: Any) -> bool:
    cells, connections = netlist.cells, netlist.connections
    grouped = [_all_inputs(c) for c in cells]
    done: set = set()
    on_path: set = set()

    def successors(node: Any) -> Iterator[Any]:
        if isinstance(node, tuple):  # an operator node: all its inputs
            for src, _loc in cells[node[0]].comb_edges_to(0):
                yield src
            return
        if node.is_const:
            return
        if node.is_late:
            yield connections[node]
            return
        idx = node.cell
        if grouped[idx]:
            yield (idx,)
            return
        for src, _loc in cells[idx].comb_edges_to(node.bit):
            yield src

    def visit(root: Any) -> bool:
        if root in done:
            return False
        stack = [(root, successors(root))]
        on_path.add(root)
        while stack:
            node, succ = stack[-1]
            for nxt in succ:
                if nxt in done:
                    continue
                if nxt in on_path:
                    return True
                on_path.add(nxt)
                stack.append((nxt, successors(nxt)))
                break
            else:
                stack.pop()
                on_path.discard(node)
                done.add(node)
        return False

    for idx, cell in enumerate(cells):
        for net in cell.output_nets(idx):
            if visit(net):
                return True
    for value in netlist.signals.values():
        for net in value:
            if visit(net):
                return True
    return False


def check_comb_cycles(netlist: Any) -> None:
    """Raise Amaranth's ``CombinationalCycle`` if ``netlist`` has a combinational cycle
    (module doc); linear in the netlist's size."""
    if _finds_cycle(netlist):
        _ORIGINAL(netlist)  # raises, with Amaranth's message naming the path
        raise _nir.CombinationalCycle("combinational cycle detected")  # pragma: no cover


@contextlib.contextmanager
def fast_cycle_check() -> Iterator[None]:
    """Conversions inside use :func:`check_comb_cycles` (module doc); re-entrant and safe to
    use from several threads (the replacement is process-wide while any user is inside)."""
    global _depth
    if not ACTIVE:
        yield
        return
    with _lock:
        _depth += 1
        if _depth == 1:
            _nir.Netlist.check_comb_cycles = check_comb_cycles
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                _nir.Netlist.check_comb_cycles = _ORIGINAL
