"""One DFX compute core (one card) of the functional simulator.

State (DFX §IV): integer registers r0..r31 (int64, r0 reads 0), the scalar register file
s0..s(srf_scalars-1) (FP32), the vector register file (``vrf_vectors`` d-wide FP16 vectors, each
with a valid bit: reading a never-written vector is an error), the pc, the hardware-loop stack,
the card's HBM, DDR and DMA weight buffer (:mod:`.memory`) and its two ring FIFOs (:mod:`.ring`).

Each instruction is executed with the golden arithmetic (:mod:`dfx.isa.golden`), bit for bit;
matrix instructions use :mod:`.mpu`, a faster form of the golden ``matvec``, and ``lutmv`` uses
:mod:`.lut`, a faster form of the golden ``lutmv``; tests prove both bit-identical
(``golden_matvec=True`` calls the golden functions themselves). Semantics follow
``isa/spec.yaml``; the points it leaves open are fixed as listed in :data:`SEMANTICS`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from dfx.isa.asm import format_instruction
from dfx.isa.config import CoreConfig
from dfx.isa.container import CardImage
from dfx.isa.encoding import Instruction, decode_program
from dfx.isa.errors import IsaError, indices
from dfx.isa.golden import fp as gfp
from dfx.isa.golden import lutgemm as glut
from dfx.isa.golden import ops as gops
from dfx.isa.golden import tables as gtab
from dfx.isa.spec import load_spec

from . import lut, mpu
from .errors import (
    IllegalInstructionError,
    LoopError,
    MemoryAccessError,
    RegisterError,
    SimError,
    UninitializedReadError,
)
from .memory import Memory, MemoryBudget, ddr_memory, hbm_memory, wbuf_memory
from .ring import Link

__all__ = ["Card", "SEMANTICS", "decode_image"]

SEMANTICS = """\
Details of the ISA semantics that isa/spec.yaml leaves open, as this simulator fixes them:
* A count (imm + r{reg}) that evaluates negative is illegal. Matrix instructions need kt >= 1
  and nt >= 1, vmax and vargmax n >= 1; any other count of 0 does nothing.
* FP16 data addresses in hbm/ddr/wbuf (DMA, weights, bias) and DMA strides must be even;
  lw/sw addresses 4-byte aligned (spec). Any negative address or one past the memory is an error.
* Every VRF vector read must have been written before, including whole vectors of which only a
  part is used (the last vector of store/store_t/vargmax with n not a multiple of d).
* Matrix and LUT-GEMM instructions may not write y over x; an element-wise vector instruction
  may write y over a source in place (y = a) or starting before it, but not starting inside it
  after its start (the spec's execution rules). MaskedMM's row maximum is over the nt*l outputs
  (the -65504 padding of the last vector is not included).
* store with a stride writes chunk k (d elements, the last one partial) at dst + k*stride, in
  order; store_t follows the spec's formula even with stride 0 (a later element wins); copy
  reads all its source before writing (memmove).
* loop: body >= 1 and the instruction at pc+body must be an endloop; nesting deeper than
  core.control.loop_depth is an error; an endloop must close the innermost active loop; a taken
  branch may not leave the innermost active loop's body, and must stay inside the program.
* send/recv move vectors one at a time: a send pushes what fits and blocks (keeping what it has
  sent) while the receive FIFO is full, a recv takes what has arrived and blocks until it has
  all n. So n may exceed the FIFO depth. With one card, send/recv are illegal.
* A card that runs past the end of its program (no halt) is an error. At power-on the integer
  registers and the SRF are 0 / +0.0 (the SRF has no valid bits), every VRF vector is invalid.
"""

_MASK64 = (1 << 64) - 1
_SIGN64 = 1 << 63
_BLOCKED = object()
_ELEM_SPACES = ("hbm", "ddr", "wbuf")


def _s64(v: int) -> int:
    v &= _MASK64
    return v - (1 << 64) if v & _SIGN64 else v


def decode_image(image: CardImage, card: int) -> list[Instruction]:
    """Decode a card's program once (illegal words become an IllegalInstructionError)."""
    try:
        return decode_program(bytes(image.program))
    except IsaError as e:
        raise IllegalInstructionError(str(e), card=card) from None


class Card:
    """One card: its core state, memories and ring FIFOs.

    ``tx``/``rx``: the FIFO this card sends into / receives from (None with one card).
    ``cache``: the prepared-weight cache (shared by the card's memories).
    """

    def __init__(self, index: int, core: CoreConfig, image: CardImage, *,
                 program: list[Instruction] | None = None, tx: Link | None = None,
                 rx: Link | None = None, cache: mpu.TileCache | None = None,
                 golden_matvec: bool = False, n_cards: int = 1,
                 budget: MemoryBudget | None = None) -> None:
        self.index = index
        self.budget = budget if budget is not None else MemoryBudget(None)
        self.core = core
        self.image = image
        self.n_cards = n_cards
        self.tx, self.rx = tx, rx
        self.program = program if program is not None else decode_image(image, index)
        self.golden_matvec = golden_matvec
        self.cache = cache if cache is not None else mpu.TileCache(1 << 30)
        d, l = core.d, core.l  # noqa: E741
        self.d, self.l = d, l
        self.tile_bytes = core.tile_bytes
        self.n_vrf = core.buffers.vrf_vectors
        self.n_srf = core.buffers.srf_scalars
        self.loop_depth = core.control.loop_depth
        self.tables = {fn: gtab.table_from_spec(fn, getattr(core.tables, fn))
                       for fn in gtab.FUNCTIONS}
        spec = load_spec()
        self._class_of = {i.opcode: i.cls for i in spec.instructions.values()}
        self._name_of = {i.opcode: i.name for i in spec.instructions.values()}
        self._handlers: list[Callable[[Instruction], Any]] = [self._undefined] * 256
        for ins in spec.instructions.values():
            self._handlers[ins.opcode] = getattr(self, "_op_" + ins.name)
        self.on_sw: Callable[[str, int, int], None] | None = None
        self.reset()

    # -- state ------------------------------------------------------------------------------------
    def reset(self, memories: dict[str, Memory] | None = None) -> None:
        """Power-on state: registers 0, VRF invalid, pc 0, memories from the card image."""
        self.r = [0] * 32
        self.srf = np.zeros(self.n_srf, dtype=np.float32)
        self.srf_bits = self.srf.view(np.uint32)
        self.vrf = np.zeros((self.n_vrf, self.d), dtype=np.float16)
        self.valid = np.zeros(self.n_vrf, dtype=bool)
        self.pc = 0
        self.npc = 0
        self.loops: list[list[int]] = []  # [first pc, last pc (endloop), remaining, loop pc]
        self.halted = False
        self.blocked: str | None = None
        self.progress = 0  # instructions completed + vectors moved (deadlock detection)
        self._xfer = 0  # vectors moved so far by the current send/recv
        self.op_counts = [0] * 256
        self.tiles = 0
        self.macs = 0
        self.lut_weights = 0  # sign bits consumed by lutmv (weights x planes x batch)
        self.lut_bytes = 0  # packed lutmv stream bytes
        self.vectors_sent = 0
        self.vectors_received = 0
        for m in getattr(self, "mem", {}).values():
            if memories is None or m not in memories.values():
                m.release()
        self.mem = memories if memories is not None else self.initial_memories()
        for space, m in self.mem.items():
            m.listeners.append(self._invalidator(space))

    def initial_memories(self) -> dict[str, Memory]:
        """The card's memories loaded from its image (fill segments cost nothing until
        touched; pages are charged to the appliance's memory budget)."""
        b = self.budget
        mem = {"hbm": hbm_memory(self.core, b), "ddr": ddr_memory(self.core, b),
               "wbuf": wbuf_memory(self.core, b)}
        try:
            for j, seg in enumerate(self.image.segments):
                m = mem[seg.space]
                what = f"segment {j}"
                if seg.fill is not None:
                    m.fill(seg.addr, seg.length or 0, seg.fill, track=False)
                else:
                    m.write(seg.addr, seg.data, count=False, what=what, track=False)
        except SimError as e:
            for m in mem.values():
                m.release()
            raise e.located(self.index, None, None, None) from None
        return mem

    def _invalidator(self, space: str) -> Callable[[int, int], None]:
        cache = self.cache

        def invalidate(lo: int, hi: int) -> None:
            cache.invalidate((self.index, space), lo, hi)

        return invalidate

    # -- execution --------------------------------------------------------------------------------
    def run(self, limit: int) -> int:
        """Execute up to ``limit`` instructions; stop early when halted or blocked. Returns the
        number of instructions completed."""
        prog = self.program
        n_prog = len(prog)
        handlers = self._handlers
        counts = self.op_counts
        done = 0
        pc = self.pc
        ins = None
        try:
            while done < limit and not self.halted:
                pc = self.pc
                if pc >= n_prog or pc < 0:
                    ins = None
                    raise IllegalInstructionError(
                        f"pc {pc} is outside the program ({n_prog} instructions): missing halt?")
                ins = prog[pc]
                self.npc = pc + 1
                if handlers[ins.opcode](ins) is _BLOCKED:
                    break
                self.blocked = None
                self.pc = self.npc
                counts[ins.opcode] += 1
                done += 1
        except SimError as e:
            if e.card is not None:
                raise
            raise self.locate(e, pc, ins) from None
        self.progress += done
        return done

    def locate(self, e: SimError, pc: int, ins: Instruction | None) -> SimError:
        return e.located(self.index, pc, format_instruction(ins) if ins is not None else None,
                         self.image.annotation(pc) if 0 <= pc else None)

    def where(self) -> str:
        """``card i, pc p (annotation): instruction`` of the current pc (for reports)."""
        pc = self.pc
        text = f"card {self.index}, pc {pc}"
        ann = self.image.annotation(pc)
        if ann:
            text += f" ({ann})"
        if 0 <= pc < len(self.program):
            text += f": {format_instruction(self.program[pc])}"
        return text

    # -- operand helpers --------------------------------------------------------------------------
    def _undefined(self, ins: Instruction) -> None:  # pragma: no cover - decode rejects these
        raise IllegalInstructionError(f"opcode {ins.opcode:#04x} is not implemented")

    def _count(self, c: Any, name: str) -> int:
        v = c.imm + self.r[c.reg] if c.reg else c.imm
        if v < 0:
            raise IllegalInstructionError(f"{name} = {c.imm} + r{c.reg} = {v} is negative")
        return v

    def _vaddr(self, a: Any) -> int:
        return self.r[a.base] + a.off if a.base else a.off

    def _sreg(self, i: int) -> int:
        if i >= self.n_srf:
            raise RegisterError(f"s{i} is beyond the {self.n_srf} scalar registers of core "
                                f"{self.core.name} (s0..s{self.n_srf - 1})")
        return i

    def _mem(self, a: Any, name: str, allowed: tuple[str, ...], align: int = 2
             ) -> tuple[Memory, int]:
        if a.space not in allowed:
            raise IllegalInstructionError(
                f"operand {name} is in {a.space} but must be in {' or '.join(allowed)}")
        addr = self.r[a.base] + a.off if a.base else a.off
        if addr % align:
            raise MemoryAccessError(f"{a.space.upper()} address {addr:#x} of operand {name} is "
                                    f"not {align}-byte aligned")
        return self.mem[a.space], addr

    def _vrf_operand(self, a: Any, name: str) -> int:
        if a.space != "vrf":
            raise IllegalInstructionError(f"operand {name} is in {a.space} but must be in vrf")
        return self.r[a.base] + a.off if a.base else a.off

    def _vcheck(self, base: int, n: int, what: str) -> None:
        if base < 0 or base + n > self.n_vrf:
            raise MemoryAccessError(f"VRF {what} of v[{base}..{base + n}) is outside the "
                                    f"{self.n_vrf} vectors of the VRF")

    def vread(self, base: int, n: int) -> np.ndarray:
        """Vectors v[base..base+n) (a view: float16[n, d]); all must have been written."""
        self._vcheck(base, n, "read")
        ok = self.valid[base:base + n]
        if not ok.all():
            bad = base + int(np.argmin(ok))
            raise UninitializedReadError(f"VRF read of v[{base}..{base + n}) includes the "
                                         f"never-written vector v[{bad}]")
        return self.vrf[base:base + n]

    def vwrite(self, base: int, data: np.ndarray) -> None:
        n = data.shape[0]
        self._vcheck(base, n, "write")
        self.vrf[base:base + n] = data
        self.valid[base:base + n] = True

    def _disjoint(self, op: str, y: int, ny: int, x: int, nx: int) -> None:
        """Matrix and LUT-GEMM instructions may not write y over x (the units read x again
        for every block of outputs; isa/spec.yaml execution rules)."""
        if y < x + nx and x < y + ny:
            raise IllegalInstructionError(
                f"{op} writes y = v[{y}..{y + ny}) over its input x = v[{x}..{x + nx})")

    @staticmethod
    def _not_ahead(y: int, src: int, n: int, name: str) -> None:
        """An element-wise result may overwrite its source in place (y = src) or before it,
        not start inside it after its start (isa/spec.yaml execution rules)."""
        if src < y < src + n:
            raise IllegalInstructionError(
                f"y = v[{y}] starts inside source {name} = v[{src}..{src + n}) after its start "
                "(only y = a, in place, or y before the source may overlap it)")

    def _stride(self, stride: int) -> None:
        if stride % 2:
            raise MemoryAccessError(f"stride {stride} is not a multiple of 2 bytes (FP16)")

    # -- control ------------------------------------------------------------------------------
    def _op_nop(self, ins: Instruction) -> None:
        pass

    def _op_halt(self, ins: Instruction) -> None:
        self.halted = True

    def _op_loop(self, ins: Instruction) -> None:
        count = self._count(ins.count, "count")
        body = ins.body
        end = self.pc + body
        if body < 1 or end >= len(self.program) or self.program[end].op != "endloop":
            raise LoopError(f"the loop body (body={body}) must end with an endloop at pc "
                            f"{end}")
        if count == 0:
            self.npc = end + 1
            return
        if len(self.loops) >= self.loop_depth:
            raise LoopError(f"hardware loops nested deeper than core.control.loop_depth = "
                            f"{self.loop_depth}")
        self.loops.append([self.pc + 1, end, count, self.pc])

    def _op_endloop(self, ins: Instruction) -> None:
        if not self.loops:
            raise LoopError("endloop without an active hardware loop")
        top = self.loops[-1]
        if self.pc != top[1]:
            raise LoopError(f"endloop does not close the innermost loop (loop at pc {top[3]}, "
                            f"whose body ends at pc {top[1]})")
        top[2] -= 1
        if top[2] > 0:
            self.npc = top[0]
        else:
            self.loops.pop()

    def _branch(self, ins: Instruction) -> None:
        tgt = self.pc + ins.target
        if not 0 <= tgt < len(self.program):
            raise IllegalInstructionError(f"branch target pc {tgt} is outside the program "
                                          f"({indices(len(self.program))})")
        if self.loops:
            top = self.loops[-1]
            if not top[0] <= tgt <= top[1]:
                raise LoopError(f"branch to pc {tgt} leaves the hardware loop at pc {top[3]} "
                                f"(body pc {top[0]}..{top[1]})")
        self.npc = tgt

    def _op_jmp(self, ins: Instruction) -> None:
        self._branch(ins)

    def _op_beq(self, ins: Instruction) -> None:
        if self.r[ins.rs1] == self.r[ins.rs2]:
            self._branch(ins)

    def _op_bne(self, ins: Instruction) -> None:
        if self.r[ins.rs1] != self.r[ins.rs2]:
            self._branch(ins)

    def _op_blt(self, ins: Instruction) -> None:
        if self.r[ins.rs1] < self.r[ins.rs2]:
            self._branch(ins)

    def _op_bge(self, ins: Instruction) -> None:
        if self.r[ins.rs1] >= self.r[ins.rs2]:
            self._branch(ins)

    # -- integer ------------------------------------------------------------------------------
    def _set(self, rd: int, v: int) -> None:
        if rd:
            self.r[rd] = _s64(v)

    def _op_li(self, ins: Instruction) -> None:
        self._set(ins.rd, ins.imm)

    def _op_add(self, ins: Instruction) -> None:
        self._set(ins.rd, self.r[ins.rs1] + self.r[ins.rs2])

    def _op_sub(self, ins: Instruction) -> None:
        self._set(ins.rd, self.r[ins.rs1] - self.r[ins.rs2])

    def _op_addi(self, ins: Instruction) -> None:
        self._set(ins.rd, self.r[ins.rs1] + ins.imm)

    def _op_muli(self, ins: Instruction) -> None:
        self._set(ins.rd, self.r[ins.rs1] * ins.imm)

    def _shift(self, ins: Instruction) -> int:
        if not 0 <= ins.imm <= 63:
            raise IllegalInstructionError(f"shift amount {ins.imm} is outside 0..63")
        return ins.imm

    def _op_shli(self, ins: Instruction) -> None:
        self._set(ins.rd, self.r[ins.rs1] << self._shift(ins))

    def _op_shri(self, ins: Instruction) -> None:
        self._set(ins.rd, (self.r[ins.rs1] & _MASK64) >> self._shift(ins))

    def _op_andi(self, ins: Instruction) -> None:
        self._set(ins.rd, self.r[ins.rs1] & ins.imm)

    def _op_lw(self, ins: Instruction) -> None:
        m, addr = self._mem(ins.mem, "mem", ("hbm", "ddr"), align=4)
        self._set(ins.rd, int(m.read(addr, 4, what="lw read").view("<u4")[0]))

    def _op_sw(self, ins: Instruction) -> None:
        m, addr = self._mem(ins.mem, "mem", ("hbm", "ddr"), align=4)
        v = self.r[ins.rs1] & 0xFFFFFFFF
        m.write(addr, v.to_bytes(4, "little"), what="sw write")
        if self.on_sw is not None:
            self.on_sw(ins.mem.space, addr, v)

    # -- matrix -------------------------------------------------------------------------------
    def _weights(self, ins: Instruction, kt: int, nt: int, kts: int) -> Any:
        m, addr = self._mem(ins.w, "w", _ELEM_SPACES, align=self.tile_bytes)
        tb = self.tile_bytes
        key = ((self.index, ins.w.space), addr, kt, nt, kts)
        e = self.cache.get(key)
        if e is not None:
            m.check_bounds(addr, ((nt - 1) * kts + kt) * tb, "weight read")
            m.account_read(0, nt * kt * tb, e.split)
            return e.prepared
        raw = m.read_runs(addr, nt, kt * tb, kts * tb, what="weight read")
        tiles = raw.view(np.float16).reshape(nt, kt, self.l, self.d)
        prep = gops.prepare_tiles(tiles) if self.golden_matvec else mpu.prepare(tiles)
        hi = addr + ((nt - 1) * kts + kt) * tb
        self.cache.offer(key, addr, hi, prep,
                         lambda: m.channel_split(addr + kts * tb * np.arange(nt, dtype=np.int64),
                                                 kt * tb),
                         now=not m.touched(addr, hi))
        return prep

    def _matrix(self, ins: Instruction, kind: str) -> None:
        d, l = self.d, self.l  # noqa: E741
        kt = self._count(ins.kt, "kt")
        nt = self._count(ins.nt, "nt")
        if kt < 1 or nt < 1:
            raise IllegalInstructionError(f"a matrix instruction needs kt >= 1 and nt >= 1, got "
                                          f"kt={kt}, nt={nt}")
        kts = ins.kt_stride or kt
        batch = ins.batch or 1
        n_out = nt * l
        yv = -(-n_out // d)
        xb, yb = self._vaddr(ins.x), self._vaddr(ins.y)
        x = self.vread(xb, batch * kt).reshape(batch, kt * d)
        self._vcheck(yb, batch * yv, "write")
        self._disjoint(ins.op, yb, batch * yv, xb, batch * kt)
        kw: dict[str, Any] = {}
        if kind == "conv1d":
            m, baddr = self._mem(ins.b, "b", _ELEM_SPACES)
            kw["bias"] = m.read(baddr, 2 * n_out, what="bias read").view(np.float16)
            if ins.gelu:
                kw["gelu_table"] = self.tables["gelu"]
        elif kind == "maskedmm":
            kw["scale"] = self.srf[self._sreg(ins.scale)]
            kw["mask_limit"] = self.r[ins.limit]
            if ins.max + batch > self.n_srf:
                self._sreg(ins.max + batch - 1)
        w = self._weights(ins, kt, nt, kts)
        if self.golden_matvec:
            h, rmax = gops.matvec(w, x, **kw)
        else:
            h, rmax = mpu.matvec(w, x, row_max=kind == "maskedmm", **kw)
        fill = gfp.NEG_MAX16 if kind == "maskedmm" else np.float16(0.0)
        out = np.full((batch, yv * d), fill, dtype=np.float16)
        out[:, :n_out] = h
        self.vwrite(yb, out.reshape(batch * yv, d))
        if kind == "maskedmm":
            self.srf[ins.max:ins.max + batch] = rmax
        self.tiles += nt * kt
        self.macs += batch * nt * kt * d * l

    def _op_conv1d(self, ins: Instruction) -> None:
        self._matrix(ins, "conv1d")

    def _op_maskedmm(self, ins: Instruction) -> None:
        self._matrix(ins, "maskedmm")

    def _op_mm(self, ins: Instruction) -> None:
        self._matrix(ins, "mm")

    # -- LUT-GEMM -----------------------------------------------------------------------------
    def _lut_weights(self, ins: Instruction, n: int, ng: int, gs: int, q: int) -> Any:
        """The prepared weights of a ``lutmv`` stream (cached like the MPU's tiles: streams
        no program or host has written are cached on first use)."""
        lc = self.core.lutgemm
        m, addr = self._mem(ins.w, "w", _ELEM_SPACES, align=glut.SECTION_ALIGN)
        size = glut.stream_bytes(n, ng, gs, q, lc.slice)
        if self.golden_matvec:  # the reference: unpack and use the golden every time
            return glut.unpack(m.read(addr, size, what="lutmv weight read"), n, ng, gs, q,
                               lc.slice)
        key = ((self.index, ins.w.space), addr, "lut", n, ng, gs, q)
        e = self.cache.get(key)
        if e is not None:
            m.check_bounds(addr, size, "lutmv weight read")
            m.account_read(addr, size, e.split)
            return e.prepared
        prep = lut.prepare_stream(m.read(addr, size, what="lutmv weight read"), n, ng, gs, q,
                                  lc.slice)
        self.cache.offer(key, addr, addr + size, prep, lambda: m.channel_split(addr, size),
                         now=not m.touched(addr, addr + size))
        return prep

    def _op_lutmv(self, ins: Instruction) -> None:
        """``lutmv`` (docs/lutgemm.md): :mod:`.lut`'s bit-identical form of the golden
        arithmetic (``golden_matvec``: the golden function on the unpacked stream)."""
        lc, d = self.core.lutgemm, self.d
        n = self._count(ins.n, "n")
        ng = self._count(ins.ng, "ng")
        gs, q = ins.gs, ins.q
        if not 1 <= q <= lc.max_q:
            raise IllegalInstructionError(f"lutmv q = {q} is outside 1..{lc.max_q} "
                                          f"(core {self.core.name})")
        if ng < 1 or gs < 1 or gs * lc.slice > lc.max_group:
            raise IllegalInstructionError(
                f"lutmv needs ng >= 1 and 1 <= gs <= {lc.max_group // lc.slice}, got ng={ng}, "
                f"gs={gs}")
        if not 1 <= n <= lc.max_rows:
            raise IllegalInstructionError(f"lutmv n = {n} is outside 1..{lc.max_rows}")
        k = ng * gs * lc.slice
        kv, yv, batch = -(-k // d), -(-n // d), ins.batch or 1
        xb, yb = self._vaddr(ins.x), self._vaddr(ins.y)
        x = self.vread(xb, batch * kv).reshape(batch, kv * d)[:, :k]
        self._vcheck(yb, batch * yv, "write")
        self._disjoint(ins.op, yb, batch * yv, xb, batch * kv)
        w = self._lut_weights(ins, n, ng, gs, q)
        bias = None
        if ins.bias:
            mb, baddr = self._mem(ins.b, "b", _ELEM_SPACES)
            bias = mb.read(baddr, 2 * n, what="bias read").view(np.float16)
        gelu = self.tables["gelu"] if ins.gelu else None
        if self.golden_matvec:
            h = glut.lutmv(w, x, bias=bias, gelu_table=gelu)
        else:
            h = lut.lutmv(w, np.ascontiguousarray(x), bias=bias, gelu_table=gelu)
        out = np.zeros((batch, yv * d), dtype=np.float16)
        out[:, :n] = h
        self.vwrite(yb, out.reshape(batch * yv, d))
        self.lut_weights += batch * n * k * q
        self.lut_bytes += glut.stream_bytes(n, ng, gs, q, lc.slice)

    # -- vector -------------------------------------------------------------------------------
    def _vv(self, ins: Instruction, fn: Callable[[np.ndarray, np.ndarray], Any]) -> None:
        n = self._count(ins.n, "n")
        if n == 0:
            return
        a = self.vread(self._vaddr(ins.a), n)
        b = self.vread(self._vaddr(ins.b), n)
        y = self._vaddr(ins.y)
        self._not_ahead(y, self._vaddr(ins.a), n, "a")
        self._not_ahead(y, self._vaddr(ins.b), n, "b")
        self.vwrite(y, np.asarray(fn(a, b)))

    def _vs(self, ins: Instruction, fn: Callable[[np.ndarray, Any], Any]) -> None:
        n = self._count(ins.n, "n")
        s = self.srf[self._sreg(ins.s)]
        if n == 0:
            return
        a = self.vread(self._vaddr(ins.a), n)
        y = self._vaddr(ins.y)
        self._not_ahead(y, self._vaddr(ins.a), n, "a")
        self.vwrite(y, np.asarray(fn(a, s)))

    def _v1(self, ins: Instruction, fn: Callable[[np.ndarray], Any]) -> None:
        n = self._count(ins.n, "n")
        if n == 0:
            return
        a = self.vread(self._vaddr(ins.a), n)
        y = self._vaddr(ins.y)
        self._not_ahead(y, self._vaddr(ins.a), n, "a")
        self.vwrite(y, np.asarray(fn(a)))

    def _op_vadd(self, ins: Instruction) -> None:
        self._vv(ins, gfp.add16)

    def _op_vsub(self, ins: Instruction) -> None:
        self._vv(ins, gfp.sub16)

    def _op_vmul(self, ins: Instruction) -> None:
        self._vv(ins, gfp.mul16)

    def _op_vadds(self, ins: Instruction) -> None:
        self._vs(ins, gfp.adds16)

    def _op_vsubs(self, ins: Instruction) -> None:
        self._vs(ins, gfp.subs16)

    def _op_vmuls(self, ins: Instruction) -> None:
        self._vs(ins, gfp.muls16)

    def _op_vexp(self, ins: Instruction) -> None:
        tab = self.tables["exp"]
        self._v1(ins, lambda a: gtab.exp16(a, tab))

    def _op_vgelu(self, ins: Instruction) -> None:
        tab = self.tables["gelu"]
        self._v1(ins, lambda a: gtab.gelu16(a, tab))

    def _op_vmov(self, ins: Instruction) -> None:
        self._v1(ins, lambda a: a.copy())

    def _accum(self, ins: Instruction, mode: str) -> None:
        n = self._count(ins.n, "n")
        sd = self._sreg(ins.sd)
        if n == 0:
            self.srf[sd] = np.float32(0.0)
            return
        a = self.vread(self._vaddr(ins.a), n).reshape(-1)
        self.srf[sd] = gops.accum(a, n * self.d, self.d, mode)

    def _op_vacc(self, ins: Instruction) -> None:
        self._accum(ins, "sum")

    def _op_vaccsq(self, ins: Instruction) -> None:
        self._accum(ins, "sumsq")

    def _op_vmax(self, ins: Instruction) -> None:
        n = self._count(ins.n, "n")
        sd = self._sreg(ins.sd)
        if n == 0:
            raise IllegalInstructionError("vmax needs n >= 1 vectors")
        a = self.vread(self._vaddr(ins.a), n).reshape(-1)
        self.srf[sd] = gops.reduce_max16(a)

    def _op_vargmax(self, ins: Instruction) -> None:
        n = self._count(ins.n, "n")
        if n == 0:
            raise IllegalInstructionError("vargmax needs n >= 1 elements")
        a = self.vread(self._vaddr(ins.a), -(-n // self.d)).reshape(-1)
        self._set(ins.rd, gops.argmax16(a, n))

    # -- scalar -------------------------------------------------------------------------------
    def _op_sli(self, ins: Instruction) -> None:
        self.srf_bits[self._sreg(ins.sd)] = ins.imm.bits

    def _s2(self, ins: Instruction, fn: Callable[[Any, Any], Any]) -> None:
        sd = self._sreg(ins.sd)
        self.srf[sd] = fn(self.srf[self._sreg(ins.sa)], self.srf[self._sreg(ins.sb)])

    def _op_sadd(self, ins: Instruction) -> None:
        self._s2(ins, gfp.add32)

    def _op_ssub(self, ins: Instruction) -> None:
        self._s2(ins, gfp.sub32)

    def _op_smul(self, ins: Instruction) -> None:
        self._s2(ins, gfp.mul32)

    def _op_srecip(self, ins: Instruction) -> None:
        sd = self._sreg(ins.sd)
        self.srf[sd] = gtab.recip32(self.srf[self._sreg(ins.sa)], self.tables["recip"])

    def _op_srsqrt(self, ins: Instruction) -> None:
        sd = self._sreg(ins.sd)
        self.srf[sd] = gtab.rsqrt32(self.srf[self._sreg(ins.sa)], self.tables["rsqrt"])

    # -- dma ----------------------------------------------------------------------------------
    def _op_load(self, ins: Instruction) -> None:
        d = self.d
        dst = self._vrf_operand(ins.dst, "dst")
        m, src = self._mem(ins.src, "src", _ELEM_SPACES)
        n = self._count(ins.n, "n")
        stride = ins.stride
        self._stride(stride)
        if n == 0:
            return
        nv = -(-n // d)
        self._vcheck(dst, nv, "write")
        out = np.zeros(nv * d, dtype=np.float16)
        if stride == 0:
            out[:n] = m.read(src, 2 * n, what="load read").view(np.float16)
        else:
            full, rem = divmod(n, d)
            if full:
                rows = m.read_runs(src, full, 2 * d, stride, what="load read")
                out[:full * d] = rows.reshape(-1).view(np.float16)
            if rem:
                out[full * d:n] = m.read(src + full * stride, 2 * rem,
                                         what="load read").view(np.float16)
        self.vwrite(dst, out.reshape(nv, d))

    def _store_source(self, ins: Instruction) -> tuple[np.ndarray, Memory, int, int]:
        src = self._vrf_operand(ins.src, "src")
        m, dst = self._mem(ins.dst, "dst", _ELEM_SPACES)
        n = self._count(ins.n, "n")
        stride = ins.stride
        self._stride(stride)
        v = self.vread(src, -(-n // self.d)).reshape(-1)[:n] if n else np.empty(0, np.float16)
        return v, m, dst, n

    def _op_store(self, ins: Instruction) -> None:
        d = self.d
        v, m, dst, n = self._store_source(ins)
        if n == 0:
            return
        stride = ins.stride
        if stride == 0:
            m.write(dst, v, what="store write")
            return
        full, rem = divmod(n, d)
        last = dst + full * stride
        span_end = last + 2 * rem if rem else dst + (full - 1) * stride + 2 * d
        m.check_bounds(dst, span_end - dst, "store write")
        if full:
            m.write_runs(dst, v[:full * d].reshape(full, d).view(np.uint8).reshape(full, 2 * d),
                         stride, what="store write")
        if rem:
            m.write(last, v[full * d:], what="store write")

    def _op_store_t(self, ins: Instruction) -> None:
        v, m, dst, n = self._store_source(ins)
        if n == 0:
            return
        c = np.arange(n, dtype=np.int64)
        addrs = dst + (c // self.l) * ins.stride + (c % self.l) * (2 * self.d)
        m.scatter16(addrs, v, what="store_t write")

    def _op_copy(self, ins: Instruction) -> None:
        ms, src = self._mem(ins.src, "src", _ELEM_SPACES)
        md, dst = self._mem(ins.dst, "dst", _ELEM_SPACES)
        n = self._count(ins.n, "n")
        if n == 0:
            return
        md.check_bounds(dst, 2 * n, "copy write")
        data = ms.read(src, 2 * n, what="copy read").copy()
        md.write(dst, data, what="copy write")

    # -- router -------------------------------------------------------------------------------
    def _no_ring(self, ins: Instruction) -> IllegalInstructionError:
        return IllegalInstructionError(f"{ins.op} needs the ring, but this appliance has only "
                                       f"{self.n_cards} card")

    def _op_send(self, ins: Instruction) -> Any:
        if self.tx is None:
            raise self._no_ring(ins)
        n = self._count(ins.n, "n")
        base = self._vaddr(ins.v)
        if n == 0:
            return None
        if self._xfer == 0:
            self.vread(base, n)  # check the whole source once
        k = self.tx.push(self.vrf[base + self._xfer:base + n])
        self._xfer += k
        self.progress += k
        self.vectors_sent += k
        if self._xfer < n:
            lk = self.tx
            self.blocked = (f"waits for room in card {lk.dst}'s receive FIFO "
                            f"({lk.occupancy}/{lk.capacity} vectors full; {self._xfer} of {n} "
                            f"sent)")
            return _BLOCKED
        self._xfer = 0
        return None

    def _op_recv(self, ins: Instruction) -> Any:
        if self.rx is None:
            raise self._no_ring(ins)
        n = self._count(ins.n, "n")
        base = self._vaddr(ins.v)
        if n == 0:
            return None
        self._vcheck(base, n, "write")
        got = self.rx.pop(n - self._xfer)
        k = got.shape[0]
        if k:
            self.vwrite(base + self._xfer, got)
        self._xfer += k
        self.progress += k
        self.vectors_received += k
        if self._xfer < n:
            self.blocked = (f"waits for {n - self._xfer} more vectors from card {self.rx.src} "
                            f"(its FIFO is empty; {self._xfer} of {n} received)")
            return _BLOCKED
        self._xfer = 0
        return None

    # -- statistics ---------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        by_op = {self._name_of[op]: c for op, c in enumerate(self.op_counts) if c}
        by_class: dict[str, int] = {}
        for op, c in enumerate(self.op_counts):
            if c:
                cls = self._class_of[op]
                by_class[cls] = by_class.get(cls, 0) + c
        return {
            "card": self.index,
            "instructions": sum(self.op_counts),
            "by_class": by_class,
            "by_op": by_op,
            "memory": {space: m.stats() for space, m in self.mem.items()},
            "matrix": {"tiles": self.tiles, "macs": self.macs},
            "lutgemm": {"sign_bits": self.lut_weights, "stream_bytes": self.lut_bytes},
            "router": {"sent": self.vectors_sent, "received": self.vectors_received},
            "halted": self.halted,
            "pc": self.pc,
        }
