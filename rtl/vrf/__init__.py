"""The vector register file (DFX §2: vector register file, d-wide FP16 vectors)."""
