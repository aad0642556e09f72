"""The control register map of the core's ``s_axi_control`` slave (docs/core.md "Control
register map"), computed once from the core configuration and used by the RTL
(:mod:`.ctrl`), the cocotb testbench and the host runtime.

Vitis ``ap_ctrl_hs`` (AMD UG1393, "Kernel Interface Requirements"):

* 0x00 CTRL: bit 0 ap_start (R/W, set by the host, cleared when the core takes it), bit 1
  ap_done (R, clear on read), bit 2 ap_idle (R), bit 3 ap_ready (R, clear on read), bit 7
  auto_restart (R/W);
* 0x04 GIE (bit 0), 0x08 IER (bit 0 done, bit 1 ready), 0x0C ISR (same bits, toggle on write);
* arguments from 0x10 in the layout Vitis' own control slaves use (Vitis HLS
  ``*_control_s_axi.v`` and the RTL Kernel Wizard; e.g. Xilinx Vitis_Accel_Examples
  ``rtl_kernels/rtl_vadd``, whose kernel.xml puts its three pointers at 0x10, 0x1C, 0x28 and
  its scalar at 0x34): a 32-bit scalar takes a data word and a reserved word (8 bytes), a
  64-bit pointer its low word, its high word and a reserved word (12 bytes), back to back.
  Offsets are therefore 4-byte aligned, not always 8-byte aligned; XRT writes each argument
  at the offset kernel.xml gives, as 32-bit words, low word first.
  Arguments: ``prog_words`` (32 bits), ``prog`` (program address in DDR), ``ddr`` (DDR
  buffer base), ``hbm00`` .. ``hbmNN`` (one buffer base per pseudo-channel, ``NN`` =
  ``core.b.hbm.pseudo_channels - 1``), then, 8-byte aligned, ``cards`` (32 bits: cards on
  the ring);
* then the read-only status block (not kernel arguments): ``status``,
  ``error_pc``, ``cycles`` (64 bits, low word first), ``error_word`` (256 bits, 8 words, word
  0 = bits 31..0), set when the core finishes; then the live registers a host reads while the
  core runs, to see where a card that does not finish is (a ring deadlock: each card's waiting
  ``send``/``recv``): ``pc``, ``busy``, ``tx_pc``, ``rx_pc``, ``ring_count``.

Reads of unmapped or reserved words return 0; writes to them and to read-only registers are
ignored (OKAY response), as in the Vitis-generated slaves.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from dfx.isa.config import CoreConfig

__all__ = [
    "AP_DONE",
    "AP_IDLE",
    "AP_READY",
    "AP_START",
    "AUTO_RESTART",
    "BUSY_UNITS",
    "CTRL",
    "GIE",
    "IER",
    "IRQ_DONE",
    "IRQ_READY",
    "ISR",
    "MOVER_ACTIVE",
    "RegMap",
    "Register",
    "regmap",
]

CTRL, GIE, IER, ISR = 0x00, 0x04, 0x08, 0x0C
AP_START, AP_DONE, AP_IDLE, AP_READY, AUTO_RESTART = 1 << 0, 1 << 1, 1 << 2, 1 << 3, 1 << 7
IRQ_DONE, IRQ_READY = 1 << 0, 1 << 1
ARGS_BASE = 0x10
#: ``s_axi_control`` address range of the kernel (kernel.xml ``range="0x1000"``).
MIN_RANGE = 0x1000

STATUS_BITS = {"status": 32, "error_pc": 32, "cycles": 64, "error_word": 256,
               "pc": 32, "busy": 32, "tx_pc": 32, "rx_pc": 32, "ring_count": 32}
#: Bits of the live ``busy`` register, bit 0 first: the issue stage holds an instruction, the
#: VPU, MPU, LUT-GEMM port, the DMA's, send's and recv's vector movers are working, results
#: are pending in the scoreboard or the scalar registers.
BUSY_UNITS = ("issue", "vpu", "mpu", "lut", "dma", "tx", "rx", "pending")
#: ``tx_pc``/``rx_pc``: set while the send/recv mover holds an instruction (pc in bits 30..0).
MOVER_ACTIVE = 1 << 31


@dataclass(frozen=True)
class Register:
    """One register: ``offset`` of its lowest word (byte address), ``bits`` (32, 64 or 256;
    wider values are consecutive 32-bit words, least significant first), ``access`` (``"rw"``,
    ``"ro"``, or ``"ctrl"`` for the four ap_ctrl_hs registers), ``kind`` (``"control"``,
    ``"scalar"``, ``"pointer"``, ``"status"``), ``port`` (for a pointer: the AXI master it
    addresses, ``m_axi_ddr`` / ``m_axi_hbmNN``), ``doc``."""

    name: str
    offset: int
    bits: int
    access: str
    kind: str
    port: str | None = None
    doc: str = ""

    @property
    def words(self) -> int:
        return -(-self.bits // 32)

    @property
    def word_offsets(self) -> tuple[int, ...]:
        """Byte offsets of the value's 32-bit words, least significant first."""
        return tuple(self.offset + 4 * i for i in range(self.words))

    @property
    def is_arg(self) -> bool:
        """A kernel argument (listed in kernel.xml, written by XRT before ap_start)."""
        return self.kind in ("scalar", "pointer")

    @property
    def mask(self) -> int:
        return (1 << self.bits) - 1


@dataclass(frozen=True)
class RegMap:
    """All registers of one core's control slave, in address order (module doc)."""

    registers: tuple[Register, ...]
    pseudo_channels: int

    def __post_init__(self) -> None:
        seen: dict[int, str] = {}
        for r in self.registers:
            for off in r.word_offsets:
                if off in seen:
                    raise ValueError(f"registers {seen[off]} and {r.name} overlap at {off:#x}")
                seen[off] = r.name

    def __getitem__(self, name: str) -> Register:
        for r in self.registers:
            if r.name == name:
                return r
        raise KeyError(f"no control register {name!r} (registers: "
                       f"{', '.join(r.name for r in self.registers)})")

    def __contains__(self, name: object) -> bool:
        return any(r.name == name for r in self.registers)

    def __iter__(self) -> Iterator[Register]:
        return iter(self.registers)

    @property
    def args(self) -> tuple[Register, ...]:
        """The kernel arguments, in argument order (kernel.xml ``id`` = index)."""
        return tuple(r for r in self.registers if r.is_arg)

    @property
    def status(self) -> tuple[Register, ...]:
        """The read-only status registers."""
        return tuple(r for r in self.registers if r.kind == "status")

    @property
    def hbm_names(self) -> tuple[str, ...]:
        return tuple(f"hbm{i:02d}" for i in range(self.pseudo_channels))

    @property
    def size(self) -> int:
        """Bytes up to the end of the last register."""
        last = self.registers[-1]
        return last.offset + 4 * last.words

    @property
    def range(self) -> int:
        """Address range of the slave: a power of two >= :data:`MIN_RANGE` covering it all."""
        r = MIN_RANGE
        while r < self.size:
            r *= 2
        return r

    @property
    def addr_width(self) -> int:
        """``s_axi_control`` address bits (12 for the 4 KiB range)."""
        return self.range.bit_length() - 1

    def word_at(self, offset: int) -> tuple[Register, int] | None:
        """(register, word index) of the 32-bit word at byte ``offset``; None if unmapped."""
        for r in self.registers:
            if r.offset <= offset < r.offset + 4 * r.words and (offset - r.offset) % 4 == 0:
                return r, (offset - r.offset) // 4
        return None

    def words(self, name: str, value: int) -> list[tuple[int, int]]:
        """(byte offset, 32-bit word) writes that set register ``name`` to ``value``."""
        r = self[name]
        if not isinstance(value, int) or not 0 <= value <= r.mask:
            raise ValueError(f"{name} must be an integer in 0..{r.mask:#x}, not {value!r}")
        return [(off, (value >> (32 * i)) & 0xFFFF_FFFF) for i, off in enumerate(r.word_offsets)]

    def value(self, name: str, read_word: Callable[[int], int]) -> int:
        """Assemble register ``name`` from ``read_word(byte offset) -> 32-bit word``."""
        return sum(read_word(off) << (32 * i) for i, off in enumerate(self[name].word_offsets))


def regmap(core: CoreConfig) -> RegMap:
    """The control register map of ``core`` (``core.b.hbm.pseudo_channels`` HBM bases)."""
    n = core.b.hbm.pseudo_channels
    regs = [
        Register("CTRL", CTRL, 32, "ctrl", "control", doc="ap_start, ap_done, ap_idle, "
                 "ap_ready, auto_restart"),
        Register("GIE", GIE, 32, "ctrl", "control", doc="global interrupt enable (bit 0)"),
        Register("IER", IER, 32, "ctrl", "control", doc="interrupt enable: done, ready"),
        Register("ISR", ISR, 32, "ctrl", "control", doc="interrupt status (toggle on write)"),
    ]
    off = ARGS_BASE

    def scalar(name: str, doc: str) -> None:
        nonlocal off
        regs.append(Register(name, off, 32, "rw", "scalar", doc=doc))
        off += 8  # data word + reserved word

    def pointer(name: str, port: str, doc: str) -> None:
        nonlocal off
        regs.append(Register(name, off, 64, "rw", "pointer", port, doc))
        off += 12  # low word, high word, reserved word

    scalar("prog_words", "program length in 256-bit instruction words")
    pointer("prog", "m_axi_ddr", "byte address of the program in DDR")
    pointer("ddr", "m_axi_ddr", "base of the DDR buffer (added to every ISA DDR address)")
    for i in range(n):
        pointer(f"hbm{i:02d}", f"m_axi_hbm{i:02d}",
                f"base of pseudo-channel {i}'s buffer (added to its local addresses)")
    off = -(-off // 8) * 8
    scalar("cards", "cards on the ring (1: no ring; send/recv then fault)")
    docs = {"status": "0 or the fault code (rtl/core/faults.py)",
            "error_pc": "pc of the faulting instruction",
            "cycles": "cycles from the first fetch to done",
            "error_word": "the faulting 256-bit instruction word",
            "pc": "live: pc of the instruction waiting to fire",
            "busy": "live: one bit per unit that is working (BUSY_UNITS)",
            "tx_pc": "live: MOVER_ACTIVE | pc of the send being sent",
            "rx_pc": "live: MOVER_ACTIVE | pc of the recv being received",
            "ring_count": "live: vectors sent (bits 15..0) and received (bits 31..16), "
                          "modulo 2^16"}
    for name, bits in STATUS_BITS.items():
        regs.append(Register(name, off, bits, "ro", "status", doc=docs[name]))
        off += -(-bits // 64) * 8
    return RegMap(tuple(regs), n)
