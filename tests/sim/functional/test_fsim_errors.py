"""Error messages: one line naming card, pc, annotation and the disassembled instruction."""

from __future__ import annotations

import numpy as np
import pytest

from dfx.isa.container import Binary, CardImage
from dfx.isa.encoding import Instruction, encode_program
from dfx.isa.errors import DfxError
from dfx.sim.functional import (
    Appliance,
    HostError,
    IllegalInstructionError,
    MemoryAccessError,
    SimError,
    UninitializedReadError,
)


def test_vrf_never_written(sim) -> None:
    with pytest.raises(UninitializedReadError) as e:
        sim.run("load dst=vrf[r0+0], src=hbm[r0+0], n=8\n"
                "vadd y=v[r0+0], a=v[r0+5], b=v[r0+0], n=1\nhalt",
                [("hbm", 0, np.zeros(8, np.float16))])
    assert str(e.value) == ("card 0, pc 1 (test): vadd y=v[r0+0], a=v[r0+5], b=v[r0+0], n=1: "
                            "VRF read of v[5..6) includes the never-written vector v[5]")
    err = e.value
    assert isinstance(err, SimError) and isinstance(err, DfxError)
    assert (err.card, err.pc, err.annotation) == (0, 1, "test")
    assert err.instruction == "vadd y=v[r0+0], a=v[r0+5], b=v[r0+0], n=1"
    assert err.detail.startswith("VRF read")


def test_hbm_never_written_names_the_annotation(sim) -> None:
    prog = """
        load dst=vrf[r0+0], src=hbm[r0+0], n=8
        conv1d y=v[r0+1], x=v[r0+0], w=hbm[r0+0x40], b=ddr[r0+0], kt=1, nt=1
        halt"""
    segs = [("hbm", 0, np.zeros(8, np.float16)), ("hbm", 0x40, np.zeros(10, np.float16)),
            ("ddr", 0, np.zeros(4, np.float16))]
    with pytest.raises(UninitializedReadError) as e:
        sim.run(prog, segs, debug=[[(0, "prologue"), (1, "layer / attn.c_proj")]])
    assert str(e.value) == (
        "card 0, pc 1 (layer / attn.c_proj): conv1d y=v[r0+1], x=v[r0+0], w=hbm[r0+64], "
        "b=ddr[r0+0], kt=1, nt=1: HBM weight read of 0x40..0x80 includes never-written bytes "
        "(first at 0x54)")


def test_out_of_bounds_vrf_and_memory(sim) -> None:
    with pytest.raises(MemoryAccessError, match=r"VRF write of v\[4095..4097\) is outside the "
                                                r"4096 vectors of the VRF"):
        sim.run("load dst=vrf[r0+0], src=hbm[r0+0], n=16\nvmov y=v[r0+4095], a=v[r0+0], n=2\n"
                "halt", [("hbm", 0, np.zeros(16, np.float16))])
    with pytest.raises(MemoryAccessError, match=r"DDR sw write of 0x1000000..0x1000004 is "
                                                r"outside the 0x1000000 bytes of DDR"):
        sim.run("li rd=r1, imm=0xfffff0\nsw rs1=r1, mem=ddr[r1+0x10]\nhalt")


def test_negative_address(sim) -> None:
    with pytest.raises(MemoryAccessError, match=r"HBM load read of -0x10..0x0 is outside"):
        sim.run("li rd=r1, imm=-16\nload dst=vrf[r0+0], src=hbm[r1+0], n=8\nhalt")


def test_illegal_word_in_a_program(sim) -> None:
    good = encode_program([Instruction("nop")])
    bad = good + bytes([0xFF]) + bytes(len(good) - 1)
    b = Binary(core=sim.core, model={}, cards=[CardImage(program=bad)])
    with pytest.raises(IllegalInstructionError, match=r"^card 0: illegal instruction at pc 1: "
                                                      r"opcode 0xff is not defined$"):
        Appliance(b)


def test_host_errors(sim) -> None:
    app = sim.run("halt")
    with pytest.raises(UninitializedReadError, match=r"^card 0: DDR host read of 0x0..0x4 "
                                                     r"includes never-written bytes"):
        app.read(0, "ddr", 0, 4)
    with pytest.raises(HostError, match=r"card 3 does not exist \(cards 0..0\)"):
        app.read(3, "ddr", 0, 4)
    with pytest.raises(HostError, match="the host reaches hbm and ddr, not 'vrf'"):
        app.write(0, "vrf", 0, b"ab")
    with pytest.raises(HostError, match="not an unsigned 32-bit value"):
        app.write_u32(0, "ddr", 0, [-1])
    with pytest.raises(MemoryAccessError, match="^card 0: HBM host write of"):
        app.write(0, "hbm", sim.core.b.hbm.capacity_bytes, b"x")
    app.write_u32(0, "ddr", 8, [1, 0xFFFFFFFF])
    assert app.read_u32(0, "ddr", 8, 2).tolist() == [1, 0xFFFFFFFF]
    app.write(0, "hbm", 2, np.array([1.5, -2.0], np.float16))
    assert app.read_f16(0, "hbm", 2, 2).tolist() == [1.5, -2.0]
    assert app.read(0, "hbm", 2, 2) == np.float16(1.5).tobytes()
