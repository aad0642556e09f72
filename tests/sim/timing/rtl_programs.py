"""Directed programs for comparing the timing model with the core RTL cycle for cycle
(tests/sim/timing/test_core_timing.py, bench/timing_vs_rtl.py): every rule of docs/timing.md
that a program can show — firing, redirects, lw/sw, the VPU port and unit, the MPU's weight
stream and collector, the DMA engine on every space, read after write on one AXI port, copies,
store_t, lutmv — each program small enough for Amaranth's simulator (tests/sim/timing/
core_harness.py: 16 KiB per HBM pseudo-channel, program at DDR 32 KiB).

Memory map (byte addresses, any core): HBM ``[0, 8K)`` matrix weights and LUT-GEMM streams,
``[8K, 16K)`` FP16 data and biases, ``[16K, 32K)`` scratch; DDR ``[0, 16K)`` data and words.
"""

from __future__ import annotations

import numpy as np

from dfx.isa.asm import assemble
from dfx.isa.config import CoreConfig
from dfx.isa.encoding import Instruction
from dfx.isa.golden.lutgemm import stream_bytes

HBM_DATA = 8192
HBM_SCRATCH = 16384
HBM_BYTES = 32768
DDR_BYTES = 16384


def images(seed: int = 1) -> dict[str, bytes]:
    """Memory images: small random FP16 values everywhere (timing never depends on them)."""
    rng = np.random.default_rng(seed)

    def fp16(nbytes: int) -> bytes:
        return (rng.standard_normal(nbytes // 2) * 0.25).astype(np.float16).tobytes()

    return {"hbm": fp16(HBM_BYTES), "ddr": fp16(DDR_BYTES)}


def directed(core: CoreConfig) -> dict[str, list[Instruction]]:
    """Name -> program (straight assembly), for ``core`` (sizes from its d, l, lutgemm)."""
    d, l = core.d, core.l  # noqa: E741
    tb = core.tile_bytes
    vb = 2 * d
    hd, hs = HBM_DATA, HBM_SCRATCH
    progs: dict[str, str] = {}
    # -- control ---------------------------------------------------------------------------
    progs["control_straight"] = "nop\nnop\nli rd=r1, imm=5\naddi rd=r2, rs1=r1, imm=1\nhalt"
    progs["control_loops"] = """li rd=r1, imm=0
li rd=r2, imm=3
loop count=r2+0, body=6
addi rd=r1, rs1=r1, imm=1
loop count=2, body=2
addi rd=r3, rs1=r1, imm=2
endloop
nop
endloop
loop count=0, body=2
nop
endloop
halt"""
    progs["control_branches"] = """li rd=r1, imm=4
li rd=r2, imm=0
again:
addi rd=r2, rs1=r2, imm=1
blt rs1=r2, rs2=r1, target=again
beq rs1=r2, rs2=r1, target=next
nop
next:
jmp target=@+1
bne rs1=r2, rs2=r1, target=@+2
halt"""
    # -- lw / sw -----------------------------------------------------------------------------
    progs["words_hbm"] = f"""li rd=r1, imm=7
sw rs1=r1, mem=hbm[r0+{hs}]
lw rd=r2, mem=hbm[r0+{hs}]
addi rd=r3, rs1=r2, imm=1
lw rd=r4, mem=hbm[r0+{hs + 64}]
lw rd=r5, mem=hbm[r0+{hs + 128}]
lw rd=r6, mem=hbm[r0+{hs + 192}]
lw rd=r7, mem=hbm[r0+{hs + 256}]
lw rd=r8, mem=hbm[r0+{hs + 320}]
sw rs1=r8, mem=hbm[r0+{hs + 4}]
halt"""
    progs["words_ddr"] = """li rd=r1, imm=9
lw rd=r2, mem=ddr[r0+64]
sw rs1=r1, mem=ddr[r0+128]
sw rs1=r2, mem=ddr[r0+132]
lw rd=r3, mem=ddr[r0+128]
add rd=r4, rs1=r3, rs2=r2
halt"""
    # -- VPU ---------------------------------------------------------------------------------
    progs["vpu_chain"] = """vadd y=v[r0+0], a=v[r0+8], b=v[r0+16], n=4
vmul y=v[r0+32], a=v[r0+0], b=v[r0+8], n=4
vexp y=v[r0+40], a=v[r0+32], n=4
vmov y=v[r0+48], a=v[r0+40], n=4
halt"""
    progs["vpu_independent"] = """vadd y=v[r0+100], a=v[r0+0], b=v[r0+8], n=6
vmov y=v[r0+110], a=v[r0+20], n=6
vgelu y=v[r0+120], a=v[r0+30], n=3
vsub y=v[r0+130], a=v[r0+0], b=v[r0+40], n=1
vmul y=v[r0+140], a=v[r0+50], b=v[r0+60], n=2
halt"""
    progs["vpu_reductions"] = """vexp y=v[r0+100], a=v[r0+0], n=5
vacc sd=s1, a=v[r0+100], n=5
vaccsq sd=s2, a=v[r0+100], n=5
vmax sd=s3, a=v[r0+0], n=7
vacc sd=s4, a=v[r0+0], n=0
srecip sd=s5, sa=s1
smul sd=s6, sa=s5, sb=s2
vmuls y=v[r0+200], a=v[r0+100], s=s6, n=5
srsqrt sd=s7, sa=s2
sadd sd=s8, sa=s7, sb=s3
ssub sd=s9, sa=s8, sb=s1
vsubs y=v[r0+210], a=v[r0+0], s=s9, n=3
halt"""
    progs["vpu_scalars"] = """sli sd=s1, imm=2.0
sli sd=s2, imm=0.5
vadds y=v[r0+100], a=v[r0+0], s=s1, n=3
smul sd=s3, sa=s1, sb=s2
vmuls y=v[r0+104], a=v[r0+100], s=s3, n=3
sli sd=s1, imm=3.0
vadds y=v[r0+108], a=v[r0+104], s=s1, n=3
halt"""
    progs["vpu_argmax"] = f"""vargmax rd=r1, a=v[r0+0], n={3 * d + 2}
addi rd=r2, rs1=r1, imm=1
vexp y=v[r0+100], a=v[r0+0], n=2
vargmax rd=r3, a=v[r0+100], n={d}
halt"""
    progs["vpu_waw_war"] = """vadd y=v[r0+100], a=v[r0+0], b=v[r0+8], n=4
vmov y=v[r0+102], a=v[r0+20], n=1
vexp y=v[r0+0], a=v[r0+30], n=2
vmov y=v[r0+8], a=v[r0+40], n=4
halt"""
    progs["vpu_long"] = """vexp y=v[r0+100], a=v[r0+0], n=40
vacc sd=s1, a=v[r0+100], n=40
vsubs y=v[r0+200], a=v[r0+100], s=s1, n=40
vaccsq sd=s2, a=v[r0+200], n=40
srsqrt sd=s3, sa=s2
vmuls y=v[r0+300], a=v[r0+200], s=s3, n=40
halt"""
    # -- MPU -----------------------------------------------------------------------------------
    progs["mpu_conv1d"] = f"""conv1d y=v[r0+100], x=v[r0+0], w=hbm[r0+0], b=hbm[r0+{hd}], kt=2, nt=4
store dst=hbm[r0+{hs}], src=vrf[r0+100], n={2 * d}
load dst=vrf[r0+200], src=hbm[r0+{hs}], n={2 * d}
halt"""
    progs["mpu_conv1d_gelu_chain"] = f"""vexp y=v[r0+0], a=v[r0+40], n=3
conv1d y=v[r0+100], x=v[r0+0], w=hbm[r0+0], b=hbm[r0+{hd}], kt=3, nt=6, gelu=1
vadd y=v[r0+200], a=v[r0+100], b=v[r0+100], n={-(-6 * l // d)}
halt"""
    progs["mpu_mm_blocks"] = """mm y=v[r0+100], x=v[r0+0], w=hbm[r0+0], kt=3, nt=5
mm y=v[r0+120], x=v[r0+0], w=hbm[r0+1024], kt=1, nt=1
mm y=v[r0+130], x=v[r0+10], w=hbm[r0+2048], kt=2, nt=3, kt_stride=4
halt"""
    progs["mpu_maskedmm"] = f"""li rd=r5, imm={l + 1}
sli sd=s1, imm=0.125
maskedmm y=v[r0+100], x=v[r0+0], w=hbm[r0+0], kt=2, nt=4, limit=r5, scale=s1, max=s2
vsubs y=v[r0+200], a=v[r0+100], s=s2, n=2
maskedmm y=v[r0+110], x=v[r0+0], w=hbm[r0+512], kt=1, nt=2, batch=2, limit=r5, scale=s1, max=s4
vmax sd=s6, a=v[r0+110], n=2
halt"""
    progs["mpu_batch_wbuf"] = f"""copy dst=wbuf[r0+0], src=hbm[r0+0], n={8 * tb // 2}
conv1d y=v[r0+100], x=v[r0+0], w=wbuf[r0+0], b=ddr[r0+0], kt=2, nt=4, batch=2
mm y=v[r0+120], x=v[r0+0], w=ddr[r0+{2 * tb}], kt=2, nt=2
halt"""
    progs["mpu_back_to_back"] = """mm y=v[r0+100], x=v[r0+0], w=hbm[r0+0], kt=4, nt=4
mm y=v[r0+110], x=v[r0+100], w=hbm[r0+1024], kt=1, nt=2
vexp y=v[r0+120], a=v[r0+110], n=1
mm y=v[r0+130], x=v[r0+4], w=hbm[r0+2048], kt=2, nt=8
halt"""
    # -- DMA -----------------------------------------------------------------------------------
    progs["mpu_x_slots"] = f"""store dst=hbm[r0+{hs}], src=vrf[r0+0], n={tb // 2}
mm y=v[r0+96], x=v[r0+82], w=hbm[r0+{hs}], kt=1, nt=1
mm y=v[r0+100], x=v[r0+0], w=hbm[r0+{tb}], kt=1, nt=4
mm y=v[r0+110], x=v[r0+100], w=hbm[r0+0], kt=2, nt=2, kt_stride=1
conv1d y=v[r0+120], x=v[r0+2], w=hbm[r0+{2 * tb}], b=ddr[r0+0], kt=2, nt=3, gelu=1
halt"""
    progs["dma_loads"] = f"""load dst=vrf[r0+0], src=ddr[r0+0], n={5 * d}
load dst=vrf[r0+10], src=hbm[r0+{hd}], n={3 * d + 3}
load dst=vrf[r0+20], src=hbm[r0+{hd + 6}], n={2 * d}
load dst=vrf[r0+30], src=ddr[r0+{vb + 2}], n={2 * d}, stride={3 * vb}
vadd y=v[r0+40], a=v[r0+0], b=v[r0+10], n=4
halt"""
    progs["dma_stores"] = f"""vexp y=v[r0+100], a=v[r0+0], n=4
store dst=hbm[r0+{hs}], src=vrf[r0+100], n={4 * d}
store dst=ddr[r0+1024], src=vrf[r0+100], n={3 * d}, stride={2 * vb}
store dst=hbm[r0+{hs + 1024 + 2}], src=vrf[r0+0], n={d + 1}
load dst=vrf[r0+200], src=hbm[r0+{hs}], n={2 * d}
load dst=vrf[r0+210], src=ddr[r0+1024], n={d}
halt"""
    progs["dma_store_t"] = f"""vexp y=v[r0+100], a=v[r0+0], n=2
store_t dst=hbm[r0+{hs}], src=vrf[r0+100], n={2 * d}, stride={tb}
store_t dst=ddr[r0+2048], src=vrf[r0+0], n={d + 2}, stride={2 * tb}
mm y=v[r0+120], x=v[r0+0], w=hbm[r0+{hs}], kt=1, nt=2
halt"""
    progs["dma_copies"] = f"""copy dst=hbm[r0+{hs}], src=hbm[r0+{hd}], n={4 * tb // 2}
copy dst=ddr[r0+4096], src=hbm[r0+{hd + 2}], n={d + 3}
copy dst=wbuf[r0+{tb}], src=ddr[r0+0], n={2 * tb // 2}
copy dst=hbm[r0+{hs + 2048}], src=wbuf[r0+{tb}], n={tb // 2}
copy dst=hbm[r0+{hs + 4 * tb}], src=hbm[r0+{hs}], n={2 * tb // 2}
load dst=vrf[r0+0], src=hbm[r0+{hs + 4 * tb}], n={d}
halt"""
    progs["dma_wbuf"] = f"""load dst=vrf[r0+100], src=hbm[r0+0], n={4 * d}
store dst=wbuf[r0+0], src=vrf[r0+100], n={4 * d}
load dst=vrf[r0+200], src=wbuf[r0+0], n={3 * d}
mm y=v[r0+220], x=v[r0+0], w=wbuf[r0+0], kt=1, nt=1
halt"""
    progs["dma_copy_overlap"] = f"""copy dst=hbm[r0+{hs + 2}], src=hbm[r0+{hs}], n={tb // 2 + 5}
copy dst=hbm[r0+{hs + 4 * tb}], src=hbm[r0+{hs + 3 * tb}], n={3 * tb // 2}
copy dst=hbm[r0+{hs + 8 * tb}], src=hbm[r0+{hs + 8 * tb + 6}], n={tb // 2}
copy dst=wbuf[r0+2], src=hbm[r0+{hd}], n={d + 3}
copy dst=ddr[r0+{4096 + 2}], src=wbuf[r0+2], n={d + 3}
halt"""
    progs["dma_write_order"] = f"""store dst=ddr[r0+8192], src=vrf[r0+0], n={2 * d}
copy dst=ddr[r0+8448], src=ddr[r0+8194], n=1
store dst=hbm[r0+{hs}], src=vrf[r0+4], n={d}
lw rd=r1, mem=hbm[r0+{hs + 4}]
addi rd=r2, rs1=r1, imm=1
load dst=vrf[r0+40], src=hbm[r0+{hs}], n={d}
halt"""
    progs["mixed_layer"] = f"""li rd=r9, imm=3
load dst=vrf[r0+0], src=ddr[r0+0], n={4 * d}
vacc sd=s1, a=v[r0+0], n=4
vaccsq sd=s2, a=v[r0+0], n=4
sli sd=s3, imm=0.25
smul sd=s4, sa=s1, sb=s3
vsubs y=v[r0+10], a=v[r0+0], s=s4, n=4
srsqrt sd=s5, sa=s2
vmuls y=v[r0+20], a=v[r0+10], s=s5, n=4
conv1d y=v[r0+30], x=v[r0+20], w=hbm[r0+0], b=hbm[r0+{hd}], kt=4, nt=6
store_t dst=hbm[r0+{hs}], src=vrf[r0+30], n={d}, stride={tb}
store dst=hbm[r0+{hs + 2048}], src=vrf[r0+32], n={d}
maskedmm y=v[r0+40], x=v[r0+30], w=hbm[r0+{hs}], kt=1, nt=2, limit=r9, scale=s3, max=s6
vsubs y=v[r0+50], a=v[r0+40], s=s6, n=1
vexp y=v[r0+50], a=v[r0+50], n=1
vacc sd=s7, a=v[r0+50], n=1
srecip sd=s8, sa=s7
vmuls y=v[r0+51], a=v[r0+50], s=s8, n=1
mm y=v[r0+60], x=v[r0+51], w=hbm[r0+{hs + 2048}], kt=1, nt={d // l}
vadd y=v[r0+70], a=v[r0+60], b=v[r0+0], n=1
halt"""
    # -- LUT-GEMM -------------------------------------------------------------------------------
    if core.lutgemm is not None:
        s = core.lutgemm.slice
        gs = max(1, d // s)
        progs["lut_basic"] = f"""vexp y=v[r0+0], a=v[r0+40], n=2
lutmv y=v[r0+100], x=v[r0+0], w=hbm[r0+0], n={2 * d}, ng=2, gs={gs}, q=2
vadd y=v[r0+110], a=v[r0+100], b=v[r0+100], n=2
halt"""
        sb = stream_bytes(3 * d, 2, gs, 3, s)
        w2 = -(-sb // 32) * 32
        lut1 = (f"lutmv y=v[r0+100], x=v[r0+0], w=hbm[r0+0], b=hbm[r0+{hd}], n={3 * d}, "
                f"ng=2, gs={gs}, q=3, bias=1, gelu=1")
        progs["lut_bias_batch"] = lut1 + f"""
lutmv y=v[r0+120], x=v[r0+0], w=hbm[r0+{w2}], n={d}, ng=1, gs={gs}, q=1, batch=2
lutmv y=v[r0+130], x=v[r0+100], w=hbm[r0+{w2}], n={d}, ng=1, gs={gs}, q=1
halt"""
        progs["lut_gear_rows"] = f"""lutmv y=v[r0+100], x=v[r0+0], w=hbm[r0+0], b=hbm[r0+{hd}], \
n=2, ng=2, gs=1, q=3, batch=2, bias=1
lw rd=r1, mem=hbm[r0+{hs}]
addi rd=r2, rs1=r1, imm=1
halt"""
    return {name: assemble(text) for name, text in progs.items()}
