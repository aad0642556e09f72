"""In-order issue (DFX §2.1 scheduler and scoreboard): hazards, operand checks, dispatch
(docs/core.md).
"""
