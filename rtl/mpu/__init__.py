"""The Matrix Processing Unit of the DFX core (DFX §2.4: MFU + SFU_M), in Amaranth 0.5.

* :class:`Mpu`: the unit behind command / tile / bias / output / row-max streams, one d x l
  weight tile per cycle, bit-exact with the golden ``matvec`` (docs/numerics.md);
* :func:`tile_order`: the tile sequence it expects (DFX §2.3 zig-zag, block width
  ``interleave``), which the operand collector and the compiler follow;
* :class:`Mfu` (MAC trees + interleaved FP32 accumulator) and :class:`SfuM` (bias, scale,
  round, mask, GELU, vectorizer, reduce-max), its two halves.
"""

from .mfu import Mfu
from .mpu import Mpu, command_layout, output_layout, tile_layout, tile_order
from .sfu import SfuM

__all__ = ["Mfu", "Mpu", "SfuM", "command_layout", "output_layout", "tile_layout", "tile_order"]
