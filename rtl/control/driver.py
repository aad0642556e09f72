"""The host's side of ``s_axi_control``, the way XRT drives an ``ap_ctrl_hs`` kernel
(:mod:`.regmap`): write the arguments (64-bit values low word first), set ap_start, poll CTRL
until ap_done, read the status registers. Bus-agnostic: give it two coroutines,
``read_word(byte offset) -> int`` and ``write_word(byte offset, value)``, e.g. cocotbext-axi's
``AxiLiteMaster.read_dword`` / ``write_dword``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from . import regmap as rm

__all__ = ["ControlDriver", "RunResult"]

ReadWord = Callable[[int], Awaitable[int]]
WriteWord = Callable[[int, int], Awaitable[None]]


@dataclass(frozen=True)
class RunResult:
    """The status registers after a run (``status`` 0: no fault) and the CTRL polls it took."""

    status: int
    error_pc: int
    cycles: int
    error_word: int
    polls: int


class ControlDriver:
    """Drive one core's control slave through ``read_word`` / ``write_word`` (module doc)."""

    def __init__(self, regs: rm.RegMap, read_word: ReadWord, write_word: WriteWord):
        if not isinstance(regs, rm.RegMap):
            raise TypeError(f"regs must be a RegMap, not {regs!r}")
        self.regs, self._read, self._write = regs, read_word, write_word

    async def write_args(self, args: Mapping[str, int]) -> None:
        """Write kernel arguments by name (``prog_words``, ``prog``, ``ddr``, ``hbm00``...)."""
        for name, value in args.items():
            if not self.regs[name].is_arg:
                raise ValueError(f"{name} is not a kernel argument")
            for offset, word in self.regs.words(name, value):
                await self._write(offset, word)

    async def read(self, name: str) -> int:
        """Read any register by name (all its words)."""
        value = 0
        for i, offset in enumerate(self.regs[name].word_offsets):
            value |= (await self._read(offset)) << (32 * i)
        return value

    async def start(self) -> None:
        await self._write(rm.CTRL, rm.AP_START)

    async def wait_done(self, max_polls: int = 1 << 30) -> int:
        """Poll CTRL until ap_done (clear on read); returns the number of reads."""
        for polls in range(1, max_polls + 1):
            if (await self._read(rm.CTRL)) & rm.AP_DONE:
                return polls
        raise TimeoutError(f"ap_done not set after {max_polls} reads of CTRL")

    async def run(self, args: Mapping[str, int] | None = None, max_polls: int = 1 << 30
                  ) -> RunResult:
        """Arguments, ap_start, poll until ap_done, then the status registers."""
        if args:
            await self.write_args(args)
        await self.start()
        polls = await self.wait_done(max_polls)
        return RunResult(await self.read("status"), await self.read("error_pc"),
                         await self.read("cycles"), await self.read("error_word"), polls)

    async def enable_interrupt(self, done: bool = True, ready: bool = False) -> None:
        """GIE on, IER = the chosen events."""
        await self._write(rm.IER, (rm.IRQ_DONE if done else 0) | (rm.IRQ_READY if ready else 0))
        await self._write(rm.GIE, 1)

    async def clear_interrupt(self) -> int:
        """Read ISR and toggle its set bits back to 0; returns what was set."""
        isr = await self._read(rm.ISR)
        if isr:
            await self._write(rm.ISR, isr)
        return isr
