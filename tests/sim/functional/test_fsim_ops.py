"""Every opcode on the tiny core (d = 8, l = 4), compared bit for bit with the golden functions
called directly on the same inputs."""

from __future__ import annotations

import numpy as np
import pytest

from dfx.isa.golden import fp as gfp
from dfx.isa.golden import ops as gops
from dfx.isa.golden import tables as gtab
from dfx.sim.functional import IllegalInstructionError, MemoryAccessError, RegisterError

D, L = 8, 4


# ------------------------------------------------------------------------------------- vector


@pytest.mark.parametrize("op, fn", [("vadd", gfp.add16), ("vsub", gfp.sub16),
                                    ("vmul", gfp.mul16)])
def test_vector_binary(sim, rng, op, fn) -> None:
    n = 3
    a = sim.rand16(rng, (n, D), specials=True)
    b = sim.rand16(rng, (n, D), specials=True)
    app = sim.run(f"""
        load dst=vrf[r0+0], src=hbm[r0+0], n={n * D}
        load dst=vrf[r0+8], src=hbm[r0+0x100], n={n * D}
        {op} y=v[r0+16], a=v[r0+0], b=v[r0+8], n={n}
        halt""", [("hbm", 0, a), ("hbm", 0x100, b)])
    assert (sim.bits16(app.cards[0].vrf[16:16 + n]) == sim.bits16(fn(a, b))).all()


@pytest.mark.parametrize("op, fn", [("vadds", gfp.adds16), ("vsubs", gfp.subs16),
                                    ("vmuls", gfp.muls16)])
@pytest.mark.parametrize("s", [0.3, -1.5e-3, 70000.0, float("inf")])
def test_vector_scalar(sim, rng, op, fn, s) -> None:
    a = sim.rand16(rng, (2, D), specials=True)
    app = sim.run(f"""
        load dst=vrf[r0+0], src=hbm[r0+0], n={2 * D}
        sli sd=s5, imm={s!r}
        {op} y=v[r0+4], a=v[r0+0], s=s5, n=2
        halt""", [("hbm", 0, a)])
    want = fn(a, np.float32(s))
    assert (sim.bits16(app.cards[0].vrf[4:6]) == sim.bits16(want)).all()


@pytest.mark.parametrize("op", ["vexp", "vgelu", "vmov"])
def test_vector_unary(sim, rng, op) -> None:
    a = sim.rand16(rng, (3, D), scale=6.0, specials=True)
    app = sim.run(f"""
        load dst=vrf[r0+0], src=hbm[r0+0], n={3 * D}
        {op} y=v[r0+10], a=v[r0+0], n=3
        halt""", [("hbm", 0, a)])
    tabs = sim.core.tables
    want = {"vexp": lambda: gtab.exp16(a, tabs.exp), "vgelu": lambda: gtab.gelu16(a, tabs.gelu),
            "vmov": lambda: a}[op]()
    assert (sim.bits16(app.cards[0].vrf[10:13]) == sim.bits16(want)).all()


def test_vector_ops_on_overlapping_operands(sim, rng) -> None:
    """y may overlap a source in place (y = b) or start before it (y < a); the result is
    computed from the old values."""
    a = sim.rand16(rng, (4, D))
    app = sim.run(f"""
        load dst=vrf[r0+0], src=hbm[r0+0], n={4 * D}
        vadd y=v[r0+1], a=v[r0+2], b=v[r0+1], n=2
        halt""", [("hbm", 0, a)])
    want = gfp.add16(a[2:4], a[1:3])
    assert (sim.bits16(app.cards[0].vrf[1:3]) == sim.bits16(want)).all()
    assert (sim.bits16(app.cards[0].vrf[0]) == sim.bits16(a[0])).all()


def test_vector_result_ahead_inside_a_source_is_illegal(sim, rng) -> None:
    """y starting inside a source after its start would overwrite source vectors the unit
    has not read yet (isa/spec.yaml): refused."""
    a = sim.rand16(rng, (4, D))
    with pytest.raises(IllegalInstructionError, match="starts inside source a"):
        sim.run(f"""
            load dst=vrf[r0+0], src=hbm[r0+0], n={4 * D}
            vadd y=v[r0+1], a=v[r0+0], b=v[r0+1], n=3
            halt""", [("hbm", 0, a)])


def test_matrix_result_over_its_input_is_illegal(sim, rng) -> None:
    a = sim.rand16(rng, (2, D))
    with pytest.raises(IllegalInstructionError, match="writes y = v"):
        sim.run("""
            load dst=vrf[r0+0], src=hbm[r0+0], n=16
            mm y=v[r0+1], x=v[r0+0], w=hbm[r0+0], kt=2, nt=1
            halt""", [("hbm", 0, a)])


@pytest.mark.parametrize("op, mode", [("vacc", "sum"), ("vaccsq", "sumsq")])
def test_accumulate(sim, rng, op, mode) -> None:
    a = sim.rand16(rng, (5, D), scale=30.0)
    app = sim.run(f"""
        load dst=vrf[r0+0], src=hbm[r0+0], n={5 * D}
        {op} sd=s7, a=v[r0+0], n=5
        {op} sd=s8, a=v[r0+0], n=0
        halt""", [("hbm", 0, a)])
    srf = app.cards[0].srf
    assert sim.bits32(srf[7]) == sim.bits32(gops.accum(a.reshape(-1), 5 * D, D, mode))
    assert sim.bits32(srf[8]) == 0


def test_vmax_and_vargmax(sim, rng) -> None:
    a = sim.rand16(rng, (3, D))
    a[2, 5] = 100.0  # element 21: beyond the first 19
    a[1, 2] = 50.0  # element 10
    a[0, 3] = 50.0  # element 3: the first maximum among the first 19
    app = sim.run(f"""
        load dst=vrf[r0+0], src=hbm[r0+0], n={3 * D}
        vmax sd=s1, a=v[r0+0], n=3
        vargmax rd=r7, a=v[r0+0], n=19
        vargmax rd=r8, a=v[r0+0], n=24
        halt""", [("hbm", 0, a)])
    c = app.cards[0]
    assert sim.bits32(c.srf[1]) == sim.bits32(gops.reduce_max16(a.reshape(-1)))
    assert c.r[7] == gops.argmax16(a.reshape(-1), 19) == 3
    assert c.r[8] == 21


def test_vmax_of_zeros_and_nan(sim) -> None:
    a = np.array([[-0.0] * D, [0.0] + [-0.0] * (D - 1), [np.nan] + [1.0] * (D - 1)], np.float16)
    app = sim.run(f"""
        load dst=vrf[r0+0], src=hbm[r0+0], n={3 * D}
        vmax sd=s1, a=v[r0+0], n=1
        vmax sd=s2, a=v[r0+0], n=2
        vmax sd=s3, a=v[r0+0], n=3
        vargmax rd=r1, a=v[r0+0], n={3 * D}
        halt""", [("hbm", 0, a)])
    c = app.cards[0]
    assert sim.bits32(c.srf[1:4]).tolist() == [0x80000000, 0, gfp.NAN32_BITS]
    assert c.r[1] == 2 * D  # the first NaN


# ------------------------------------------------------------------------------------- scalar


def test_scalar_ops(sim) -> None:
    vals = [1.7, -3.25e-5, 0.0, 123456.0]
    app = sim.run("""
        sli sd=s0, imm=1.7
        sli sd=s1, imm=-3.25e-5
        sli sd=s2, imm=0.0
        sli sd=s3, imm=123456.0
        sli sd=s4, imm=f32:0x7f800001
        sadd sd=s10, sa=s0, sb=s1
        ssub sd=s11, sa=s1, sb=s3
        smul sd=s12, sa=s0, sb=s3
        srecip sd=s13, sa=s0
        srecip sd=s14, sa=s2
        srsqrt sd=s15, sa=s3
        srsqrt sd=s16, sa=s1
        halt""")
    s = app.cards[0].srf
    f = [np.float32(v) for v in vals]
    t = sim.core.tables
    assert sim.bits32(s[4]) == 0x7F800001  # sli keeps the exact bit pattern
    want = [gfp.add32(f[0], f[1]), gfp.sub32(f[1], f[3]), gfp.mul32(f[0], f[3]),
            gtab.recip32(f[0], t.recip), gtab.recip32(f[2], t.recip),
            gtab.rsqrt32(f[3], t.rsqrt), gtab.rsqrt32(f[1], t.rsqrt)]
    assert sim.bits32(s[10:17]).tolist() == [int(sim.bits32(w)) for w in want]


def test_scalar_register_beyond_the_core(sim) -> None:
    assert sim.core.buffers.srf_scalars == 64
    with pytest.raises(RegisterError, match=r"s64 is beyond the 64 scalar registers"):
        sim.run("sli sd=s64, imm=1.0\nhalt")
    with pytest.raises(RegisterError, match="s70"):
        sim.run("vacc sd=s70, a=v[r0+0], n=0\nhalt")


# ------------------------------------------------------------------------------------- matrix


def _tiles(sim, rng, k, n, specials=False):
    w = sim.rand16(rng, (k, n), specials=specials)
    return gops.tile_matrix(w, D, L)


@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("gelu", [False, True])
@pytest.mark.parametrize("kts", [0, 3])
def test_conv1d(sim, rng, batch, gelu, kts) -> None:
    kt, nt = 2, 3  # K = 16, N = 12: y is 2 vectors, the last half padding
    tiles = _tiles(sim, rng, kt * D, nt * L)
    x = sim.rand16(rng, (batch, kt * D), scale=2.0)
    bias = sim.rand16(rng, nt * L)
    stride = kts or kt
    tb = sim.core.tile_bytes
    # with kt_stride 3 the third tile of each row is never written: it must not be read
    segs = [("hbm", n * stride * tb, tiles[n]) for n in range(nt)]
    segs += [("hbm", 0x2000, x), ("ddr", 64, bias)]
    app = sim.run(f"""
        load dst=vrf[r0+0], src=hbm[r0+0x2000], n={batch * kt * D}
        li rd=r6, imm={nt}
        conv1d y=v[r0+32], x=v[r0+0], w=hbm[r0+0], b=ddr[r0+64], kt={kt}, nt=r6,
               kt_stride={kts}, batch={batch}{', gelu' if gelu else ''}
        halt""".replace(",\n               ", ", "), segs)
    h, _ = gops.matvec(tiles, x, bias=bias, gelu_table=sim.core.tables.gelu if gelu else None)
    y = app.cards[0].vrf[32:32 + batch * 2].reshape(batch, 2 * D)
    assert (sim.bits16(y[:, :nt * L]) == sim.bits16(h)).all()
    assert (sim.bits16(y[:, nt * L:]) == 0).all()  # +0 past nt*l
    st = app.stats()["cards"][0]
    assert st["matrix"] == {"tiles": kt * nt, "macs": batch * kt * nt * D * L}


@pytest.mark.parametrize("limit", [5, -1, 40])
def test_maskedmm(sim, rng, limit) -> None:
    kt, nt, batch = 1, 3, 2
    tiles = _tiles(sim, rng, kt * D, nt * L, specials=False)
    x = sim.rand16(rng, (batch, kt * D), scale=3.0)
    app = sim.run(f"""
        load dst=vrf[r0+0], src=hbm[r0+0x2000], n={batch * kt * D}
        li rd=r5, imm={limit}
        sli sd=s2, imm=0.35355339
        maskedmm y=v[r0+8], x=v[r0+0], w=hbm[r0+0], kt={kt}, nt={nt}, batch={batch}, limit=r5,
            scale=s2, max=s10
        halt""".replace(",\n            ", ", "), [("hbm", 0, tiles), ("hbm", 0x2000, x)])
    h, rmax = gops.matvec(tiles, x, scale=np.float32(0.35355339), mask_limit=limit)
    c = app.cards[0]
    y = c.vrf[8:8 + batch * 2].reshape(batch, 2 * D)
    assert (sim.bits16(y[:, :nt * L]) == sim.bits16(h)).all()
    assert (sim.bits16(y[:, nt * L:]) == gfp.NEG_MAX16_BITS).all()  # -65504 past nt*l
    assert (sim.bits32(c.srf[10:12]) == sim.bits32(rmax)).all()


def test_mm_with_specials_and_registers(sim, rng) -> None:
    kt, nt = 3, 2
    tiles = _tiles(sim, rng, kt * D, nt * L, specials=True)
    x = sim.rand16(rng, (1, kt * D), specials=True)
    app = sim.run(f"""
        load dst=vrf[r0+0], src=hbm[r0+0x2000], n={kt * D}
        li rd=r3, imm=2
        li rd=r4, imm=0x40
        li rd=r9, imm=1
        mm y=v[r9+9], x=v[r0+0], w=hbm[r4+0xfc0], kt=r3+1, nt=r3
        halt""", [("hbm", 0x1000, tiles), ("hbm", 0x2000, x)])
    h, _ = gops.matvec(tiles, x)
    assert (sim.bits16(app.cards[0].vrf[10]) == sim.bits16(h[0])).all()


def test_matrix_from_the_weight_buffer_after_copy(sim, rng) -> None:
    tiles = _tiles(sim, rng, 2 * D, 2 * L)
    x = sim.rand16(rng, (1, 2 * D))
    app = sim.run(f"""
        copy dst=wbuf[r0+0x80], src=hbm[r0+0], n={tiles.size}
        load dst=vrf[r0+0], src=ddr[r0+0], n={2 * D}
        mm y=v[r0+4], x=v[r0+0], w=wbuf[r0+0x80], kt=2, nt=2
        halt""", [("hbm", 0, tiles), ("ddr", 0, x)])
    h, _ = gops.matvec(tiles, x)
    assert (sim.bits16(app.cards[0].vrf[4]) == sim.bits16(h[0])).all()
    st = app.stats()["cards"][0]["memory"]
    assert st["wbuf"]["written_bytes"] == st["wbuf"]["read_bytes"] == tiles.nbytes


def test_cached_weights_follow_writes(sim, rng) -> None:
    """A matrix read twice is cached; a store into it must be seen by the next read."""
    tiles = _tiles(sim, rng, D, L)
    x = sim.rand16(rng, (1, D))
    new_row = sim.rand16(rng, D)
    app = sim.run(f"""
        load dst=vrf[r0+0], src=hbm[r0+0x1000], n={D}
        load dst=vrf[r0+1], src=hbm[r0+0x1100], n={D}
        loop count=3
            mm y=v[r0+2], x=v[r0+0], w=hbm[r0+0], kt=1, nt=1
        endloop
        vmov y=v[r0+3], a=v[r0+2], n=1
        store dst=hbm[r0+16], src=vrf[r0+1], n={D}
        loop count=3
            mm y=v[r0+4], x=v[r0+0], w=hbm[r0+0], kt=1, nt=1
        endloop
        halt""", [("hbm", 0, tiles), ("hbm", 0x1000, x), ("hbm", 0x1100, new_row)])
    c = app.cards[0]
    h1, _ = gops.matvec(tiles, x)
    t2 = tiles.copy()
    t2[0, 0, 1] = new_row  # lane 1 of tile (0, 0) is at byte 16
    h2, _ = gops.matvec(t2, x)
    assert (sim.bits16(c.vrf[3, :L]) == sim.bits16(h1[0])).all()
    assert (sim.bits16(c.vrf[4, :L]) == sim.bits16(h2[0])).all()
    # image memory is cached at once (2 hits); once written, a matrix is cached on its second
    # use without a write in between (1 hit)
    cache = app.stats()["tile_cache"]
    assert (cache["hits"], cache["misses"]) == (3, 3)
    assert app.stats()["cards"][0]["memory"]["hbm"]["read_bytes"] == 2 * 2 * D + 6 * 64


def test_matrix_counts_must_be_positive(sim) -> None:
    with pytest.raises(IllegalInstructionError, match="kt >= 1 and nt >= 1"):
        sim.run("mm y=v[r0+0], x=v[r0+0], w=hbm[r0+0], kt=1, nt=0\nhalt")
    with pytest.raises(IllegalInstructionError, match=r"kt = 0 \+ r3 = -1 is negative"):
        sim.run("li rd=r3, imm=-1\nmm y=v[r0+0], x=v[r0+0], w=hbm[r0+0], kt=r3, nt=1\nhalt")


# ----------------------------------------------------------------------------------------- dma


def test_load_partial_and_strided(sim, rng) -> None:
    src = sim.rand16(rng, 64)
    app = sim.run("""
        load dst=vrf[r0+0], src=hbm[r0+4], n=11
        load dst=vrf[r0+4], src=hbm[r0+0], n=20, stride=32
        halt""", [("hbm", 0, src)])
    v = app.cards[0].vrf
    flat = v[0:2].reshape(-1)
    assert (sim.bits16(flat[:11]) == sim.bits16(src[2:13])).all()
    assert (sim.bits16(flat[11:]) == 0).all()  # zero padded
    assert (sim.bits16(v[4]) == sim.bits16(src[0:8])).all()
    assert (sim.bits16(v[5]) == sim.bits16(src[16:24])).all()
    assert (sim.bits16(v[6, :4]) == sim.bits16(src[32:36])).all()
    assert (sim.bits16(v[6, 4:]) == 0).all()


def test_store_contiguous_strided_and_transposed(sim, rng) -> None:
    src = sim.rand16(rng, 3 * D)
    app = sim.run(f"""
        load dst=vrf[r0+0], src=hbm[r0+0], n={3 * D}
        store dst=ddr[r0+0x100], src=vrf[r0+0], n=11
        store dst=ddr[r0+0x200], src=vrf[r0+0], n=20, stride=48
        li rd=r2, imm=0x400
        store_t dst=ddr[r2+2], src=vrf[r0+0], n=8, stride=256
        halt""", [("hbm", 0, src)])
    ddr = app.cards[0].mem["ddr"]
    assert (ddr.read(0x100, 22).view(np.float16) == src[:11]).all()
    assert not ddr.is_written(0x116, 2)
    for k, (a, m) in enumerate([(0x200, 8), (0x230, 8), (0x260, 4)]):
        got = ddr.read(a, 2 * m).view(np.float16)
        assert (sim.bits16(got) == sim.bits16(src[8 * k:8 * k + m])).all()
    assert not ddr.is_written(0x210, 0x20)
    for c in range(8):  # element c -> dst + (c div l)*stride + (c mod l)*d*2
        a = 0x402 + (c // L) * 256 + (c % L) * D * 2
        assert sim.bits16(ddr.read(a, 2).view(np.float16)) == sim.bits16(src[c])
    assert not ddr.is_written(0x404, 2)


def test_copy(sim, rng) -> None:
    src = sim.rand16(rng, 16)
    app = sim.run("""
        copy dst=ddr[r0+6], src=hbm[r0+2], n=5
        copy dst=hbm[r0+4], src=hbm[r0+0], n=8
        halt""", [("hbm", 0, src)])
    c = app.cards[0]
    assert (c.mem["ddr"].read(6, 10).view(np.float16) == src[1:6]).all()
    # overlapping copy reads everything first (memmove)
    assert (sim.bits16(c.mem["hbm"].read(4, 16).view(np.float16)) == sim.bits16(src[:8])).all()


@pytest.mark.parametrize("text, what", [
    ("load dst=hbm[r0+0], src=hbm[r0+0], n=8", "operand dst is in hbm but must be in vrf"),
    ("load dst=vrf[r0+0], src=vrf[r0+0], n=8", "operand src is in vrf but must be in hbm or ddr"),
    ("store dst=vrf[r0+0], src=vrf[r0+0], n=8", "operand dst is in vrf"),
    ("store_t dst=hbm[r0+0], src=ddr[r0+0], n=8", "operand src is in ddr but must be in vrf"),
    ("copy dst=hbm[r0+0], src=vrf[r0+0], n=8", "operand src is in vrf"),
    ("mm y=v[r0+1], x=v[r0+0], w=vrf[r0+0], kt=1, nt=1", "operand w is in vrf"),
    ("conv1d y=v[r0+1], x=v[r0+0], w=hbm[r0+0], b=vrf[r0+0], kt=1, nt=1", "operand b is in vrf"),
    ("lw rd=r1, mem=wbuf[r0+0]", "operand mem is in wbuf but must be in hbm or ddr"),
    ("sw rs1=r1, mem=vrf[r0+0]", "operand mem is in vrf"),
])
def test_wrong_memory_space_is_illegal(sim, text, what) -> None:
    with pytest.raises(IllegalInstructionError, match=what):
        sim.run(f"load dst=vrf[r0+0], src=hbm[r0+0], n=8\n{text}\nhalt",
                [("hbm", 0, np.zeros(64, np.float16)), ("ddr", 0, np.zeros(64, np.float16))])


def test_alignment(sim) -> None:
    with pytest.raises(MemoryAccessError, match="0x3 of operand src is not 2-byte aligned"):
        sim.run("load dst=vrf[r0+0], src=hbm[r0+3], n=2\nhalt")
    with pytest.raises(MemoryAccessError, match="not 4-byte aligned"):
        sim.run("lw rd=r1, mem=ddr[r0+2]\nhalt", [("ddr", 0, np.zeros(8, np.uint8))])
    with pytest.raises(MemoryAccessError, match="stride 3 is not a multiple of 2"):
        sim.run("load dst=vrf[r0+0], src=hbm[r0+0], n=9, stride=3\nhalt")


# ------------------------------------------------------------------------------------- integer


def test_integer_ops(sim) -> None:
    big = (1 << 63) - 1
    app = sim.run(f"""
        li rd=r1, imm={big}
        addi rd=r2, rs1=r1, imm=1
        add rd=r3, rs1=r1, rs2=r1
        sub rd=r4, rs1=r2, rs2=r1
        muli rd=r5, rs1=r1, imm=3
        li rd=r6, imm=-8
        shri rd=r7, rs1=r6, imm=60
        shli rd=r8, rs1=r6, imm=61
        andi rd=r9, rs1=r6, imm=0x1f
        li rd=r0, imm=5
        add rd=r10, rs1=r0, rs2=r6
        shli rd=r11, rs1=r6, imm=0
        halt""")
    r = app.cards[0].r
    assert r[0] == 0
    assert r[2] == -(1 << 63)
    assert r[3] == -2
    assert r[4] == 1  # -2^63 - (2^63 - 1) wraps to 1
    assert r[5] == (3 * big) - (1 << 64) * 1
    assert r[7] == 0xF  # logical shift of the 64-bit pattern
    assert r[8] == 0
    assert r[9] == 0x18
    assert r[10] == -8 and r[11] == -8


def test_shift_amount_range(sim) -> None:
    with pytest.raises(IllegalInstructionError, match="shift amount 64 is outside 0..63"):
        sim.run("shli rd=r1, rs1=r1, imm=64\nhalt")


def test_lw_sw(sim) -> None:
    app = sim.run("""
        li rd=r1, imm=-1
        li rd=r2, imm=0x123456789
        sw rs1=r1, mem=ddr[r0+8]
        sw rs1=r2, mem=hbm[r0+0x40]
        lw rd=r3, mem=ddr[r0+8]
        lw rd=r4, mem=hbm[r0+0x40]
        halt""")
    c = app.cards[0]
    assert c.r[3] == 0xFFFFFFFF  # zero extended
    assert c.r[4] == 0x23456789  # low 32 bits
    assert c.mem["hbm"].read(0x40, 4).tobytes() == bytes([0x89, 0x67, 0x45, 0x23])


def test_statistics_by_op_and_class(sim, rng) -> None:
    app = sim.run("""
        li rd=r1, imm=2
        loop count=r1
            nop
        endloop
        sli sd=s1, imm=1.0
        halt""")
    st = app.stats()["cards"][0]
    assert st["by_op"] == {"li": 1, "loop": 1, "nop": 2, "endloop": 2, "sli": 1, "halt": 1}
    assert st["by_class"] == {"integer": 1, "control": 6, "scalar": 1}
    assert st["instructions"] == app.stats()["instructions"] == 8
