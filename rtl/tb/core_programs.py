"""Programs of the whole-core regression (docs/verification.md "Core regression"): the memory
map they share (:class:`Arena`), the :class:`Program` record, the memory images, prologue and
epilogue. The random generator is :mod:`.core_random`, the directed and fault programs
:mod:`.core_directed`; everything is built from ``isa/spec.yaml`` (through
:class:`~dfx.isa.encoding.Instruction` and the assembler) and the core configuration.

Every program has the same frame, so that the final state can be compared bit for bit:

* **memory images** initialise every byte of the arena (HBM and DDR regions of random FP16
  data, matrix weights, packed LUT-GEMM streams (:func:`dfx.isa.golden.lutgemm.pack`), scratch,
  integer words), so no read of a program is of uninitialised memory (the simulator would
  refuse it; the RTL cannot tell);
* a **prologue** fills the weight-buffer window (weights and a LUT stream; the testbench cannot
  load the on-chip buffer) and the VRF window, sets scalars and integer registers;
* an **epilogue** stores r1..r31 (both 32-bit halves, ``sw``) and copies the weight-buffer
  window to DDR (:attr:`Arena.dump_regs`, :attr:`Arena.dump_wbuf`), then halts.

The comparison (:mod:`.core_check`) reads the whole arena, the VRF window and the SRF.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dfx.isa.config import CoreConfig
from dfx.isa.container import Binary, CardImage, Segment
from dfx.isa.encoding import F32, Count, Instruction, MemAddr
from dfx.isa.golden import lutgemm as glut

__all__ = ["KNOWN_ISSUES", "TABLE", "Arena", "Frame", "LutStream", "Program", "arena", "epilogue",
           "frame", "framed", "memory_images", "prologue"]

GENERAL = tuple(range(1, 8))  # registers with random values (set by the prologue)
NUM_REGS = 32
#: Words at the start of both ``ints`` regions (random programs never write them): values a
#: ``lw`` fetches as an address base or a count, used at once (a pending register).
TABLE = (0, 1, 2, 3, 4, 5, 6, 8, 16, 32, 64, 96, 128, 256, 512, 1024)

#: Known deviations of the RTL from the functional simulator: name -> what. Random programs
#: steer clear of them by default (``avoid``); each has reproducers (``notes["known"]``:
#: ``directed-known-<name>``, fault programs) that fail until the RTL is fixed.
KNOWN_ISSUES: dict[str, str] = {}


@dataclass(frozen=True)
class Arena:
    """The memory map of every regression program (byte addresses; ``vrf`` in vectors).

    Regions are ``(lo, hi)``. HBM: ``data`` (FP16), ``weights`` (FP16 tiles), ``lut`` (packed
    streams), ``scratch`` (FP16, written by stores and copies), ``ints`` (32-bit words, ``sw``).
    DDR: the same kinds, then ``dump_regs`` (r0..r31 as 64-bit words) and ``dump_wbuf``.
    ``wbuf``: the weight-buffer window (``wbuf_lut`` at its top holds a LUT stream copy).
    """

    d: int
    l: int  # noqa: E741
    tile: int
    vrf: int
    srf: int
    hbm: dict[str, tuple[int, int]]
    ddr: dict[str, tuple[int, int]]
    wbuf: int
    wbuf_lut: int
    hbm_bytes: int
    ddr_bytes: int

    def region(self, space: str, name: str) -> tuple[int, int]:
        """``(lo, hi)`` of a region; ``ints_rw``: the ``ints`` words after :data:`TABLE`,
        ``table``: :data:`TABLE`'s words."""
        if space == "wbuf":
            return (0, self.wbuf_lut) if name == "scratch" else (self.wbuf_lut, self.wbuf)
        regions = self.hbm if space == "hbm" else self.ddr
        if name in ("ints_rw", "table"):
            lo, hi = regions["ints"]
            return (lo + 4 * len(TABLE), hi) if name == "ints_rw" else (lo, lo + 4 * len(TABLE))
        return regions[name]

    @property
    def dump_regs(self) -> int:
        return self.ddr["dump_regs"][0]

    @property
    def dump_wbuf(self) -> int:
        return self.ddr["dump_wbuf"][0]

    def where(self, space: str, addr: int) -> str:
        """``space name+offset`` of a byte address (for mismatch reports)."""
        regions = self.hbm if space == "hbm" else self.ddr
        for name, (lo, hi) in regions.items():
            if lo <= addr < hi:
                if name == "dump_regs":
                    return f"r{(addr - lo) // 8} (dumped, byte {(addr - lo) % 8})"
                if name == "dump_wbuf":
                    return f"wbuf[{addr - lo:#x}] (dumped)"
                return f"{space} {name}+{addr - lo:#x}"
        return f"{space}[{addr:#x}]"


def _layout(sizes: list[tuple[str, int]], align: int) -> tuple[dict[str, tuple[int, int]], int]:
    out, at = {}, 0
    for name, size in sizes:
        at = -(-at // align) * align
        out[name] = (at, at + size)
        at += size
    return out, -(-at // align) * align


def arena(core: CoreConfig) -> Arena:
    """The regression's memory map for ``core`` (sizes from d, l and the buffers)."""
    d, l = core.d, core.l  # noqa: E741
    tile = core.tile_bytes
    vrf = min(128, core.buffers.vrf_vectors)
    wbuf = min(core.buffers.wbuf_tiles, 64) * tile
    data = max(8192, 2 * vrf * d)
    lut = 8192
    hbm, hbm_bytes = _layout([("data", data), ("weights", max(64 * tile, wbuf)), ("lut", lut),
                              ("scratch", max(8192, 24 * tile)), ("ints", 512)], max(tile, 64))
    ddr, ddr_bytes = _layout([("data", 4096), ("weights", 32 * tile), ("lut", lut // 2),
                              ("scratch", max(4096, 24 * tile)), ("ints", 512),
                              ("dump_regs", 8 * NUM_REGS), ("dump_wbuf", wbuf)], max(tile, 64))
    wbuf_lut = wbuf - min(wbuf // 2, 1024)
    return Arena(d, l, tile, vrf, core.buffers.srf_scalars, hbm, ddr, wbuf, wbuf_lut,
                 hbm_bytes, ddr_bytes)


@dataclass
class Program:
    """One regression program: its words (``program``; raw bytes for the load-time fault
    programs), the memory images, what it is (``kind``: random, directed, fault) and, for
    fault programs, the fault expected (a :class:`~dfx.rtl.core.faults.Fault` name)."""

    name: str
    kind: str
    program: bytes
    segments: list[Segment]
    arena: Arena
    expect: str = "OK"
    text: list[Instruction] | None = None
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def words(self) -> int:
        return len(self.program) // 32

    def image(self) -> CardImage:
        return CardImage(self.program, list(self.segments))

    def binary(self, core: CoreConfig) -> Binary:
        return Binary(core, {}, [self.image()])

    def listing(self) -> str:
        from dfx.isa.asm import disassemble

        if self.text is None:
            return f"({self.words} raw words)"
        return disassemble(self.text)


# -------------------------------------------------------------------------------------------
# memory images


@dataclass
class LutStream:
    space: str
    addr: int
    n: int
    ng: int
    gs: int
    q: int
    slice_: int = 8

    @property
    def k(self) -> int:
        return self.ng * self.gs * self.slice_


def _f16(rng: np.random.Generator, count: int, scale: float) -> np.ndarray:
    return (rng.standard_normal(count) * scale).astype(np.float16)


Shape = tuple[int, int, int, int]  # lutmv (n, ng, gs, q)


def _lut_streams(core: CoreConfig, rng: np.random.Generator, space: str, lo: int, hi: int,
                 img: np.ndarray, shapes: list[Shape] | int) -> list[LutStream]:
    """Packed BCQ streams in ``img[lo:hi]`` (32-byte aligned, random signs and FP16 scales),
    of the given shapes or of that many random shapes."""
    lc = core.lutgemm
    s = lc.slice
    out: list[LutStream] = []
    at = lo
    if isinstance(shapes, int):
        shapes = [(int(rng.integers(1, min(lc.max_rows, 3 * core.d) + 1)),
                   int(rng.integers(1, 4)), int(rng.integers(1, min(lc.max_group // s, 2) + 1)),
                   int(rng.integers(1, lc.max_q + 1))) for _ in range(shapes)]
    for n, ng, gs, q in shapes:
        size = glut.stream_bytes(n, ng, gs, q, s)
        at = -(-at // glut.SECTION_ALIGN) * glut.SECTION_ALIGN
        if at + size > hi:
            break
        signs = rng.random((q, ng * gs * s, n)) < 0.5
        alpha = (np.abs(rng.standard_normal((ng, q, n))) * 0.3 + 0.01).astype(np.float16)
        z = (rng.standard_normal((ng, n)) * 0.2).astype(np.float16)
        img[at:at + size] = glut.pack(glut.Bcq(signs, alpha, z, gs * s), s)
        out.append(LutStream(space, at, n, ng, gs, q, s))
        at += size
    return out


def memory_images(core: CoreConfig, ar: Arena, rng: np.random.Generator,
                  shapes: dict[str, list[Shape]] | None = None
                  ) -> tuple[list[Segment], list[LutStream]]:
    """Segments initialising the whole arena, and the LUT streams in it (``shapes``: per
    space, the streams' shapes; else random ones)."""
    images = {"hbm": np.zeros(ar.hbm_bytes, np.uint8), "ddr": np.zeros(ar.ddr_bytes, np.uint8)}
    streams: list[LutStream] = []
    for space, regions in (("hbm", ar.hbm), ("ddr", ar.ddr)):
        img = images[space]
        for name, (lo, hi) in regions.items():
            n = hi - lo
            if name in ("data", "scratch"):
                img[lo:hi] = _f16(rng, n // 2, 1.0).view(np.uint8)
            elif name == "weights":
                img[lo:hi] = _f16(rng, n // 2, 0.25).view(np.uint8)
            elif name == "ints":
                img[lo:hi] = rng.integers(0, 256, n, dtype=np.uint8)
                img[lo:lo + 4 * len(TABLE)] = np.array(TABLE, "<u4").view(np.uint8)
            elif name == "lut":
                img[lo:hi] = _f16(rng, n // 2, 0.5).view(np.uint8)
                want = (shapes or {}).get(space, 8 if space == "hbm" else 3)
                streams += _lut_streams(core, rng, space, lo, hi, img, want)
            else:  # dumps: a pattern the epilogue overwrites
                img[lo:hi] = 0xA5
        # the gaps between regions (alignment) are initialised too
    segs = [Segment("hbm", 0, images["hbm"]), Segment("ddr", 0, images["ddr"])]
    return segs, streams


# -------------------------------------------------------------------------------------------
# prologue and epilogue


def prologue(ar: Arena, rng: random.Random, streams: list[LutStream]) -> tuple[
        list[Instruction], LutStream | None]:
    """Initialise the weight-buffer window and the VRF window; scalars and registers."""
    w_lo = ar.hbm["weights"][0]
    out = [Instruction("copy", dst=MemAddr("wbuf", 0, 0), src=MemAddr("hbm", 0, w_lo),
                       n=Count(ar.wbuf_lut // 2))]
    wl = None
    room = ar.wbuf - ar.wbuf_lut
    fits = [s for s in streams if s.space == "hbm"
            and glut.stream_bytes(s.n, s.ng, s.gs, s.q, s.slice_) <= room]
    src = rng.choice(fits) if fits else None
    if src is not None:
        size = glut.stream_bytes(src.n, src.ng, src.gs, src.q, src.slice_)
        out.append(Instruction("copy", dst=MemAddr("wbuf", 0, ar.wbuf_lut),
                               src=MemAddr("hbm", 0, src.addr), n=Count(size // 2)))
        # the rest of the window is initialised from the weights
        if size < room:
            out.append(Instruction("copy", dst=MemAddr("wbuf", 0, ar.wbuf_lut + size),
                                   src=MemAddr("hbm", 0, w_lo), n=Count((room - size) // 2)))
        wl = LutStream("wbuf", ar.wbuf_lut, src.n, src.ng, src.gs, src.q, src.slice_)
    else:
        out.append(Instruction("copy", dst=MemAddr("wbuf", 0, ar.wbuf_lut),
                               src=MemAddr("hbm", 0, w_lo), n=Count(room // 2)))
    out.append(Instruction("load", dst=MemAddr("vrf", 0, 0),
                           src=MemAddr("hbm", 0, ar.hbm["data"][0]), n=Count(ar.vrf * ar.d)))
    for s in rng.sample(range(ar.srf), min(ar.srf, 16)):
        out.append(Instruction("sli", sd=s, imm=F32.from_float(rng.uniform(-3.0, 3.0))))
    for r in GENERAL:
        out.append(Instruction("li", rd=r, imm=rng.choice(
            [rng.randint(-8, 8), rng.getrandbits(64) - (1 << 63), rng.randint(0, 1 << 20)])))
    return out, wl


def epilogue(ar: Arena) -> list[Instruction]:
    """r1..r31 to :attr:`Arena.dump_regs` (low word, then the high word), the weight-buffer
    window to :attr:`Arena.dump_wbuf`, halt."""
    out = []
    base = ar.dump_regs
    for r in range(1, NUM_REGS):
        out.append(Instruction("sw", rs1=r, mem=MemAddr("ddr", 0, base + 8 * r)))
        out.append(Instruction("shri", rd=r, rs1=r, imm=32))
        out.append(Instruction("sw", rs1=r, mem=MemAddr("ddr", 0, base + 8 * r + 4)))
    out.append(Instruction("copy", dst=MemAddr("ddr", 0, ar.dump_wbuf),
                           src=MemAddr("wbuf", 0, 0), n=Count(ar.wbuf // 2)))
    out.append(Instruction("halt"))
    return out


@dataclass
class Frame:
    """What every program of one seed shares: the arena, its memory images, the LUT streams
    (``wbuf_stream``: the one the prologue copies into the weight buffer) and the prologue."""

    core: CoreConfig
    arena: Arena
    segments: list[Segment]
    streams: list[LutStream]
    prologue: list[Instruction]
    wbuf_stream: LutStream | None
    rng: random.Random


def frame(core: CoreConfig, seed: int, shapes: dict[str, list[Shape]] | None = None) -> Frame:
    """The frame of a program with ``seed`` (module doc)."""
    ar = arena(core)
    rng = random.Random(seed)
    segs, streams = memory_images(core, ar, np.random.default_rng(seed), shapes)
    pro, wl = prologue(ar, rng, streams)
    return Frame(core, ar, segs, streams, pro, wl, rng)


def framed(fr: Frame, name: str, kind: str, body: list[Instruction], *, expect: str = "OK",
           notes: dict[str, Any] | None = None) -> Program:
    """``body`` between the frame's prologue and the epilogue."""
    from dfx.isa.encoding import encode_program

    text = fr.prologue + body + epilogue(fr.arena)
    return Program(name, kind, encode_program(text), fr.segments, fr.arena, expect=expect,
                   text=text, notes=dict(notes or {}))
