"""The memory system (DFX §2.2): AXI masters over the HBM pseudo-channels and DDR, in-order
arbitration, the DMA engine and the units' memory streams (docs/core.md).
"""
