"""The controller (DFX §2.1): integer registers, hardware loops, branches, integer ALU, lw/sw,
operand resolution (docs/core.md).
"""
