"""The control register map (rtl/control/regmap.py): Vitis ap_ctrl_hs offsets and the argument
layout of Vitis' own control slaves, for both cores."""

from __future__ import annotations

import pytest

from dfx.isa.config import load_core
from dfx.rtl.control import regmap as rm


@pytest.mark.parametrize("core", ["tiny", "dfx-u280"])
def test_layout(core):
    c = load_core(core)
    regs = rm.regmap(c)
    n = c.b.hbm.pseudo_channels
    assert regs.pseudo_channels == n
    assert [r.name for r in regs.args] == ["prog_words", "prog", "ddr",
                                           *[f"hbm{i:02d}" for i in range(n)], "cards"]
    assert regs["cards"].offset % 8 == 0 and regs["cards"].bits == 32
    assert (regs["CTRL"].offset, regs["GIE"].offset, regs["IER"].offset,
            regs["ISR"].offset) == (0, 4, 8, 12)
    # Vitis HLS / RTL-kernel-wizard layout: scalar = data + reserved, pointer = lo, hi, reserved
    assert regs["prog_words"].offset == 0x10 and regs["prog_words"].bits == 32
    assert regs["prog"].offset == 0x18 and regs["prog"].word_offsets == (0x18, 0x1C)
    assert regs["ddr"].offset == 0x24
    for i in range(n):
        r = regs[f"hbm{i:02d}"]
        assert r.offset == 0x30 + 12 * i and r.bits == 64 and r.port == f"m_axi_hbm{i:02d}"
        assert r.access == "rw" and r.kind == "pointer" and r.is_arg
    assert regs["prog"].port == regs["ddr"].port == "m_axi_ddr"
    status = regs.status
    assert [r.name for r in status] == ["status", "error_pc", "cycles", "error_word", "pc",
                                        "busy", "tx_pc", "rx_pc", "ring_count"]
    assert [r.bits for r in status] == [32, 32, 64, 256, 32, 32, 32, 32, 32]
    assert all(r.access == "ro" and not r.is_arg and r.offset % 8 == 0 for r in status)
    assert status[0].offset >= regs[f"hbm{n - 1:02d}"].offset + 12
    assert regs["error_word"].words == 8
    assert regs.range == 0x1000 and regs.addr_width == 12 and regs.size <= regs.range
    # reserved words are unmapped
    assert regs.word_at(0x14) is None and regs.word_at(0x20) is None
    assert regs.word_at(0x1C) == (regs["prog"], 1)
    assert regs.word_at(regs["error_word"].offset + 28) == (regs["error_word"], 7)


def test_words_and_value_round_trip():
    regs = rm.regmap(load_core("tiny"))
    w = regs.words("hbm02", 0x1234_5678_9ABC_DEF0)
    assert w == [(0x48, 0x9ABC_DEF0), (0x4C, 0x1234_5678)]
    mem = dict(regs.words("error_word", (1 << 255) | 5))
    assert regs.value("error_word", lambda off: mem.get(off, 0)) == (1 << 255) | 5
    with pytest.raises(ValueError, match="prog_words must be an integer"):
        regs.words("prog_words", 1 << 32)
    with pytest.raises(KeyError, match="no control register 'nope'"):
        regs["nope"]
    assert "cycles" in regs and "nope" not in regs


def test_bit_constants():
    assert (rm.AP_START, rm.AP_DONE, rm.AP_IDLE, rm.AP_READY, rm.AUTO_RESTART) == (1, 2, 4, 8,
                                                                                 128)
    assert (rm.IRQ_DONE, rm.IRQ_READY) == (1, 2)


def test_overlap_is_rejected():
    r = rm.Register("a", 0x10, 64, "rw", "pointer")
    with pytest.raises(ValueError, match="overlap"):
        rm.RegMap((r, rm.Register("b", 0x14, 32, "rw", "scalar")), 1)
