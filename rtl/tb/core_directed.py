"""Directed programs of the whole-core regression (docs/verification.md "Core regression"):
one or more per instruction class with the corner values random programs rarely hit, in the
frame of :mod:`.core_programs` (assembled from text: :func:`dfx.isa.asm.assemble`, so no opcode
or field is written by hand). Fault programs are in :mod:`.core_faults`.

Addresses come from the :class:`~.core_programs.Arena` (``{hd}`` HBM data, ``{hw}`` HBM
weights, ``{hs}`` HBM scratch, ``{hi}`` HBM integer words, ``{dd}``/``{dw}``/``{ds}``/``{di}``
the DDR ones, ``{wl}`` the weight buffer's LUT stream); sizes from the core (``{d}``, ``{l}``,
``{t}`` tile bytes, ``{srf}``).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np

from dfx.isa.asm import assemble
from dfx.isa.config import CoreConfig
from dfx.isa.container import Segment

from .core_programs import Frame, Program, frame, framed

__all__ = ["DIRECTED", "directed_programs", "fmt"]


def fmt(fr: Frame, text: str, **extra: int) -> str:
    """``text`` with the arena's and core's names filled in (module doc)."""
    ar, core = fr.arena, fr.core
    names = {"hd": ar.hbm["data"][0], "hw": ar.hbm["weights"][0], "hs": ar.hbm["scratch"][0],
             "hi": ar.hbm["ints"][0], "hl": ar.hbm["lut"][0], "dd": ar.ddr["data"][0],
             "dw": ar.ddr["weights"][0], "ds": ar.ddr["scratch"][0], "di": ar.ddr["ints"][0],
             "wl": ar.wbuf_lut, "d": core.d, "l": core.l, "t": core.tile_bytes,
             "srf": ar.srf, "depth": core.control.loop_depth, **extra}
    text = re.sub(r",[ \t]*\n\s*", ", ", text.format(**names))  # continuation lines
    return _SUM_RE.sub(_fold, text)


_SUM_RE = re.compile(r"\[r(\d+)((?:\+(?:0x[0-9a-fA-F]+|\d+))+)\]")


def _fold(m: re.Match[str]) -> str:
    """``[r0+0x100+8]`` -> ``[r0+264]`` (the assembler takes one immediate)."""
    return f"[r{m.group(1)}+{sum(int(t, 0) for t in m.group(2).split('+')[1:])}]"


def _int_alu(fr: Frame) -> str:
    return """
        li rd=r1, imm=0x7fffffffffffffff
        addi rd=r2, rs1=r1, imm=1             # wraps to the most negative
        li rd=r3, imm=-1
        shri rd=r4, rs1=r3, imm=63            # logical: 1
        shri rd=r5, rs1=r3, imm=0
        shli rd=r6, rs1=r3, imm=63
        muli rd=r7, rs1=r1, imm=3             # low 64 bits
        andi rd=r8, rs1=r3, imm=-16
        sub rd=r9, rs1=r0, rs2=r1
        add rd=r10, rs1=r1, rs2=r1
        li rd=r0, imm=5                       # ignored
        addi rd=r0, rs1=r1, imm=1             # ignored
        add rd=r11, rs1=r0, rs2=r0
        muli rd=r12, rs1=r3, imm=0
        shli rd=r13, rs1=r1, imm=1
        andi rd=r14, rs1=r1, imm=0xffff
        li rd=r15, imm=-9223372036854775808
        sub rd=r16, rs1=r15, rs2=r3
        muli rd=r17, rs1=r15, imm=-1
        shri rd=r18, rs1=r15, imm=32
        addi rd=r18, rs1=r18, imm=-0x80000000
        # lw / sw: a word written then read back at once, in both spaces; sw of r0; lw to r0
        sw rs1=r3, mem=ddr[r0+{di}]
        lw rd=r19, mem=ddr[r0+{di}]           # zero-extended: 0xffffffff
        li rd=r20, imm={hi}
        sw rs1=r1, mem=hbm[r20+4]
        lw rd=r21, mem=hbm[r20+4]
        sw rs1=r0, mem=hbm[r20+8]
        lw rd=r0, mem=hbm[r20+8]
        lw rd=r22, mem=hbm[r20+8]
        sw rs1=r22, mem=ddr[r0+{di}+12]
        lw rd=r23, mem=ddr[r0+{di}+12]
        addi rd=r23, rs1=r23, imm=1
        sw rs1=r23, mem=ddr[r0+{di}+12]       # overwrite the same word
        lw rd=r24, mem=ddr[r0+{di}+12]
        lw rd=r25, mem=hbm[r0+{hd}+16]        # FP16 data read as a word
        add rd=r26, rs1=r25, rs2=r24          # uses a lw result at once
        sw rs1=r26, mem=hbm[r20+16]
        # a DMA load of words just written by sw (through memory) and stored back
        li rd=r27, imm=0x3c003800
        sw rs1=r27, mem=ddr[r0+{di}+32]
        load dst=vrf[r0+100], src=ddr[r0+{di}+32], n=2
        store dst=ddr[r0+{di}+36], src=vrf[r0+100], n=2
        lw rd=r28, mem=ddr[r0+{di}+36]
    """


def _control(fr: Frame) -> str:
    return """
        li rd=r1, imm=0
        li rd=r20, imm=2
        loop count=2
          loop count=3
            loop count=r20
              loop count=1
                addi rd=r1, rs1=r1, imm=1
              endloop
            endloop
          endloop
        endloop                               # r1 = 12
        loop count=0
          sw rs1=r1, mem=ddr[r0+{di}]         # never runs
          addi rd=r2, rs1=r2, imm=100
        endloop
        li rd=r21, imm=-3
        loop count=r21+3                      # 0
          addi rd=r2, rs1=r2, imm=1
        endloop
        loop count=r21+5                      # 2
          addi rd=r2, rs1=r2, imm=1000
        endloop
        loop count=3                          # empty body
        endloop
        li rd=r3, imm=0
        li rd=r4, imm=2
        loop count=4
          addi rd=r3, rs1=r3, imm=1
          bne rs1=r3, rs2=r4, target=skip            # to the endloop
          addi rd=r5, rs1=r5, imm=10
        skip:
        endloop
        # every branch kind, taken and not taken, signed compares
        li rd=r6, imm=-5
        li rd=r7, imm=3
        li rd=r10, imm=0
        blt rs1=r6, rs2=r7, target=t1                # taken
        addi rd=r10, rs1=r10, imm=1
        t1: bge rs1=r6, rs2=r7, target=t2            # not taken
        addi rd=r10, rs1=r10, imm=2
        t2: beq rs1=r6, rs2=r6, target=t3            # taken
        addi rd=r10, rs1=r10, imm=4
        t3: bne rs1=r6, rs2=r6, target=t4            # not taken
        addi rd=r10, rs1=r10, imm=8
        t4: bge rs1=r7, rs2=r6, target=t5            # taken
        addi rd=r10, rs1=r10, imm=16
        t5: blt rs1=r7, rs2=r6, target=t6            # not taken
        addi rd=r10, rs1=r10, imm=32
        t6: beq rs1=r0, rs2=r7, target=t7            # not taken
        addi rd=r10, rs1=r10, imm=64
        t7: jmp target=t8
        addi rd=r10, rs1=r10, imm=128
        t8: beq rs1=r0, rs2=r0, target=@+1           # taken, to the next instruction
        bne rs1=r6, rs2=r7, target=t9                # branch to a branch
        nop
        t9: bne rs1=r6, rs2=r0, target=t10
        t10: addi rd=r10, rs1=r10, imm=256
        # a backward jmp: count down with beq/jmp
        li rd=r11, imm=3
        down: addi rd=r12, rs1=r12, imm=1
        addi rd=r11, rs1=r11, imm=-1
        beq rs1=r11, rs2=r0, target=out
        jmp target=down
        out: nop
        # a backward branch to the first instruction of a loop body, and a branch just
        # before the endloop
        li rd=r13, imm=0
        loop count=3
          body: addi rd=r13, rs1=r13, imm=1
          andi rd=r14, rs1=r13, imm=1
          bne rs1=r14, rs2=r0, target=body           # odd: again
          addi rd=r15, rs1=r15, imm=1
          beq rs1=r15, rs2=r15, target=last
          last:
        endloop
        # loops nested to the core's depth with register counts and loop-variant bases
        li rd=r16, imm=0
        li rd=r17, imm=2
        loop count=r17
          loop count=2
            loop count=r17+0
              loop count=1
                addi rd=r16, rs1=r16, imm=1
                vadd y=v[r16+60], a=v[r16+0], b=v[r16+20], n=1
              endloop
            endloop
          endloop
        endloop
    """


def _matrix(fr: Frame) -> str:
    t, d, l = fr.core.tile_bytes, fr.core.d, fr.core.l  # noqa: E741
    nv = lambda nt: -(-nt * l // d)  # noqa: E731
    return fmt(fr, """
        # conv1d + bias + GELU, weights in the weight buffer, kt_stride > kt, batch 2
        conv1d y=v[r0+40], x=v[r0+0], w=wbuf[r0+{t2}], b=ddr[r0+{dd}+2], kt=3, nt=3,
               kt_stride=4, batch=2, gelu
        # nt·l not a multiple of d: the padding is +0; one tile only
        mm y=v[r0+50], x=v[r0+8], w=hbm[r0+{hw}+{t5}], kt=1, nt=1
        # maskedmm: batch 3, limit 0 / small / huge, max at the SRF's end (a negative limit:
        # directed-known-maskedmm-negative-limit)
        li rd=r1, imm=0
        sli sd=s3, imm=0.125
        maskedmm y=v[r0+52], x=v[r0+10], w=hbm[r0+{hw}], kt=2, nt=3, batch=3, limit=r1,
                 scale=s3, max=s{smax}
        li rd=r2, imm=1
        maskedmm y=v[r0+62], x=v[r0+10], w=ddr[r0+{dw}], kt=1, nt=5, batch=2, limit=r2,
                 scale=s3, max=s20
        li rd=r3, imm=0x7fffffffffffffff
        maskedmm y=v[r0+70], x=v[r0+14], w=hbm[r0+{hw}+{t3}], kt=2, nt=2, limit=r3, scale=s4,
                 max=s22
        vsubs y=v[r0+70], a=v[r0+70], s=s22, n={nv2}
        # chaining: load -> conv1d -> vadd -> store -> load, each using the previous at once
        load dst=vrf[r0+80], src=hbm[r0+{hd}+0x100], n={d2}
        conv1d y=v[r0+82], x=v[r0+80], w=hbm[r0+{hw}+{t7}], b=hbm[r0+{hd}], kt=2, nt=4
        vadd y=v[r0+84], a=v[r0+82], b=v[r0+82], n={nv4}
        store dst=hbm[r0+{hs}], src=vrf[r0+84], n={d2}
        load dst=vrf[r0+86], src=hbm[r0+{hs}], n={d2}
        # WAR: the next instruction overwrites the x of a running matrix product
        mm y=v[r0+90], x=v[r0+20], w=hbm[r0+{hw}+{t9}], kt=3, nt=4, batch=2
        vmov y=v[r0+20], a=v[r0+30], n=6
        # y just before and just after x (the ISA forbids y over x: fault programs)
        mm y=v[r0+24], x=v[r0+26], w=hbm[r0+{hw}], kt=2, nt=4
        conv1d y=v[r0+28], x=v[r0+26], w=hbm[r0+{hw}+{t2}], b=hbm[r0+{hd}+6], kt=2, nt=6
        # weights written by a store just before (RAW through memory), tile aligned
        store dst=hbm[r0+{hs}+{t}], src=vrf[r0+0], n={tile_el}
        mm y=v[r0+96], x=v[r0+82], w=hbm[r0+{hs}+{t}], kt=1, nt=1
        # back-to-back products, the second reading the first's result
        mm y=v[r0+100], x=v[r0+0], w=hbm[r0+{hw}+{t4}], kt=1, nt={nt2}
        mm y=v[r0+102], x=v[r0+100], w=hbm[r0+{hw}], kt=2, nt=2, kt_stride=1
        # register counts and bases
        li rd=r4, imm=2
        li rd=r5, imm={hw}
        conv1d y=v[r4+104], x=v[r4+0], w=hbm[r5+{t}], b=ddr[r0+{dd}], kt=r4, nt=r4+1, gelu
    """, t2=2 * t, t3=3 * t, t4=4 * t, t5=5 * t, t7=7 * t, t9=9 * t, smax=fr.arena.srf - 3,
               nv2=nv(2), nv4=nv(4), d2=2 * d, tile_el=t // 2, nt2=2 * d // l)


def _lutmv(fr: Frame) -> str:
    by = {(s.space, s.n, s.ng, s.gs, s.q): s for s in fr.streams}
    h = [s for s in fr.streams if s.space == "hbm"]
    dd = [s for s in fr.streams if s.space == "ddr"]
    wl = fr.wbuf_stream
    d = fr.core.d
    lines = []
    y = 40
    for i, s in enumerate(h + dd + ([wl] if wl else [])):
        kv, yv = -(-s.k // d), -(-s.n // d)
        batch = (0, 2, 1, 3)[i % 4]
        nb = batch or 1
        flags = "".join(f", {f}" for f, on in (("bias", i % 2 == 0), ("gelu", i % 3 == 0)) if on)
        b = f"b={'hbm' if i % 2 else 'ddr'}[r0+{fr.arena.hbm['data'][0] + 2 * i}]"
        if i % 2:  # no bias: b is not used, any value (even an odd one) is fine
            b = "b=hbm[r0+1]"
        x = 2 * i
        lines.append(f"lutmv y=v[r0+{y}], x=v[r0+{x}], w={s.space}[r0+{s.addr}], {b}, "
                     f"n={s.n}, ng={s.ng}, gs={s.gs}, q={s.q}, batch={batch}{flags}")
        y += nb * yv
        assert kv * nb + x <= 40 and y <= 120, (kv, nb, x, y)
    # chaining: x produced just before; y consumed at once; register counts
    s = h[0]
    kv, yv = -(-s.k // d), -(-s.n // d)
    lines += [
        f"vadd y=v[r0+{y}], a=v[r0+0], b=v[r0+1], n={kv}",
        "li rd=r1, imm=-1",
        f"li rd=r2, imm={s.addr - 32}",
        f"lutmv y=v[r0+{y + kv}], x=v[r0+{y}], w={s.space}[r2+32], b=ddr[r0+2], "
        f"n=r1+{s.n + 1}, ng={s.ng}, gs={s.gs}, q={s.q}, bias",
        f"vmul y=v[r0+{y + kv}], a=v[r0+{y + kv}], b=v[r0+{y + kv}], n={yv}",
        f"vargmax rd=r3, a=v[r0+{y + kv}], n={s.n}",
    ]
    del by
    return "\n".join(lines)


LUT_SHAPES = {"hbm": [(13, 2, 1, 1), (8, 1, 2, 4), (1, 3, 1, 2), (24, 1, 1, 3), (9, 2, 2, 2)],
              "ddr": [(16, 2, 1, 3), (5, 1, 1, 4)]}


def _vector(fr: Frame) -> str:
    d = fr.core.d
    return fmt(fr, """
        # n = 0 of every op does nothing (vacc/vaccsq: +0)
        vadd y=v[r0+0], a=v[r0+1], b=v[r0+2], n=0
        vsubs y=v[r0+0], a=v[r0+1], s=s1, n=0
        vexp y=v[r0+0], a=v[r0+1], n=0
        vmov y=v[r0+0], a=v[r0+1], n=0
        sli sd=s30, imm=5.0
        vacc sd=s30, a=v[r0+3], n=0
        sli sd=s31, imm=5.0
        vaccsq sd=s31, a=v[r0+3], n=0
        # in place (y = a, y = b) and y starting before a source it overlaps (y starting
        # inside a source after its start is illegal: fault programs)
        vadd y=v[r0+4], a=v[r0+4], b=v[r0+10], n=3
        vmul y=v[r0+10], a=v[r0+11], b=v[r0+10], n=4
        vmov y=v[r0+20], a=v[r0+21], n=5
        vmov y=v[r0+30], a=v[r0+35], n=5
        vsub y=v[r0+40], a=v[r0+41], b=v[r0+44], n=4
        vexp y=v[r0+50], a=v[r0+50], n=3
        vgelu y=v[r0+51], a=v[r0+52], n=3
        # a chain: each op uses the previous result at once
        vadd y=v[r0+60], a=v[r0+0], b=v[r0+1], n=2
        vmul y=v[r0+62], a=v[r0+60], b=v[r0+60], n=2
        vexp y=v[r0+64], a=v[r0+62], n=2
        vgelu y=v[r0+66], a=v[r0+64], n=2
        vmov y=v[r0+68], a=v[r0+66], n=2
        # softmax: max, subtract, exp, sum, reciprocal, scale
        vmax sd=s1, a=v[r0+70], n=3
        vsubs y=v[r0+73], a=v[r0+70], s=s1, n=3
        vexp y=v[r0+73], a=v[r0+73], n=3
        vacc sd=s2, a=v[r0+73], n=3
        srecip sd=s2, sa=s2
        vmuls y=v[r0+76], a=v[r0+73], s=s2, n=3
        # LayerNorm: mean, variance, 1/sigma
        sli sd=s5, imm=0.0416666679084301
        vacc sd=s6, a=v[r0+80], n=3
        vaccsq sd=s7, a=v[r0+80], n=3
        smul sd=s6, sa=s6, sb=s5
        smul sd=s7, sa=s7, sb=s5
        smul sd=s8, sa=s6, sb=s6
        ssub sd=s7, sa=s7, sb=s8
        srsqrt sd=s9, sa=s7
        vsubs y=v[r0+83], a=v[r0+80], s=s6, n=3
        vmuls y=v[r0+83], a=v[r0+83], s=s9, n=3
        # back-to-back reductions, into the same and different registers
        vacc sd=s10, a=v[r0+90], n=2
        vaccsq sd=s10, a=v[r0+90], n=2
        vmax sd=s11, a=v[r0+92], n=1
        vmax sd=s12, a=v[r0+92], n=4
        vacc sd=s13, a=v[r0+92], n=4
        vargmax rd=r1, a=v[r0+90], n={dp3}
        vargmax rd=r1, a=v[r0+94], n=1
        vargmax rd=r2, a=v[r0+96], n={d4}
        # a vargmax result used at once: sw, count, VRF base
        sw rs1=r2, mem=ddr[r0+{di}]
        andi rd=r3, rs1=r2, imm=3
        vadd y=v[r3+100], a=v[r0+0], b=v[r0+1], n=r3+1
        vargmax rd=r4, a=v[r0+60], n=2
        vmov y=v[r4+110], a=v[r0+5], n=1
        # scalar-vector with a scalar written just before
        sli sd=s14, imm=-1.5
        vadds y=v[r0+112], a=v[r0+112], s=s14, n=2
        vmuls y=v[r0+114], a=v[r0+112], s=s14, n=2
    """, dp3=d + 3, d4=4 * d)


def _scalar(fr: Frame) -> str:
    return """
        sli sd=s1, imm=inf
        sli sd=s2, imm=-inf
        sli sd=s3, imm=nan
        sli sd=s4, imm=-0.0
        sli sd=s5, imm=1e-40
        sli sd=s6, imm=65504.0
        sli sd=s7, imm=70000.0
        sli sd=s8, imm=1e-08
        sli sd=s9, imm=f32:0x7f800001
        sadd sd=s10, sa=s1, sb=s2
        smul sd=s11, sa=s4, sb=s1
        ssub sd=s12, sa=s4, sb=s4
        sadd sd=s13, sa=s4, sb=s4
        smul sd=s14, sa=s5, sb=s5
        sadd sd=s15, sa=s3, sb=s6
        smul sd=s16, sa=s7, sb=s7
        srecip sd=s17, sa=s0
        srecip sd=s18, sa=s4
        srecip sd=s19, sa=s1
        srecip sd=s20, sa=s5
        srecip sd=s21, sa=s7
        sli sd=s22, imm=-0.75
        srecip sd=s22, sa=s22
        srsqrt sd=s23, sa=s22
        srsqrt sd=s24, sa=s0
        srsqrt sd=s25, sa=s1
        srsqrt sd=s26, sa=s5
        sli sd=s27, imm=4.0
        srsqrt sd=s27, sa=s27
        srsqrt sd=s28, sa=s8
        sadd sd=s29, sa=s29, sb=s29
        smul sd=s29, sa=s29, sb=s27
        ssub sd=s29, sa=s29, sb=s22
        srecip sd=s30, sa=s9
        vmuls y=v[r0+10], a=v[r0+10], s=s7, n=1
        vadds y=v[r0+11], a=v[r0+11], s=s1, n=1
        vmuls y=v[r0+12], a=v[r0+12], s=s3, n=1
        vsubs y=v[r0+13], a=v[r0+13], s=s5, n=1
        vmuls y=v[r0+14], a=v[r0+14], s=s4, n=1
        vexp y=v[r0+15], a=v[r0+11], n=1
        vmax sd=s31, a=v[r0+11], n=2
    """


def _dma(fr: Frame) -> str:
    d, l = fr.core.d, fr.core.l  # noqa: E741
    return fmt(fr, """
        # partial vectors (zero padded on load), n = 1, unaligned-by-2 sources
        load dst=vrf[r0+0], src=hbm[r0+{hd}+2], n=1
        load dst=vrf[r0+1], src=hbm[r0+{hd}+6], n={dm1}
        load dst=vrf[r0+2], src=ddr[r0+{dd}+10], n={dp1}
        load dst=vrf[r0+4], src=hbm[r0+{hd}+18], n={d3}
        load dst=vrf[r0+7], src=hbm[r0+{hd}], n=0
        # strides: overlapping chunks, just over a vector, odd multiples of 2
        load dst=vrf[r0+8], src=hbm[r0+{hd}+0x200], n={d3}, stride=2
        load dst=vrf[r0+11], src=ddr[r0+{dd}+0x100], n={d3p2}, stride={d2p2}
        load dst=vrf[r0+15], src=wbuf[r0+6], n={d2}, stride=6
        load dst=vrf[r0+17], src=hbm[r0+{hd}+0x300], n={dp1}, stride={d4}
        # stores: partial vector at an unaligned-by-2 address, overlapping chunks (later
        # wins), stride, into the weight buffer, n = 0
        store dst=hbm[r0+{hs}+2], src=vrf[r0+20], n={dp3}
        store dst=hbm[r0+{hs}+0x100], src=vrf[r0+22], n={d3}, stride=2
        store dst=ddr[r0+{ds}+0x40], src=vrf[r0+25], n={d3m1}, stride={d2m2}
        store dst=wbuf[r0+0x202], src=vrf[r0+28], n={d2}, stride={d4}
        store dst=ddr[r0+{ds}], src=vrf[r0+30], n=0
        # store_t: stride 0 (later elements win), one reduction row per l elements, n % l != 0
        store_t dst=hbm[r0+{hs}+0x400], src=vrf[r0+31], n={d2}, stride=0
        store_t dst=hbm[r0+{hs}+0x600], src=vrf[r0+33], n={lp1}, stride={tile}
        store_t dst=ddr[r0+{ds}+0x200], src=vrf[r0+34], n=3, stride=2
        store_t dst=wbuf[r0+0x300], src=vrf[r0+35], n={d2}, stride={tile2}
        # copies: overlapping forward and backward (memmove), through the weight buffer, odd
        # lengths, n = 0
        copy dst=hbm[r0+{hs}+0x802], src=hbm[r0+{hs}+0x800], n=37
        copy dst=hbm[r0+{hs}+0x900], src=hbm[r0+{hs}+0x906], n=41
        copy dst=wbuf[r0+0x402], src=hbm[r0+{hd}+0x40], n=19
        copy dst=ddr[r0+{ds}+0x302], src=wbuf[r0+0x402], n=19
        copy dst=ddr[r0+{ds}], src=hbm[r0+{hd}], n=0
        copy dst=ddr[r0+{ds}+0x400], src=ddr[r0+{ds}+0x402], n=1
        # memory RAW / WAR / WAW between DMA, lw/sw and matrix weights
        store dst=hbm[r0+{hs}+0xa00], src=vrf[r0+40], n={d2}
        load dst=vrf[r0+42], src=hbm[r0+{hs}+0xa04], n={d2}
        lw rd=r1, mem=hbm[r0+{hs}+0xa08]
        li rd=r2, imm=0x12345678
        sw rs1=r2, mem=hbm[r0+{hs}+0xa10]
        load dst=vrf[r0+44], src=hbm[r0+{hs}+0xa00], n={d2}
        load dst=vrf[r0+46], src=ddr[r0+{ds}+0x500], n={d2}
        store dst=ddr[r0+{ds}+0x500], src=vrf[r0+48], n={d2}
        store dst=ddr[r0+{ds}+0x500], src=vrf[r0+50], n={dp1}
        copy dst=ddr[r0+{ds}+0x600], src=ddr[r0+{ds}+0x500], n={d2}
        load dst=vrf[r0+52], src=ddr[r0+{ds}+0x600], n={d2}
        sw rs1=r2, mem=ddr[r0+{ds}+0x600]
        copy dst=hbm[r0+{hs}+0xb00], src=ddr[r0+{ds}+0x600], n=4
        lw rd=r3, mem=hbm[r0+{hs}+0xb00]
        # register bases and counts, loop-variant
        li rd=r4, imm={hs}
        li rd=r5, imm=0
        loop count=3
          load dst=vrf[r5+60], src=hbm[r4+0xc00], n=r5+{d}
          store dst=hbm[r4+0xd00], src=vrf[r5+60], n=r5+3, stride={d2}
          addi rd=r4, rs1=r4, imm=0x22
          addi rd=r5, rs1=r5, imm=1
        endloop
    """, dm1=d - 1, dp1=d + 1, d3=3 * d, d2=2 * d, d3p2=3 * d + 2, d2p2=2 * d + 2,
               d4=4 * d, dp3=d + 3, d3m1=3 * d - 1, d2m2=2 * d - 2, lp1=l + 1,
               tile=fr.core.tile_bytes, tile2=2 * fr.core.tile_bytes)


def _edges(fr: Frame) -> str:
    """The last bytes of HBM (an image segment there), of the weight buffer, the last VRF
    vector and scalar register, results brought back into the compared windows."""
    c = fr.core
    cap, wb, t = c.b.hbm.capacity_bytes, c.buffers.wbuf_tiles * c.tile_bytes, c.tile_bytes
    d = c.d
    return fmt(fr, """
        load dst=vrf[r0+100], src=hbm[r0+{e16}], n={d8}
        store dst=hbm[r0+{e32}], src=vrf[r0+0], n={d8}
        load dst=vrf[r0+101], src=hbm[r0+{e32}], n={d16}
        copy dst=wbuf[r0+{w16}], src=hbm[r0+{e16}], n={d8}
        load dst=vrf[r0+103], src=wbuf[r0+{w16}], n={d8}
        lw rd=r1, mem=hbm[r0+{e4}]
        sw rs1=r1, mem=hbm[r0+{e8}]
        lw rd=r2, mem=hbm[r0+{e8}]
        li rd=r3, imm={e4}
        lw rd=r4, mem=hbm[r3+0]
        vmov y=v[r0+{v1}], a=v[r0+5], n=1
        vadd y=v[r0+104], a=v[r0+{v1}], b=v[r0+{v1}], n=1
        vacc sd=s{s1}, a=v[r0+{v1}], n=1
        sli sd=s{s2}, imm=2.5
        smul sd=s{s1}, sa=s{s1}, sb=s{s2}
        mm y=v[r0+105], x=v[r0+0], w=hbm[r0+{et}], kt=1, nt={nt}
        store dst=hbm[r0+{et}], src=vrf[r0+105], n={d8}
        load dst=vrf[r0+106], src=hbm[r0+{et}], n={d8}
    """, e16=cap - 2 * d, e32=cap - 4 * d, e4=cap - 4, e8=cap - 8, et=cap - t,
               w16=wb - 2 * d, d8=d, d16=2 * d, v1=c.buffers.vrf_vectors - 1,
               s1=fr.arena.srf - 1, s2=fr.arena.srf - 2, nt=1)


def _negative_limit(fr: Frame) -> str:
    return """
        li rd=r1, imm=-1
        sli sd=s3, imm=1.0
        maskedmm y=v[r0+60], x=v[r0+0], w=hbm[r0+{hw}], kt=1, nt=2, limit=r1, scale=s3, max=s10
    """


DIRECTED: dict[str, tuple[Callable[[Frame], str], dict | None]] = {
    "int-alu": (_int_alu, None),
    "control": (_control, None),
    "matrix": (_matrix, None),
    "lutmv": (_lutmv, LUT_SHAPES),
    "vector": (_vector, None),
    "scalar": (_scalar, None),
    "dma": (_dma, None),
    "edges": (_edges, None),
    "maskedmm-negative-limit": (_negative_limit, None),
}
"""Directed program name -> (body text builder, LUT stream shapes of its frame). The
``known-<issue>`` ones reproduce :data:`~.core_programs.KNOWN_ISSUES` (``notes["known"]``)."""


def directed_programs(core: CoreConfig, seed: int = 0) -> list[Program]:
    """Every directed program (:data:`DIRECTED`), memory images from ``seed``."""
    out = []
    for name, (body, shapes) in DIRECTED.items():
        fr = frame(core, seed, shapes)
        notes = {"known": name[6:]} if name.startswith("known-") else {}
        prog = framed(fr, f"directed-{name}", "directed",
                      assemble(fmt(fr, body(fr)), source=name), notes=notes)
        if name == "edges":  # the last bytes of HBM are initialised too
            cap = core.b.hbm.capacity_bytes
            rng = np.random.default_rng(seed)
            data = (rng.standard_normal(max(128, core.tile_bytes // 2)) * 0.5).astype(np.float16)
            prog.segments = [*prog.segments, Segment("hbm", cap - data.nbytes, data)]
        out.append(prog)
    return out
