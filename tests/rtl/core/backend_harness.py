"""Run straight-line programs on the core's :class:`~dfx.rtl.core.backend.Backend` in Amaranth's
simulator (a Python stand-in for the controller resolves each instruction; a Python stand-in
for the memory system streams weight tiles and biases from byte images) and on the functional
simulator's :class:`~dfx.sim.functional.card.Card`, from the same VRF and memory contents.

Building the simulator of the Backend takes tens of seconds, so :func:`run_cases` runs many
programs on one build (``clear`` between them)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np
from amaranth.sim import Simulator
from resolve_ref import resolve

from dfx.isa.asm import assemble
from dfx.isa.config import CoreConfig
from dfx.isa.container import CardImage
from dfx.isa.encoding import Instruction, encode_program
from dfx.isa.golden import lutgemm as glut
from dfx.rtl.core.backend import Backend
from dfx.rtl.core.faults import Fault
from dfx.rtl.mpu import tile_order
from dfx.rtl.mpu.mpu import zigzag_interleave
from dfx.sim.functional.card import Card


@dataclass
class Case:
    """A straight-line program, its initial VRF (uint16 [n, d]) and memory images (space ->
    uint8 array from address 0), integer registers."""

    prog: list[Instruction]
    vrf: np.ndarray
    mem: dict[str, np.ndarray] = field(default_factory=dict)
    regs: list[int] = field(default_factory=lambda: [0] * 32)


@dataclass
class Outcome:
    vrf: np.ndarray  # uint16 [n, d]: vectors 0..n-1
    srf: np.ndarray  # uint32 [srf]
    r: list[int]  # integer registers after the program (vargmax results)
    fault: Fault = Fault.OK
    fault_pc: int = -1
    issue_cycles: list[int] = field(default_factory=list)
    cycles: int = 0


def program(text: str | list[Instruction]) -> list[Instruction]:
    return assemble(text) if isinstance(text, str) else list(text)


class _MemoryStandIn:
    """Serves the Backend's memory streams for the commands it issued (in order)."""

    def __init__(self, core: CoreConfig, dut: Backend):
        self.core, self.dut = core, dut
        self.mem: dict[str, np.ndarray] = {}
        self.tiles: deque = deque()  # per matrix row: list of (l, d) uint16 tiles
        self.bias: deque = deque()  # per conv1d row: list of l-element uint16 beats
        self.signs: deque = deque()  # per lutmv row: list of int beats
        self.scales: deque = deque()
        self.lbias: deque = deque()  # per lutmv row with bias: d-element beats
        self.G = zigzag_interleave(core.d, core.l, core.mpu.add_latency)

    def command(self, op: str, word: int, val: list[int]) -> None:
        from dfx.isa.encoding import decode

        ins = decode(word.to_bytes(32, "little"))
        core = self.core
        d, l, tb = core.d, core.l, core.tile_bytes  # noqa: E741
        if op in ("conv1d", "maskedmm", "mm"):
            w, b, kt, nt = val[2], val[3], val[4], val[5]
            kts = ins.kt_stride or kt
            image = self.mem[ins.w.space]
            for _row in range(ins.batch or 1):
                row = []
                for n, k in tile_order(kt, nt, self.G):
                    a = w + (n * kts + k) * tb
                    row.append(image[a:a + tb].view(np.uint16).reshape(l, d))
                self.tiles.append(row)
                if op == "conv1d":
                    bb = self.mem[ins.b.space][b:b + 2 * nt * l].view(np.uint16).reshape(nt, l)
                    self.bias.append(list(bb))
        elif op == "lutmv":
            w, b, n, ng = val[2], val[3], val[4], val[5]
            gs, q = ins.gs, ins.q
            size = glut.stream_bytes(n, ng, gs, q, core.lutgemm.slice)
            raw = self.mem[ins.w.space][w:w + size]
            for _row in range(ins.batch or 1):
                sg, sl = self.lut_streams(raw, n, ng, gs, q)
                self.signs.append(sg)
                self.scales.append(sl)
                if ins.bias:
                    yv = -(-n // d)
                    bb = np.zeros(yv * d, np.uint16)
                    bb[:n] = self.mem[ins.b.space][b:b + 2 * n].view(np.uint16)
                    self.lbias.append(list(bb.reshape(yv, d)))

    def lut_streams(self, raw: np.ndarray, n: int, ng: int, gs: int, q: int
                    ) -> tuple[list[int], list[int]]:
        """Sign and scale beats of a packed lutmv stream (rtl/lutgemm/top.py's mapping)."""
        lc = self.core.lutgemm
        s, lanes, sc = lc.slice, lc.lanes, lc.scalers
        sec = glut.section_bytes(n, gs, q, s)
        word = s // 8
        signs, scales = [], []

        def beat(chunk: np.ndarray, nbytes: int) -> int:
            buf = np.zeros(nbytes, np.uint8)
            buf[: len(chunk)] = chunk
            return int.from_bytes(buf.tobytes(), "little")

        for g in range(ng):
            section = raw[g * sec:(g + 1) * sec]
            for blk in range(gs * q):
                block = section[blk * n * word:(blk + 1) * n * word]
                for rb in range(0, n, lanes):
                    signs.append(beat(block[rb * word:(rb + lanes) * word], lanes * word))
            part = section[gs * q * n * word:gs * q * n * word + n * (q + 1) * 2]
            step = sc * (q + 1) * 2
            for c in range(0, len(part), step):
                scales.append(beat(part[c:c + step], sc * (lc.max_q + 1) * 2))
        return signs, scales

    async def stream(self, ctx, port, queue: deque) -> None:
        while True:
            if not queue:
                ctx.set(port.valid, 0)
                await ctx.tick()
                continue
            items = queue.popleft()
            for item in items:
                if isinstance(item, int):
                    ctx.set(port.payload.as_value(), item)
                else:
                    ctx.set(port.payload, [[int(x) for x in lane] for lane in item]
                            if item.ndim == 2 else [int(x) for x in item])
                ctx.set(port.valid, 1)
                await ctx.tick().until(port.ready)
            ctx.set(port.valid, 0)


def run_cases(core: CoreConfig, cases: list[Case], *, max_cycles: int = 50_000
              ) -> list[Outcome]:
    """Issue each case's program (straight line, no control/integer instructions) on one
    Backend build; returns one outcome per case."""
    dut = Backend(core)
    d = core.d
    mem = _MemoryStandIn(core, dut)
    outs: list[Outcome] = []
    from dfx.isa.spec import load_spec

    names = {i.opcode: n for n, i in load_spec().instructions.items()}

    async def memcmd(ctx):
        ctx.set(dut.mem.ready, 1)
        p = dut.mem.payload
        async for _clk, _rst, valid, op, word, *vals in ctx.tick().sample(
                dut.mem.valid, p.op, p.word, *(p.val[i] for i in range(6))):
            if valid:
                mem.command(names[op.value], word, list(vals))

    async def tiles(ctx):
        await mem.stream(ctx, dut.mpu_tiles, mem.tiles)

    async def bias(ctx):
        await mem.stream(ctx, dut.mpu_bias, mem.bias)

    async def signs(ctx):
        await mem.stream(ctx, dut.lut_signs, mem.signs)

    async def scales(ctx):
        await mem.stream(ctx, dut.lut_scales, mem.scales)

    async def lbias(ctx):
        await mem.stream(ctx, dut.lut_bias, mem.lbias)

    async def bench(ctx):
        ctx.set(dut.cards, 1)
        for case in cases:
            regs = list(case.regs)
            mem.mem = {s: a for s, a in case.mem.items()}
            n_vec = case.vrf.shape[0]
            out = Outcome(np.zeros((n_vec, d), np.uint16),
                          np.zeros(core.buffers.srf_scalars, np.uint32), regs)
            ctx.set(dut.clear, 1)
            await ctx.tick()
            ctx.set(dut.clear, 0)
            for i in range(n_vec):
                ctx.set(dut.dbg_vrf_w.addr, i)
                ctx.set(dut.dbg_vrf_w.data, [int(x) for x in case.vrf[i]])
                ctx.set(dut.dbg_vrf_w.en, 1)
                await ctx.tick()
            ctx.set(dut.dbg_vrf_w.en, 0)
            cycle = 0
            for pc, ins in enumerate(case.prog):
                res = resolve(ins, regs)
                ctx.set(dut.ins.payload.op, res["op"])
                ctx.set(dut.ins.payload.pc, pc)
                ctx.set(dut.ins.payload.word, ins.word)
                for k, v in enumerate(res["val"]):
                    ctx.set(dut.ins.payload.val[k], v)
                ctx.set(dut.ins.payload.limit, res["limit"])
                ctx.set(dut.ins.valid, 1)
                while ctx.get(dut.fault) == Fault.OK:
                    ready = ctx.get(dut.ins.ready)
                    if ctx.get(dut.rd.en):
                        regs[ctx.get(dut.rd.reg)] = ctx.get(dut.rd.value)
                    await ctx.tick()
                    cycle += 1
                    assert cycle < max_cycles, f"pc {pc} ({ins}) never issued"
                    if ready:
                        out.issue_cycles.append(cycle - 1)
                        break
                if ctx.get(dut.fault) != Fault.OK:
                    break
            ctx.set(dut.ins.valid, 0)
            await ctx.tick()
            cycle += 1
            while not ctx.get(dut.idle) and ctx.get(dut.fault) == Fault.OK:
                if ctx.get(dut.rd.en):
                    regs[ctx.get(dut.rd.reg)] = ctx.get(dut.rd.value)
                await ctx.tick()
                cycle += 1
                assert cycle < max_cycles, "the backend never became idle"
            out.cycles = cycle
            out.fault = ctx.get(dut.fault)
            out.fault_pc = ctx.get(dut.fault_pc) if out.fault != Fault.OK else -1
            for i in range(n_vec):
                ctx.set(dut.dbg_vrf_r.addr, i)
                ctx.set(dut.dbg_vrf_r.en, 1)
                await ctx.tick()
                out.vrf[i] = [int(x) for x in ctx.get(dut.dbg_vrf_r.data)]
            ctx.set(dut.dbg_vrf_r.en, 0)
            for i in range(core.buffers.srf_scalars):
                ctx.set(dut.dbg_srf_idx, i)
                out.srf[i] = ctx.get(dut.dbg_srf_value)
            outs.append(out)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(memcmd, background=True)
    sim.add_testbench(tiles, background=True)
    sim.add_testbench(bias, background=True)
    for fn in (signs, scales, lbias):
        sim.add_testbench(fn, background=True)
    sim.add_testbench(bench)
    sim.run()
    assert len(outs) == len(cases), "the bench did not finish"
    return outs


def run_reference(core: CoreConfig, case: Case) -> Outcome:
    """The same program on the functional simulator's card."""
    prog = case.prog
    card = Card(0, core, CardImage(program=encode_program(prog), segments=[]), program=prog)
    n = case.vrf.shape[0]
    card.vrf[:n] = case.vrf.view(np.float16)
    card.valid[:n] = True
    card.r[:] = list(case.regs)
    for space, image in case.mem.items():
        card.mem[space].write(0, image, count=False)
    for ins in prog:
        card._handlers[ins.opcode](ins)
    return Outcome(card.vrf[:n].view(np.uint16).copy(), card.srf.view(np.uint32).copy(),
                   list(card.r))


def random_vrf(rng: np.random.Generator, n: int, d: int, scale: float = 1.0) -> np.ndarray:
    return (rng.standard_normal((n, d)) * scale).astype(np.float16).view(np.uint16)


def random_image(rng: np.random.Generator, nbytes: int, scale: float = 0.5) -> np.ndarray:
    """FP16 values (as bytes) of the given size."""
    return (rng.standard_normal(nbytes // 2) * scale).astype(np.float16).view(np.uint8)


def check_cases(core: CoreConfig, cases: list[Case]) -> list[Outcome]:
    """Run every case on the Backend and on the reference; assert they agree bit for bit."""
    got = run_cases(core, cases)
    for k, (case, g) in enumerate(zip(cases, got, strict=True)):
        want = run_reference(core, case)
        where = f"case {k} ({len(case.prog)} instructions)"
        assert g.fault == Fault.OK, f"{where}: fault {g.fault.name} at pc {g.fault_pc}"
        bad = np.argwhere(g.vrf != want.vrf)
        assert not bad.size, (
            f"{where}: VRF differs first at vector {bad[0][0]}, element {bad[0][1]}: "
            f"rtl {g.vrf[tuple(bad[0])]:#06x}, simulator {want.vrf[tuple(bad[0])]:#06x}")
        assert np.array_equal(g.srf, want.srf), (
            f"{where}: SRF differs at {np.nonzero(g.srf != want.srf)[0].tolist()}")
        assert g.r == want.r, f"{where}: integer registers differ"
    return got


def check_same(core: CoreConfig, text: str | list[Instruction], vrf0: np.ndarray,
               regs: list[int] | None = None) -> Outcome:
    return check_cases(core, [Case(program(text), vrf0, regs=list(regs or [0] * 32))])[0]
