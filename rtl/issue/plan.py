"""``Plan``: what an instruction needs at issue, computed from its resolved operands.

For the instruction at the head of issue (a ``Resolved`` payload, :func:`resolved_layout`) the
plan says, combinationally: which unit executes it (:class:`Unit`), its VRF source ranges and
destination range (the scoreboard's inputs), the scalar registers it reads at issue and the
ones it will write (pending bits), and whether its operands break an execution rule of
``isa/spec.yaml`` (a :class:`~dfx.rtl.core.faults.Fault`, in the order the functional
simulator checks them, so both report the same error). Control and integer instructions never
get here (the controller executes them); a count of 0 that "does nothing" plans no unit.

The checks saturate their 64-bit operands at the bound they test (:mod:`.saturate`): the
verdicts, and so the faults, are those of exact arithmetic, without 64 x 64-bit products.
"""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, enum, wiring
from amaranth.lib.wiring import In, Out

from dfx.isa.spec import load_spec
from dfx.rtl.core.faults import Fault
from dfx.rtl.isa_layouts import FORMAT_OF, LAYOUTS, RESOLVED_MAX, WORD_BITS, Opcode

from .saturate import sat, sat_keep_low, sat_mul

__all__ = ["Plan", "Unit", "resolved_layout", "RESOLVED_SLOTS", "SPACE"]

RESOLVED_SLOTS = RESOLVED_MAX
"""Resolved operand values per instruction (the ``mat`` and ``lut`` formats have six)."""

SPACE = {name: s.code for name, s in load_spec().spaces.items()}
"""Memory-space codes of the ``space`` fields (hbm, ddr, vrf, wbuf)."""


class Unit(enum.Enum, shape=3):
    """The unit an instruction is dispatched to (``NONE``: nothing to execute)."""

    NONE = 0
    MPU = 1
    LUT = 2
    VPU = 3
    DMA = 4
    TX = 5
    RX = 6
    SLI = 7  # written into the scalar register file at issue


def resolved_layout(core: Any) -> data.StructLayout:
    """The controller's hand-over to issue (docs/core.md "Controller -> issue")."""
    return data.StructLayout({
        "op": Opcode,
        "pc": unsigned(max(1, (core.buffers.instruction_words - 1).bit_length())),
        "word": unsigned(WORD_BITS),
        "val": data.ArrayLayout(signed(64), RESOLVED_SLOTS),
        "limit": signed(64),
    })


def _ceil_div(x: Any, k: int) -> Any:
    """ceil(x / k) for a power of two k."""
    s = k.bit_length() - 1
    return (x + (k - 1)) >> s


class Plan(wiring.Component):
    """Combinational issue plan of one ``Resolved`` instruction (module doc).

    In: ``ins`` (the payload), ``cards`` (appliance size: send/recv need >= 2).
    Out: ``unit``; ``src0``/``src1``/``dst`` (``_en``, ``_lo``, ``_n``: VRF ranges);
    ``sread0``/``sread1`` (``_en``, ``_idx``: scalar reads); ``sclaim`` (``_en``, ``_lo``,
    ``_n``: scalar writes); ``fault``.
    """

    def __init__(self, core: Any):
        self._core = core
        b = core.b
        self._sizes = {
            SPACE["hbm"]: b.hbm.pseudo_channels * b.hbm.pc_capacity_bytes,
            SPACE["ddr"]: b.ddr.channels * b.ddr.channel_capacity_bytes,
            SPACE["wbuf"]: core.buffers.wbuf_tiles * core.tile_bytes,
        }
        v = core.buffers.vrf_vectors
        n_srf = core.buffers.srf_scalars
        va = range(v + 1)
        super().__init__({
            "ins": In(resolved_layout(core)),
            "cards": In(8),
            "unit": Out(Unit),
            "src0_en": Out(1), "src0_lo": Out(va), "src0_n": Out(va),
            "src1_en": Out(1), "src1_lo": Out(va), "src1_n": Out(va),
            "dst_en": Out(1), "dst_lo": Out(va), "dst_n": Out(va),
            "sread0_en": Out(1), "sread0_idx": Out(range(max(n_srf, 256))),
            "sread1_en": Out(1), "sread1_idx": Out(range(max(n_srf, 256))),
            "sclaim_en": Out(1), "sclaim_lo": Out(range(256)), "sclaim_n": Out(range(257)),
            "fault": Out(Fault),
        })

    def elaborate(self, platform: Any) -> Module:  # noqa: C901 - one branch per class
        m = Module()
        core = self._core
        d, l = core.d, core.l  # noqa: E741
        vrf = core.buffers.vrf_vectors
        n_srf = core.buffers.srf_scalars
        tile = core.tile_bytes
        op, word, val = self.ins.op, self.ins.word, self.ins.val
        fault = Signal(Fault, name="plan_fault")
        m.d.comb += self.fault.eq(fault)

        # The first failing check wins: checks are listed in the simulator's order. Each one
        # becomes a flag assigned in its opcode's Case (0 elsewhere), then a priority chain.
        checks: list[tuple[Signal, Fault]] = []

        def fail(cond: Any, code: Fault) -> None:
            flag = Signal(name=f"chk{len(checks)}_{code.name.lower()}")
            m.d.comb += flag.eq(cond)
            checks.append((flag, code))

        vcap = vrf + 1  # a VRF count or address >= vcap fails every VRF check
        mcap = max(self._sizes.values()) + 1  # the same for byte counts and addresses

        def vs(x: Any) -> Any:
            """x saturated at the VRF's bound."""
            return sat(x, vcap)

        def vrange(lo: Any, n: Any) -> Any:
            """A VRF range [lo, lo + n) outside the VRF (lo signed 64-bit, n >= 0)."""
            return (lo < 0) | (vs(lo) + vs(n) > vrf)

        def overlap(y: Any, ny: Any, x: Any, nx: Any) -> Any:
            """Result range [y, y + ny) overlaps source [x, x + nx) (checked after both
            ranges, which are then inside the VRF: saturating changes nothing)."""
            y, ny, x, nx = vs(y), vs(ny), vs(x), vs(nx)
            return (y < x + nx) & (x < y + ny)

        def ahead(y: Any, a: Any, n: Any) -> Any:
            """An element-wise result starting inside its source after its start."""
            y, a, n = vs(y), vs(a), vs(n)
            return (a < y) & (y < a + n)

        def mem(space: Any, addr: Any, nbytes: Any, align: int, allowed: tuple[str, ...],
                moves: Any = 1) -> None:
            """An operand in memory: its space, alignment and bounds (in that order; the
            bounds only when the instruction ``moves`` data: a DMA of 0 elements does not)."""
            ok = Cat(*(space == SPACE[s] for s in allowed)).any()
            fail(~ok, Fault.SPACE)
            fail(ok & (addr[: max(1, align.bit_length() - 1)] != 0) if align > 1 else 0,
                 Fault.ALIGN)
            size = Signal(64)
            with m.Switch(space):
                for code, sz in self._sizes.items():
                    with m.Case(code):
                        m.d.comb += size.eq(sz)
            fail(ok & moves & ((addr < 0) | (sat(addr, mcap) + sat(nbytes, mcap) > size)),
                 Fault.MEM_RANGE)

        def sreg(idx: Any) -> None:
            fail(idx >= n_srf, Fault.SREG)

        def src(k: int, lo: Any, n: Any) -> None:
            m.d.comb += [getattr(self, f"src{k}_en").eq(n != 0),
                         getattr(self, f"src{k}_lo").eq(lo), getattr(self, f"src{k}_n").eq(n)]

        def dst(lo: Any, n: Any) -> None:
            m.d.comb += [self.dst_en.eq(n != 0), self.dst_lo.eq(lo), self.dst_n.eq(n)]

        def sread(k: int, idx: Any) -> None:
            m.d.comb += [getattr(self, f"sread{k}_en").eq(1),
                         getattr(self, f"sread{k}_idx").eq(idx)]

        def sclaim(lo: Any, n: Any) -> None:
            m.d.comb += [self.sclaim_en.eq(1), self.sclaim_lo.eq(lo), self.sclaim_n.eq(n)]

        # a negative count (imm + r{reg}) is the first error of every instruction
        counts = {"mat": (4, 5), "lut": (4, 5), "vec": (3,), "dma": (2,), "route": (1,)}
        with m.Switch(op):
            for fmt, slots in counts.items():
                ops = [o for o in Opcode if FORMAT_OF[o] == fmt]
                with m.Case(*ops):
                    fail(Cat(*(val[i] < 0 for i in slots)).any(), Fault.COUNT)

        mat = data.View(LAYOUTS["mat"], word)
        lut = data.View(LAYOUTS["lut"], word)
        vec = data.View(LAYOUTS["vec"], word)
        scal = data.View(LAYOUTS["scal"], word)
        dma = data.View(LAYOUTS["dma"], word)

        with m.Switch(op):
            # ---- matrix: y, x, w, b, kt, nt --------------------------------------------------
            with m.Case(Opcode.CONV1D, Opcode.MASKEDMM, Opcode.MM):
                y, x, w, bb, kt, nt = (val[i] for i in range(6))
                batch = Mux(mat.batch == 0, 1, mat.batch)
                fail((kt < 1) | (nt < 1), Fault.COUNT)
                # past the checks above kt, nt >= 1 and the VRF checks bound them by vcap * d
                ktc, ntc = sat(kt, vcap * d), sat(nt, vcap * d)
                yv = _ceil_div(ntc * l, d)
                xn, yn = sat_mul(batch, vs(ktc), vcap), sat_mul(batch, vs(yv), vcap)
                fail(vrange(x, xn), Fault.VRF_RANGE)
                fail(vrange(y, yn), Fault.VRF_RANGE)
                fail(overlap(y, yn, x, xn), Fault.OVERLAP)
                with m.If(op == Opcode.CONV1D):
                    mem(mat.b_space, bb, 2 * ntc * l, 2, ("hbm", "ddr", "wbuf"))
                with m.If(op == Opcode.MASKEDMM):
                    sreg(mat.scale)
                    sreg(mat.max + batch - 1)
                    sread(0, mat.scale)
                    sclaim(mat.max, batch)
                kts = Mux(mat.kt_stride == 0, ktc, mat.kt_stride)
                ntm1 = sat(Mux(ntc > 0, ntc - 1, 0), mcap)
                tiles = sat(sat_mul(ntm1, sat(kts, mcap), mcap) + ktc, mcap)
                mem(mat.w_space, w, tiles * tile, tile, ("hbm", "ddr", "wbuf"))
                src(0, x, xn)
                dst(y, yn)
                m.d.comb += self.unit.eq(Unit.MPU)
            # ---- LUT-GEMM: y, x, w, b, n, ng -------------------------------------------------
            with m.Case(Opcode.LUTMV):
                lc = core.lutgemm
                y, x, w, bb, n, ng = (val[i] for i in range(6))
                if lc is None:
                    fail(1, Fault.UNDEFINED_OPCODE)
                else:
                    s = lc.slice
                    gs, q = lut.gs, lut.q
                    batch = Mux(lut.batch == 0, 1, lut.batch)
                    fail((q < 1) | (q > lc.max_q), Fault.COUNT)
                    fail((ng < 1) | (gs < 1) | (gs * s > lc.max_group), Fault.COUNT)
                    fail((n < 1) | (n > lc.max_rows), Fault.COUNT)
                    # past the checks above 1 <= n <= max_rows, gs * s <= max_group; the VRF
                    # checks bound ng by vcap * d
                    gsc = sat(gs, lc.max_group + 1)
                    ngc = sat(ng, vcap * d)
                    nc = sat(n, lc.max_rows + 1)
                    kv = _ceil_div(sat_mul(ngc, sat(gsc * s, vcap * d), vcap * d), d)
                    yv = _ceil_div(nc, d)
                    xn, yn = sat_mul(batch, vs(kv), vcap), sat_mul(batch, vs(yv), vcap)
                    fail(vrange(x, xn), Fault.VRF_RANGE)
                    fail(vrange(y, yn), Fault.VRF_RANGE)
                    fail(overlap(y, yn, x, xn), Fault.OVERLAP)
                    raw = (gsc * q * nc * s) // 8 + nc * (q + 1) * 2
                    section = ((raw + 31) >> 5) << 5
                    mem(lut.w_space, w, sat_mul(sat(ngc, mcap), sat(section, mcap), mcap), 32,
                        ("hbm", "ddr", "wbuf"))
                    with m.If(lut.bias):
                        mem(lut.b_space, bb, 2 * nc, 2, ("hbm", "ddr", "wbuf"))
                    src(0, x, xn)
                    dst(y, yn)
                    m.d.comb += self.unit.eq(Unit.LUT)
            # ---- vector: y, a, b, n ----------------------------------------------------------
            with m.Case(Opcode.VADD, Opcode.VSUB, Opcode.VMUL):
                y, a, b, n = (val[i] for i in range(4))
                with m.If(n != 0):
                    fail(vrange(a, n), Fault.VRF_RANGE)
                    fail(vrange(b, n), Fault.VRF_RANGE)
                    fail(vrange(y, n), Fault.VRF_RANGE)
                    fail(ahead(y, a, n) | ahead(y, b, n), Fault.OVERLAP)
                    src(0, a, n)
                    src(1, b, n)
                    dst(y, n)
                    m.d.comb += self.unit.eq(Unit.VPU)
            with m.Case(Opcode.VADDS, Opcode.VSUBS, Opcode.VMULS):
                y, a, _, n = (val[i] for i in range(4))
                sreg(vec.s)
                sread(0, vec.s)
                with m.If(n != 0):
                    fail(vrange(a, n), Fault.VRF_RANGE)
                    fail(vrange(y, n), Fault.VRF_RANGE)
                    fail(ahead(y, a, n), Fault.OVERLAP)
                    src(0, a, n)
                    dst(y, n)
                    m.d.comb += self.unit.eq(Unit.VPU)
            with m.Case(Opcode.VEXP, Opcode.VGELU, Opcode.VMOV):
                y, a, _, n = (val[i] for i in range(4))
                with m.If(n != 0):
                    fail(vrange(a, n), Fault.VRF_RANGE)
                    fail(vrange(y, n), Fault.VRF_RANGE)
                    fail(ahead(y, a, n), Fault.OVERLAP)
                    src(0, a, n)
                    dst(y, n)
                    m.d.comb += self.unit.eq(Unit.VPU)
            with m.Case(Opcode.VACC, Opcode.VACCSQ, Opcode.VMAX):
                _, a, _, n = (val[i] for i in range(4))
                sreg(vec.sd)
                with m.If(op == Opcode.VMAX):
                    fail(n == 0, Fault.COUNT)
                fail((n != 0) & vrange(a, n), Fault.VRF_RANGE)
                src(0, a, n)
                sclaim(vec.sd, 1)
                m.d.comb += self.unit.eq(Unit.VPU)
            with m.Case(Opcode.VARGMAX):
                _, a, _, n = (val[i] for i in range(4))
                fail(n == 0, Fault.COUNT)
                nv = _ceil_div(n, d)
                fail(vrange(a, nv), Fault.VRF_RANGE)
                src(0, a, nv)
                m.d.comb += self.unit.eq(Unit.VPU)
            # ---- scalar ----------------------------------------------------------------------
            with m.Case(Opcode.SLI):
                sreg(scal.sd)
                sclaim(scal.sd, 1)
                m.d.comb += self.unit.eq(Unit.SLI)
            with m.Case(Opcode.SADD, Opcode.SSUB, Opcode.SMUL):
                sreg(scal.sd)
                sreg(scal.sa)
                sreg(scal.sb)
                sread(0, scal.sa)
                sread(1, scal.sb)
                sclaim(scal.sd, 1)
                m.d.comb += self.unit.eq(Unit.VPU)
            with m.Case(Opcode.SRECIP, Opcode.SRSQRT):
                sreg(scal.sd)
                sreg(scal.sa)
                sread(0, scal.sa)
                sclaim(scal.sd, 1)
                m.d.comb += self.unit.eq(Unit.VPU)
            # ---- dma: dst, src, n ------------------------------------------------------------
            # a DMA's memory range is checked before its VRF range, so n is saturated where
            # any stride >= 1 (and stride 0) takes the extent past every space; its residue
            # modulo d and l (the last vector's elements, store_t's last column) is kept
            low = max(d, l).bit_length() - 1
            ncap = max(mcap * max(d, l), (vcap + 1) * d).bit_length()
            with m.Case(Opcode.LOAD):
                dsta, srca, n = val[0], val[1], val[2]
                fail(dma.dst_space != SPACE["vrf"], Fault.SPACE)
                stride = dma.stride
                nc = sat_keep_low(n, ncap, low)
                ext = self._strided_extent(m, nc, stride, sat(stride, mcap), mcap, d)
                mem(dma.src_space, srca, ext, 2, ("hbm", "ddr", "wbuf"), n != 0)
                fail(stride[0], Fault.ALIGN)
                with m.If(n != 0):
                    nv = _ceil_div(nc, d)
                    fail(vrange(dsta, nv), Fault.VRF_RANGE)
                    dst(dsta, nv)
                    m.d.comb += self.unit.eq(Unit.DMA)
            with m.Case(Opcode.STORE, Opcode.STORE_T):
                dsta, srca, n = val[0], val[1], val[2]
                fail(dma.src_space != SPACE["vrf"], Fault.SPACE)
                stride = dma.stride
                stc = sat(stride, mcap)
                nc = sat_keep_low(n, ncap, low)
                ext = Signal(64)
                with m.If(op == Opcode.STORE):
                    m.d.comb += ext.eq(self._strided_extent(m, nc, stride, stc, mcap, d))
                with m.Else():
                    rows, col = (nc - 1) >> (l.bit_length() - 1), (nc - 1) & (l - 1)
                    last = sat_mul(sat(rows, mcap), stc, mcap) + col * (2 * d)
                    prev = Mux(rows > 0, sat_mul(sat(rows - 1, mcap), stc, mcap)
                               + (l - 1) * (2 * d), 0)
                    m.d.comb += ext.eq(Mux(n == 0, 0, Mux(last > prev, last, prev) + 2))
                mem(dma.dst_space, dsta, ext, 2, ("hbm", "ddr", "wbuf"), n != 0)
                fail(stride[0], Fault.ALIGN)
                with m.If(n != 0):
                    nv = _ceil_div(nc, d)
                    fail(vrange(srca, nv), Fault.VRF_RANGE)
                    src(0, srca, nv)
                    m.d.comb += self.unit.eq(Unit.DMA)
            with m.Case(Opcode.COPY):
                dsta, srca, n = val[0], val[1], val[2]
                mem(dma.src_space, srca, 2 * n, 2, ("hbm", "ddr", "wbuf"), n != 0)
                mem(dma.dst_space, dsta, 2 * n, 2, ("hbm", "ddr", "wbuf"), n != 0)
                with m.If(n != 0):
                    m.d.comb += self.unit.eq(Unit.DMA)
            # ---- router: v, n ----------------------------------------------------------------
            with m.Case(Opcode.SEND, Opcode.RECV):
                v, n = val[0], val[1]
                fail(self.cards < 2, Fault.RING)
                with m.If(n != 0):
                    fail(vrange(v, n), Fault.VRF_RANGE)
                    with m.If(op == Opcode.SEND):
                        src(0, v, n)
                        m.d.comb += self.unit.eq(Unit.TX)
                    with m.Else():
                        dst(v, n)
                        m.d.comb += self.unit.eq(Unit.RX)
            with m.Default():
                fail(1, Fault.UNDEFINED_OPCODE)  # the controller keeps these

        for cond, code in reversed(checks):  # the earliest check listed wins
            with m.If(cond):
                m.d.comb += fault.eq(code)
        return m

    @staticmethod
    def _strided_extent(m: Module, n: Any, stride: Any, stc: Any, mcap: int, d: int) -> Any:
        """Bytes from the first to past the last element of a (strided) load/store of ``n``
        elements (saturated), ``stc`` the stride saturated at ``mcap``."""
        full, rem = n >> (d.bit_length() - 1), n & (d - 1)
        ext = Signal(64)
        a = Mux(full > 0, sat_mul(sat(full - 1, mcap), stc, mcap) + 2 * d, 0)
        b = Mux(rem > 0, sat_mul(sat(full, mcap), stc, mcap) + 2 * rem, 0)
        m.d.comb += ext.eq(Mux(stride == 0, 2 * n, Mux(a > b, a, b)))
        return ext

