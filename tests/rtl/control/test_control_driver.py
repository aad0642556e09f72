"""``ControlDriver`` (rtl/control/driver.py) against a register-file fake: argument words low
first at the register map's offsets, ap_start, polling, status read-back, interrupts."""

from __future__ import annotations

import asyncio

import pytest

from dfx.isa.config import load_core
from dfx.rtl.control import regmap as rm
from dfx.rtl.control.driver import ControlDriver


class Fake:
    """Words by offset; ap_done appears after ``busy`` CTRL reads following ap_start."""

    def __init__(self, regs, busy=3):
        self.regs, self.busy, self.words, self.log, self.left = regs, busy, {}, [], None

    async def read(self, off):
        if off == rm.CTRL:
            if self.left is not None:
                self.left -= 1
                if self.left == 0:
                    self.left = None
                    return rm.AP_DONE | rm.AP_IDLE
            return rm.AP_IDLE if self.left is None else 0
        return self.words.get(off, 0)

    async def write(self, off, value):
        self.log.append((off, value))
        if off == rm.CTRL and value & rm.AP_START:
            self.left = self.busy
            for name, v in (("status", 0), ("error_pc", 9), ("cycles", 1 << 40),
                            ("error_word", 3 << 200)):
                self.words.update(self.regs.words(name, v))
        elif off == rm.ISR:
            self.words[off] = self.words.get(off, 0) ^ value
        else:
            self.words[off] = value


def test_run_and_interrupts():
    regs = rm.regmap(load_core("tiny"))
    fake = Fake(regs)
    drv = ControlDriver(regs, fake.read, fake.write)

    async def go():
        res = await drv.run({"prog_words": 5, "hbm01": 0x1_2345_6789})
        assert (res.status, res.error_pc, res.cycles, res.error_word) == (0, 9, 1 << 40,
                                                                           3 << 200)
        assert res.polls == 3
        assert fake.log[:3] == [(regs["prog_words"].offset, 5),
                                (regs["hbm01"].offset, 0x2345_6789),
                                (regs["hbm01"].offset + 4, 1)]
        assert fake.log[3] == (rm.CTRL, rm.AP_START)
        assert await drv.read("hbm01") == 0x1_2345_6789
        await drv.enable_interrupt(done=True, ready=True)
        assert fake.words[rm.IER] == 3 and fake.words[rm.GIE] == 1
        fake.words[rm.ISR] = rm.IRQ_DONE
        assert await drv.clear_interrupt() == rm.IRQ_DONE and fake.words[rm.ISR] == 0
        with pytest.raises(ValueError, match="not a kernel argument"):
            await drv.write_args({"status": 1})
        fake.busy = 10
        await drv.start()
        with pytest.raises(TimeoutError):
            await drv.wait_done(max_polls=4)

    asyncio.run(go())
    with pytest.raises(TypeError, match="RegMap"):
        ControlDriver(None, fake.read, fake.write)
