"""The LUT-GEMM unit in Amaranth (docs/lutgemm.md; Park et al., ICLR 2024)."""
