"""The vector register file (DFX §2: vector register file, d-wide FP16 vectors): :mod:`.vrf`,
its live-value table :mod:`.lvt`."""
