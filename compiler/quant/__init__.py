"""Weight quantization for LUT-GEMM: binary-coding quantization (BCQ) and its uniform
(RTN int-q) special case (Park et al., ICLR 2024; docs/lutgemm.md)."""
