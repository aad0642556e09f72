"""The Vector Processing Unit of the DFX core (DFX §2.5: VPU = VFU + SFU_V), Amaranth 0.5.

* :class:`Vpu`: the unit with stream interfaces (command, operand vectors, vector and scalar
  results) and its command sequencer;
* :class:`Vfu`: element-wise FP16 vector ops (add/sub/mul, vector-scalar, exp/gelu tables,
  bypass);
* :class:`SfuV`: accumulation (exact fixed point, rounded once: :class:`ExactAccumulate`),
  reduce-max/argmax, scalar FP32 add/sub/mul and the recip/rsqrt tables (:class:`ScalarTable`).

Bit-exact against ``dfx.isa.golden`` (docs/numerics.md).
"""

from .accumulate import ExactAccumulate
from .scalar_tables import ScalarTable
from .sfu import INDEX_BITS, SfuV
from .vfu import VFU_OPS, Vfu, VpuOp
from .vpu import Command, Vpu

__all__ = [
    "INDEX_BITS",
    "VFU_OPS",
    "Command",
    "ExactAccumulate",
    "ScalarTable",
    "SfuV",
    "Vfu",
    "Vpu",
    "VpuOp",
]
