"""One DFX core of the timing model: in-order issue, scoreboard, units, memory channels.

Every instruction is handled once, when it issues: the handler computes, from the state left
by the instructions before it, the cycle it issues, when each of its units streams, when each
result vector becomes available and how long it holds each memory channel. Only integer and
control instructions are executed functionally (registers, loops, branches, ``lw``/``sw`` on a
small word store holding the host's configuration block and tokens); FP data is never computed.
docs/timing.md is the specification of every rule used here.

Time is in core cycles. "Available at ``t``" means a reader may use the value in cycle ``t`` or
later. The scoreboard keeps, per in-flight writer, the availability of every vector it writes
(VRF), and per scalar/integer register the availability of its last write; readers record the
last cycle they read (for write-after-read hazards).
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import accumulate
from operator import add, sub
from typing import Any

from dfx.isa.encoding import Instruction
from dfx.isa.golden.lutgemm import SECTION_ALIGN, stream_bytes

from .errors import TimingError
from .memory import Port, run_counts, store_t_counts, store_t_key
from .params import Params
from .ring import Link

NEG = -(1 << 62)

# Kinds of work (the critical-path breakdown) and units.
MATRIX, ATTENTION, VECTOR, RING, DMA, CONTROL = range(6)
CATEGORIES = ("matrix", "attention", "vector", "ring", "dma", "control")
U_MPU, U_VPU, U_DMA, U_TX, U_RX, U_LUT = range(6)
UNITS = ("mpu", "vpu", "dma", "router_tx", "router_rx", "lut")
CLASSES = ("control", "integer", "matrix", "vector", "scalar", "dma", "router", "lutgemm")
# Occupancy classes in priority order: a cycle counts for the first class active in it.
O_MATRIX, O_ATTENTION, O_VECTOR, O_RING, O_DMA, O_IDLE = range(6)
OCCUPANCY = ("matrix", "attention", "vector", "ring_sync", "dma_stall", "idle")
_UNIT_CLASS = (O_MATRIX, O_VECTOR, O_DMA, O_RING, O_RING, O_MATRIX)

# Layout of the per-card statistics vector (all entries are additive counters).
S_CRIT = 0  # 6: cycles of the card's timeline by what in-order issue waited for
S_BUSY = S_CRIT + len(CATEGORIES)  # 6: cycles each unit streamed (LUT: lane cycles)
S_WSTALL = S_BUSY + len(UNITS)  # MPU cycles lost waiting for weights (memory latency, bandwidth)
S_TILES = S_WSTALL + 1
S_MACS = S_TILES + 1
S_SENT = S_MACS + 1
S_RECV = S_SENT + 1
S_INSTR = S_RECV + 1  # 8: instructions by class
BYTE_NAMES = ("hbm_read", "hbm_write", "ddr_read", "ddr_write", "wbuf_read", "wbuf_write",
              "matrix_weights", "attention_kv", "lut_weights")
S_BYTES = S_INSTR + len(CLASSES)  # 9: BYTE_NAMES: memory traffic, then matrix weight tiles
#                                   (conv1d, LM head), attention tiles (K, V), lutmv streams
S_OCC = S_BYTES + len(BYTE_NAMES)  # 6: cycles of the card's timeline by the busiest unit
# LUT-GEMM unit (lutmv), summed over instructions: the three per-instruction stream times
# (HBM, lanes, scalers), cycles the lanes stood still (data or bank), sign bits consumed, and
# each instruction's span (first table build to last result) by the largest of the three.
LUT_NAMES = ("hbm_cycles", "lane_cycles", "scaler_cycles", "stall_cycles", "sign_bits",
             "hbm_bound_cycles", "lane_bound_cycles", "scaler_bound_cycles")
S_LUT = S_OCC + len(OCCUPANCY)
N_STATS = S_LUT + len(LUT_NAMES)
_SPACE_BYTES = {"hbm": S_BYTES, "ddr": S_BYTES + 2, "wbuf": S_BYTES + 4}

RUN, BLOCKED, HEAD, HALTED = range(4)

_MASK64 = (1 << 64) - 1


def _s64(v: int) -> int:
    v &= _MASK64
    return v - (1 << 64) if v >> 63 else v


class Meta:
    """Static facts about one instruction of the program (precomputed once)."""

    __slots__ = ("ins", "op", "run", "rregs", "wreg", "sreads", "swrites", "sall", "cls",
                 "attention")

    def __init__(self, ins: Instruction, run: Callable[[Instruction, Meta], int], cls: int
                 ) -> None:
        self.ins, self.op, self.run, self.cls = ins, ins.op, run, cls
        ops = ins.operands
        rregs: list[int] = []
        kinds = {o.name: o.kind for o in ins.spec.operands}
        for name, v in ops.items():
            kind = kinds[name]
            if kind in ("vaddr", "maddr") and v.base:
                rregs.append(v.base)
            elif kind == "count" and v.reg:
                rregs.append(v.reg)
        for name in ("rs1", "rs2", "limit"):
            if name in ops and ops[name]:
                rregs.append(ops[name])
        if ins.op == "sw":
            rregs.append(ops["rs1"])
        self.rregs = tuple(sorted(set(r for r in rregs if r)))
        self.wreg = ops["rd"] if "rd" in ops and ins.op != "sw" else 0
        sreads: list[int] = []
        swrites: list[int] = []
        op = ins.op
        if op == "maskedmm":
            sreads.append(ops["scale"])
            swrites.extend(range(ops["max"], ops["max"] + (ops["batch"] or 1)))
        elif op in ("vadds", "vsubs", "vmuls"):
            sreads.append(ops["s"])
        elif op in ("vacc", "vaccsq", "vmax"):
            swrites.append(ops["sd"])
        elif ins.spec.cls == "scalar":
            swrites.append(ops["sd"])
            if op != "sli":
                sreads.append(ops["sa"])
            if op in ("sadd", "ssub", "smul"):
                sreads.append(ops["sb"])
        self.sreads, self.swrites = tuple(sreads), tuple(swrites)
        self.sall = self.sreads + self.swrites
        self.attention = op == "maskedmm" or (op == "mm" and bool(ops["kt"].reg or ops["nt"].reg))


class CardSim:
    """The timing state of one card and the handlers of every instruction."""

    def __init__(self, index: int, p: Params, program: list[Instruction], *,
                 annotation: Callable[[int], str | None], tx: Link | None, rx: Link | None,
                 words: dict[tuple[str, int], int], n_cards: int) -> None:
        self.index, self.p, self.n_cards = index, p, n_cards
        self.annotation = annotation
        self.tx, self.rx = tx, rx
        self.words = words
        self.n_prog = len(program)
        handlers = {
            "nop": self._op_nop, "halt": self._op_halt, "loop": self._op_loop,
            "endloop": self._op_endloop, "jmp": self._op_branch, "beq": self._op_branch,
            "bne": self._op_branch, "blt": self._op_branch, "bge": self._op_branch,
            "lw": self._op_lw, "sw": self._op_sw,
            "conv1d": self._op_matrix, "maskedmm": self._op_matrix, "mm": self._op_matrix,
            "vadd": self._op_vector, "vsub": self._op_vector, "vmul": self._op_vector,
            "vadds": self._op_vector, "vsubs": self._op_vector, "vmuls": self._op_vector,
            "vexp": self._op_vector, "vgelu": self._op_vector, "vmov": self._op_vector,
            "vacc": self._op_reduce, "vaccsq": self._op_reduce, "vmax": self._op_reduce,
            "vargmax": self._op_reduce,
            "load": self._op_load, "store": self._op_store, "store_t": self._op_store,
            "copy": self._op_copy, "send": self._op_send, "recv": self._op_recv,
            "lutmv": self._op_lutmv,
        }
        self.meta = []
        for ins in program:
            cls = CLASSES.index(ins.spec.cls)
            run = handlers.get(ins.op)
            if run is None:
                run = self._op_scalar if ins.spec.cls == "scalar" else self._op_int
            self.meta.append(Meta(ins, run, cls))
        self.vlat = {
            "vadd": p.vpu_add, "vsub": p.vpu_add, "vadds": p.vpu_add, "vsubs": p.vpu_add,
            "vmul": p.vpu_mul, "vmuls": p.vpu_mul, "vexp": p.vpu_table, "vgelu": p.vpu_table,
            "vmov": p.vpu_bypass,
        }
        self.slat = {"sli": p.vpu_bypass, "sadd": p.vpu_scalar, "ssub": p.vpu_scalar,
                     "smul": p.vpu_scalar, "srecip": p.vpu_table, "srsqrt": p.vpu_table}
        self.chan = {"hbm": p.hbm, "ddr": p.ddr, "wbuf": p.wbuf}
        self.lw_latency = {"hbm": p.hbm.latency + p.int_latency,
                           "ddr": p.ddr.latency + p.int_latency}
        self.trace: list[tuple] | None = None
        self._sched: dict[tuple[int, ...], tuple[int, list[int], list[int]]] = {}
        self._lut_off: dict[tuple[int, ...], list[int]] = {}
        self.reset()

    # -- state --------------------------------------------------------------------------------
    def reset(self) -> None:
        p = self.p
        self.pc = 0
        self.r = [0] * 32
        self.loops: list[list[int]] = []  # [body start, endloop pc, remaining, loop pc, iter]
        self.halted = False
        self.end = 0
        self.now = 0  # earliest cycle the next instruction can issue
        self.ends: list[list[list[int]]] = [[] for _ in UNITS]  # [stream end, category]
        self.acc = [NEG, VECTOR]  # SFU_V running maximum (vmax/vargmax) free
        self.acc_in = NEG  # the last vacc/vaccsq vector's entry into the adder tree
        self.lut_s = [NEG, NEG]  # LUT scalers: end of the second-to-last and last group round
        self.vw: list[list[Any]] = []  # VRF writers [lo, hi, avail list, category, last]
        self.vr: list[list[int]] = []  # VRF readers [lo, hi, last read, category]
        self.int_av = [NEG] * 32
        self.int_cat = [CONTROL] * 32
        self.s_av = [NEG] * p.srf
        self.s_cat = [VECTOR] * p.srf
        self.s_lr = [NEG] * p.srf
        self.ports = {"hbm": Port(p.hbm), "ddr": Port(p.ddr), "wbuf": Port(p.wbuf)}
        self.wbuf_busy: list[list[int]] = []  # [lo, hi, is_write, end] in flight
        self.horizon = [0, CONTROL]  # latest completion so far and its category
        self.stats = [0] * N_STATS
        self.token_times: list[int] = []
        self.occ: list[tuple[int, int, int]] = []  # unit activity not yet counted
        self.front = 0  # cycles before this are counted in S_OCC
        self.pending: Callable[[], int] | None = None
        self.blocked: str | None = None
        self.head: tuple[int, int] | None = None  # (loop pc, iteration) of the last back-edge
        self.head_wait = False  # stopped at that head by the memoising scheduler
        self.snap_at = -1  # tokens after which to snapshot the statistics (end of the prompt)
        self.snap: list[int] | None = None

    def where(self) -> str:
        pc = self.pc
        text = f"card {self.index}, pc {pc}"
        ann = self.annotation(pc) if 0 <= pc < self.n_prog else None
        if ann:
            text += f" ({ann})"
        if 0 <= pc < self.n_prog:
            text += f": {self.meta[pc].ins}"
        return text

    def error(self, msg: str) -> TimingError:
        return TimingError(f"{self.where()}: {msg}")

    # -- stepping -----------------------------------------------------------------------------
    def step(self) -> int:
        """Handle the next instruction (or resume a blocked send/recv)."""
        if self.pending is not None:
            return self.pending()
        pc = self.pc
        if not 0 <= pc < self.n_prog:
            raise TimingError(f"card {self.index}: pc {pc} is outside the program "
                              f"({self.n_prog} instructions): missing halt?")
        m = self.meta[pc]
        self.npc = pc + 1
        st = m.run(m.ins, m)
        if st == RUN or st == HEAD:
            self.pc = self.npc
        return st

    # -- helpers ------------------------------------------------------------------------------
    def _count(self, c: Any, name: str) -> int:
        v = c.imm + self.r[c.reg] if c.reg else c.imm
        if v < 0:
            raise self.error(f"{name} = {c.imm} + r{c.reg} = {v} is negative")
        return v

    def _va(self, a: Any) -> int:
        return self.r[a.base] + a.off if a.base else a.off

    def _pre(self, m: Meta) -> tuple[int, int]:
        """Earliest issue allowed by the register scoreboard (integer and scalar registers)."""
        t, c = self.now, CONTROL
        av = self.int_av
        for r in m.rregs:
            if av[r] > t:
                t, c = av[r], self.int_cat[r]
        if m.wreg and av[m.wreg] > t:
            t, c = av[m.wreg], self.int_cat[m.wreg]
        if m.sall:
            sav, n = self.s_av, self.p.srf
            if max(m.sall) >= n:
                raise self.error(f"s{max(m.sall)} is beyond the {n} scalar registers")
            for s in m.sreads:
                if sav[s] > t:
                    t, c = sav[s], self.s_cat[s]
            for s in m.swrites:
                if sav[s] > t:
                    t, c = sav[s], self.s_cat[s]
                if self.s_lr[s] + 1 > t:
                    t, c = self.s_lr[s] + 1, self.s_cat[s]
        return t, c

    def _unit(self, u: int) -> tuple[int, int]:
        """Issue constraint of unit ``u``'s queue: (time, category)."""
        e = self.ends[u]
        if len(e) > self.p.queue:
            return e[0][0], e[0][1]
        return NEG, CONTROL

    def _ready(self, u: int) -> int:
        e = self.ends[u]
        return e[-1][0] if e else NEG

    def _unit_done(self, u: int, end: int, cat: int) -> None:
        e = self.ends[u]
        e.append([end, cat])
        if len(e) > self.p.queue + 1:
            del e[0]

    def _issue(self, t: int, c: int) -> int:
        """Issue at ``t`` (>= now): blame the stall on ``c``, advance the issue slot."""
        if len(self.occ) > 32:
            self.finalize(t)
        st = self.stats
        st[S_CRIT + c] += t - self.now
        st[S_CRIT + CONTROL] += self.p.issue
        self.now = t + self.p.issue
        return t

    def _taken(self) -> None:
        self.now += self.p.branch_penalty
        self.stats[S_CRIT + CONTROL] += self.p.branch_penalty

    def _done(self, t: int, c: int) -> None:
        h = self.horizon
        if t > h[0]:
            h[0], h[1] = t, c

    def _vcheck(self, lo: int, n: int, what: str) -> None:
        if lo < 0 or lo + n > self.p.vrf:
            raise self.error(f"VRF {what} of v[{lo}..{lo + n}) is outside the {self.p.vrf} "
                             "vectors of the VRF")

    def _src(self, lo: int, n: int) -> tuple[list[int] | None, int, int]:
        """Chaining view of VRF source [lo, lo+n): per-vector availability (None if nothing in
        flight overlaps), the earliest issue (the first source vector an in-flight instruction
        writes is available) and that writer's category."""
        self._vcheck(lo, n, "read")
        hi = lo + n
        av = None
        t, c, pos = NEG, CONTROL, hi
        now = self.now
        for w in self.vw:
            if w[4] <= now or w[1] <= lo or w[0] >= hi:
                continue
            a, b = max(lo, w[0]), min(hi, w[1])
            wav = w[2]
            off = lo - w[0]
            if av is None:
                if a == lo and b == hi:
                    av = wav[a - w[0]:b - w[0]]
                else:
                    av = [NEG] * n
                    av[a - lo:b - lo] = wav[a - w[0]:b - w[0]]
            else:
                for i in range(a - lo, b - lo):
                    x = wav[i + off]
                    if x > av[i]:
                        av[i] = x
            x = wav[a - w[0]]
            if a < pos or (a == pos and x > t):
                t, c, pos = x, w[3], a
        return av, t, c

    def _dst(self, lo: int, n: int) -> tuple[int, int]:
        """WAW/WAR constraint of writing VRF [lo, lo+n): (time, category)."""
        self._vcheck(lo, n, "write")
        hi = lo + n
        t, c = NEG, CONTROL
        now = self.now
        for w in self.vw:
            if w[4] <= now or w[1] <= lo or w[0] >= hi:
                continue
            a, b = max(lo, w[0]), min(hi, w[1])
            x = max(w[2][a - w[0]: b - w[0]])
            if x > t:
                t, c = x, w[3]
        for r in self.vr:
            if r[2] + 1 > t and r[1] > lo and r[0] < hi and r[2] >= now:
                t, c = r[2] + 1, r[3]
        return t, c

    def _write(self, lo: int, av: list[int], cat: int) -> None:
        if not av:
            return
        last = max(av)
        now = self.now
        if len(self.vw) > 8:
            self.vw = [w for w in self.vw if w[4] > now]
        self.vw.append([lo, lo + len(av), av, cat, last])
        self._done(last, cat)

    def _read(self, lo: int, n: int, last: int, cat: int) -> None:
        if n <= 0:
            return
        now = self.now
        if len(self.vr) > 8:
            self.vr = [r for r in self.vr if r[2] >= now]
        self.vr.append([lo, lo + n, last, cat])

    def _chain(self, start: int, n: int, *avs: list[int] | None) -> list[int]:
        """Read times of a stream of ``n`` vectors at one per cycle from ``start`` that pauses
        while its next source vector is not yet available (per-vector chaining):
        ``r[i] = max(r[i-1] + 1, avail[i])``, i.e. ``r[i] = i + max(start, max_k<=i(avail[k]
        - k))``."""
        live = [a for a in avs if a is not None]
        if not live:
            return list(range(start, start + n))
        a = live[0] if len(live) == 1 else list(map(max, *live))
        acc = accumulate(map(sub, a, range(n)), max, initial=start)
        next(acc)
        return list(map(add, acc, range(n)))

    # -- memory channels ----------------------------------------------------------------------
    def _space(self, a: Any, name: str, allowed: tuple[str, ...]) -> tuple[str, int]:
        if a.space not in allowed:
            raise self.error(f"operand {name} is in {a.space} but must be in "
                             f"{' or '.join(allowed)}")
        return a.space, (self.r[a.base] + a.off if a.base else a.off)

    def _wbuf_wait(self, lo: int, hi: int, write: bool) -> int:
        """Weight-buffer address scoreboard: reads wait for overlapping writes in flight,
        writes for overlapping reads and writes."""
        t = NEG
        now = self.now
        self.wbuf_busy = [b for b in self.wbuf_busy if b[3] > now]
        for b in self.wbuf_busy:
            if b[0] < hi and b[1] > lo and (write or b[2]) and b[3] > t:
                t = b[3]
        return t

    def _commit(self, space: str, counts: tuple[int, ...], until: int, write: bool) -> None:
        nbytes = self.ports[space].commit(counts, until, write)
        self.stats[_SPACE_BYTES[space] + (1 if write else 0)] += nbytes

    def _event(self, unit: int, start: int, end: int, m: Meta) -> None:
        """Unit ``unit`` worked on ``m`` in cycles [start, end): occupancy and trace."""
        if end > start:
            k = O_ATTENTION if unit == U_MPU and m.attention else _UNIT_CLASS[unit]
            self.occ.append((start, end, k))
        if self.trace is not None:
            self.trace.append((unit, m.op, start, end, self.pc))

    def finalize(self, upto: int) -> None:
        """Count cycles [front, upto) by the highest-priority class active in each (a sweep
        over the pending activity intervals); no unit activity can start before the issue
        cycle, so cycles before it are final."""
        f0 = self.front
        if upto <= f0:
            return
        evs = []
        keep = []
        for iv in self.occ:
            s, e, k = iv
            if e > upto:
                keep.append(iv)
            if e > f0 and s < upto:
                evs.append((s if s > f0 else f0, k, 1))
                evs.append((e if e < upto else upto, k, -1))
        st = self.stats
        if not evs:
            st[S_OCC + O_IDLE] += upto - f0
        else:
            evs.sort()
            active = [0] * 6
            t = f0
            for x, k, d in evs:
                if x > t:
                    best = O_IDLE
                    for j in range(6):
                        if active[j]:
                            best = j
                            break
                    st[S_OCC + best] += x - t
                    t = x
                active[k] += d
            if upto > t:
                st[S_OCC + O_IDLE] += upto - t
        self.occ = keep
        self.front = upto

    # -- control ------------------------------------------------------------------------------
    def _op_nop(self, ins: Instruction, m: Meta) -> int:
        t, c = self._pre(m)
        self._issue(t, c)
        self.stats[S_INSTR + m.cls] += 1
        return RUN

    def _op_halt(self, ins: Instruction, m: Meta) -> int:
        t, c = self._pre(m)
        self._issue(t, c)
        self.stats[S_INSTR + m.cls] += 1
        h = self.horizon
        if h[0] > self.now:
            self.stats[S_CRIT + h[1]] += h[0] - self.now
        self.end = max(self.now, h[0])
        self.finalize(self.end)
        self.halted = True
        return HALTED

    def _op_loop(self, ins: Instruction, m: Meta) -> int:
        t, c = self._pre(m)
        count = self._count(ins.count, "count")
        body = ins.body
        end = self.pc + body
        if body < 1 or end >= self.n_prog or self.meta[end].op != "endloop":
            raise self.error(f"the loop body (body={body}) must end with an endloop at pc {end}")
        self._issue(t, c)
        self.stats[S_INSTR + m.cls] += 1
        if count == 0:
            self.npc = end + 1
            self._taken()
            return RUN
        if len(self.loops) >= self.p.loop_depth:
            raise self.error(f"hardware loops nested deeper than core.control.loop_depth = "
                             f"{self.p.loop_depth}")
        self.loops.append([self.pc + 1, end, count, self.pc, 0])
        return RUN

    def _op_endloop(self, ins: Instruction, m: Meta) -> int:
        if not self.loops:
            raise self.error("endloop without an active hardware loop")
        top = self.loops[-1]
        if self.pc != top[1]:
            raise self.error(f"endloop does not close the innermost loop (loop at pc {top[3]})")
        t, c = self._pre(m)
        self._issue(t, c)
        self.stats[S_INSTR + m.cls] += 1
        top[2] -= 1
        if top[2] > 0:
            top[4] += 1
            self.npc = top[0]
            self._taken()
            self.head = (top[3], top[4])
            return HEAD
        self.loops.pop()
        return RUN

    def _op_branch(self, ins: Instruction, m: Meta) -> int:
        t, c = self._pre(m)
        self._issue(t, c)
        self.stats[S_INSTR + m.cls] += 1
        r = self.r
        op = m.op
        if op == "jmp":
            take = True
        else:
            a, b = r[ins.rs1], r[ins.rs2]
            take = (a == b if op == "beq" else a != b if op == "bne" else
                    a < b if op == "blt" else a >= b)
        if take:
            tgt = self.pc + ins.target
            if not 0 <= tgt < self.n_prog:
                raise self.error(f"branch target pc {tgt} is outside the program")
            if self.loops:
                top = self.loops[-1]
                if not top[0] <= tgt <= top[1]:
                    raise self.error(f"branch to pc {tgt} leaves the hardware loop at pc "
                                     f"{top[3]}")
            self.npc = tgt
            self._taken()
        return RUN

    # -- integer ------------------------------------------------------------------------------
    def _set(self, rd: int, v: int, avail: int, cat: int) -> None:
        if rd:
            self.r[rd] = _s64(v)
            self.int_av[rd] = avail
            self.int_cat[rd] = cat

    def _op_int(self, ins: Instruction, m: Meta) -> int:
        t, c = self._pre(m)
        t = self._issue(t, c)
        self.stats[S_INSTR + m.cls] += 1
        r, op = self.r, m.op
        if op == "li":
            v = ins.imm
        elif op == "add":
            v = r[ins.rs1] + r[ins.rs2]
        elif op == "sub":
            v = r[ins.rs1] - r[ins.rs2]
        elif op == "addi":
            v = r[ins.rs1] + ins.imm
        elif op == "muli":
            v = r[ins.rs1] * ins.imm
        elif op in ("shli", "shri"):
            if not 0 <= ins.imm <= 63:
                raise self.error(f"shift amount {ins.imm} is outside 0..63")
            v = r[ins.rs1] << ins.imm if op == "shli" else (r[ins.rs1] & _MASK64) >> ins.imm
        elif op == "andi":
            v = r[ins.rs1] & ins.imm
        else:  # pragma: no cover - every integer op is listed
            raise self.error(f"{op} is not implemented by the timing model")
        self._set(ins.rd, v, t + self.p.int_latency, CONTROL)
        return RUN

    def _op_lw(self, ins: Instruction, m: Meta) -> int:
        t, c = self._pre(m)
        space, addr = self._space(ins.mem, "mem", ("hbm", "ddr"))
        t = self._issue(t, c)
        self.stats[S_INSTR + m.cls] += 1
        v = self.words.get((space, addr), 0)
        self._set(ins.rd, v, t + self.lw_latency[space], CONTROL)
        return RUN

    def _op_sw(self, ins: Instruction, m: Meta) -> int:
        t, c = self._pre(m)
        space, addr = self._space(ins.mem, "mem", ("hbm", "ddr"))
        self._issue(t, c)
        self.stats[S_INSTR + m.cls] += 1
        self.words[(space, addr)] = self.r[ins.rs1] & 0xFFFFFFFF
        return RUN

    # -- matrix -------------------------------------------------------------------------------
    def _op_matrix(self, ins: Instruction, m: Meta) -> int:
        p = self.p
        kt, nt = self._count(ins.kt, "kt"), self._count(ins.nt, "nt")
        if kt < 1 or nt < 1:
            raise self.error(f"a matrix instruction needs kt >= 1 and nt >= 1, got kt={kt}, "
                             f"nt={nt}")
        kts = ins.kt_stride or kt
        batch = ins.batch or 1
        cat = ATTENTION if m.attention else MATRIX
        yv = -(-nt * p.l // p.d)
        xb, yb = self._va(ins.x), self._va(ins.y)
        t, c = self._pre(m)
        av_x, tx, cx = self._src(xb, batch * kt)
        if tx > t:
            t, c = tx, cx
        tw, cw = self._dst(yb, batch * yv)
        if tw > t:
            t, c = tw, cw
        tu, cu = self._unit(U_MPU)
        if tu > t:
            t, c = tu, cu
        wspace, waddr = self._space(ins.w, "w", ("hbm", "ddr", "wbuf"))
        tb = p.tile_bytes
        wcounts = run_counts(self.chan[wspace], waddr, kt * tb, nt, kts * tb)
        wlo, whi = waddr, waddr + ((nt - 1) * kts + kt) * tb
        issue = self._issue(t, c)
        self.stats[S_INSTR + m.cls] += 1
        tiles = nt * kt
        q = issue
        if wspace == "wbuf":
            q = max(q, self._wbuf_wait(wlo, whi, False))
        d0, dur = self.ports[wspace].read(wcounts, q)
        first = -(-dur // tiles)
        # cycles per tile slot = cn / tiles: batch rows, or the weight stream if slower
        cn = max(batch * tiles, dur)
        skey = (kt, nt, batch, cn, tiles)
        sched = self._sched.get(skey)
        if sched is None:
            sched = self._sched[skey] = self._mpu_schedule(kt, nt, batch, cn, tiles)
        stream, out_off, x_off = sched
        start_min = max(issue, self._ready(U_MPU))
        t0 = max(start_min, d0 + first)
        xneed = start_min
        if av_x is not None:
            xneed = max(xneed, max([a - o for a, o in zip(av_x, x_off, strict=True)]))
        t0 = max(t0, xneed)
        d0e = max(d0, t0 - first)
        end_stream = t0 + stream
        self._commit(wspace, wcounts, d0e + stream, False)
        if wspace == "wbuf":
            self.wbuf_busy.append([wlo, whi, 0, end_stream])
        base = t0 + p.fill
        out = [base + o for o in out_off]
        if m.op == "conv1d":
            bspace, baddr = self._space(ins.b, "b", ("hbm", "ddr", "wbuf"))
            bcounts = run_counts(self.chan[bspace], baddr, 2 * nt * p.l)
            bq = issue
            if bspace == "wbuf":
                bq = max(bq, self._wbuf_wait(baddr, baddr + 2 * nt * p.l, False))
            db, durb = self.ports[bspace].read(bcounts, bq)
            self._commit(bspace, bcounts, db + durb, False)
            floor = db + durb + p.accumulate + p.sfu_m
            out = [x if x >= floor else floor for x in out]
        self._write(yb, out, cat)
        self._read(xb, batch * kt, end_stream - 1, cat)
        if m.op == "maskedmm":
            for b in range(batch):
                s = ins.max + b
                self.s_av[s] = max(out[b * yv: (b + 1) * yv]) + p.max_tail
                self.s_cat[s] = cat
                self._done(self.s_av[s], cat)
            self.s_lr[ins.scale] = max(self.s_lr[ins.scale], t0)
        self._unit_done(U_MPU, end_stream, cat)
        st = self.stats
        st[S_BUSY + U_MPU] += stream
        st[S_WSTALL] += max(0, t0 - max(start_min, xneed)) + max(0, dur - batch * tiles)
        st[S_TILES] += tiles
        st[S_MACS] += batch * tiles * p.d * p.l
        st[S_BYTES + (7 if m.attention else 6)] += tiles * tb
        wait = max(start_min, xneed)
        if t0 > wait:  # the MPU is ready but its first weights are not there
            self.occ.append((wait, t0, O_DMA))
        self._event(U_MPU, t0, max(out), m)
        return RUN

    def _mpu_schedule(self, kt: int, nt: int, batch: int, cn: int, cd: int
                      ) -> tuple[int, list[int], list[int]]:
        """The MPU's tile order and its timing, relative to the first tile (docs/timing.md,
        "MPU"): output tiles in zig-zag groups of ``p.zigzag`` (whole output vectors covering
        the accumulator latency); within a group, reduction step k feeds the group's tiles
        back to back, one tile slot (``cn / cd`` cycles) each, and step k + 1 waits until the
        accumulator can take it (``mpu.add_latency`` after step k began, docs/numerics.md: each
        column accumulates over k in order). Returns (stream cycles, per output vector (row
        b-major) the cycle its last partial sum enters the pipeline, per x vector (row
        b-major) the cycle it is first read)."""
        p = self.p
        zig, grp, vpt = p.zigzag, p.group, p.vectors_per_tile
        yv = -(-nt * p.l // p.d)
        add = p.accumulate * cd  # everything below is in 1/cd cycles
        out = [0] * (batch * yv)
        x_off: list[int] = []
        g0 = 0
        q0 = 0
        while q0 < nt:
            zq = min(zig, nt - q0)
            step = max(zq * cn, add)
            if q0 == 0:
                x_off = [-(-(k * step + b * cd) // cd) for b in range(batch) for k in range(kt)]
            last_k = g0 + (kt - 1) * step
            if vpt > 1:
                for n in range(q0, q0 + zq):
                    t = -(-(last_k + (n - q0) * cn) // cd)
                    for j in range(n * vpt, min((n + 1) * vpt, yv)):
                        for b in range(batch):
                            out[b * yv + j] = t + b
            else:
                for j in range(q0 // grp, -(-(q0 + zq) // grp)):
                    r_last = min((j + 1) * grp, nt) - 1 - q0
                    t = -(-(last_k + r_last * cn) // cd)
                    for b in range(batch):
                        out[b * yv + j] = t + b
            g0 = last_k + zq * cn
            q0 += zq
        return -(-g0 // cd), out, x_off

    # -- LUT-GEMM -----------------------------------------------------------------------------
    def _op_lutmv(self, ins: Instruction, m: Meta) -> int:
        """``lutmv`` on the LUT-GEMM unit (docs/timing.md, "LUT-GEMM unit"): the packed stream
        flows group by group through the row lanes (one lane word per lane per cycle) into one
        of two partial-sum banks; each finished group's q + 1 ops per row go through the
        scalers while the lanes fill the other bank."""
        p, lp = self.p, self.p.lut
        if lp is None:
            raise self.error("this core has no LUT-GEMM unit (no lutgemm section in its "
                             "configuration)")
        n, ng = self._count(ins.n, "n"), self._count(ins.ng, "ng")
        gs, q = ins.gs, ins.q
        if not 1 <= q <= lp.max_q:
            raise self.error(f"lutmv q = {q} is outside 1..{lp.max_q} (core.lutgemm.max_q)")
        if ng < 1 or gs < 1 or gs * lp.slice > lp.max_group:
            raise self.error(f"lutmv needs ng >= 1 and 1 <= gs <= {lp.max_group // lp.slice}, "
                             f"got ng={ng}, gs={gs}")
        if not 1 <= n <= lp.max_rows:
            raise self.error(f"lutmv n = {n} is outside 1..{lp.max_rows} (core.lutgemm."
                             "max_rows)")
        batch = ins.batch or 1
        kv, yv = -(-ng * gs * lp.slice // p.d), -(-n // p.d)
        xb, yb = self._va(ins.x), self._va(ins.y)
        t, c = self._pre(m)
        av_x, tx, cx = self._src(xb, batch * kv)
        if tx > t:
            t, c = tx, cx
        tw, cw = self._dst(yb, batch * yv)
        if tw > t:
            t, c = tw, cw
        tu, cu = self._unit(U_LUT)
        if tu > t:
            t, c = tu, cu
        wspace, waddr = self._space(ins.w, "w", ("hbm", "ddr", "wbuf"))
        if waddr % SECTION_ALIGN:
            raise self.error(f"lutmv w = {waddr:#x} is not {SECTION_ALIGN}-byte aligned")
        sb = stream_bytes(n, ng, gs, q, lp.slice)
        # every batch row streams the whole matrix again (the tables hold one token's x)
        wcounts = run_counts(self.chan[wspace], waddr, sb, batch, 0)
        issue = self._issue(t, c)
        self.stats[S_INSTR + m.cls] += 1
        rq = issue
        if wspace == "wbuf":
            rq = max(rq, self._wbuf_wait(waddr, waddr + sb, False))
        d0, dur = self.ports[wspace].read(wcounts, rq)
        tstart = issue  # the builder's first read of x (it runs ahead of busy lanes)
        if av_x is not None:
            okey = (n, ng, gs, q, batch, kv)
            x_off = self._lut_off.get(okey)
            if x_off is None:
                # x vector k of batch row b is first needed for the slice holding its first
                # input, `off` lane cycles after the first slice at the earliest
                per_slice = q * -(-n // lp.lanes)
                x_off = self._lut_off[okey] = [
                    (b * ng * gs + k * p.d // lp.slice) * per_slice
                    for b in range(batch) for k in range(kv)]
            tstart = max(tstart, max([a - o for a, o in zip(av_x, x_off, strict=True)]))
        hs = max(d0, tstart)  # just in time: the stream starts with the first table build
        ngrp = batch * ng
        lanes_at = max(tstart + lp.first_lookup, self._ready(U_LUT))
        lane_end, ends, banks = lp.schedule(
            lanes_at, n, gs, q, [hs + -(-(g + 1) * dur // ngrp) for g in range(ngrp)],
            (self.lut_s[0], self.lut_s[1]))
        self.lut_s = list(banks)
        out: list[int] = []
        for b in range(batch):  # a batch row is done with its last group, then SFU_M
            out.extend([lp.result(ends[(b + 1) * ng - 1], n) + p.sfu_m] * yv)
        if ins.bias:
            bspace, baddr = self._space(ins.b, "b", ("hbm", "ddr", "wbuf"))
            bcounts = run_counts(self.chan[bspace], baddr, 2 * n)
            bq = issue
            if bspace == "wbuf":
                bq = max(bq, self._wbuf_wait(baddr, baddr + 2 * n, False))
            db, durb = self.ports[bspace].read(bcounts, bq)
            self._commit(bspace, bcounts, db + durb, False)
            floor = db + durb + p.sfu_m
            out = [x if x >= floor else floor for x in out]
        self._commit(wspace, wcounts, max(hs + dur, lane_end), False)
        if wspace == "wbuf":
            self.wbuf_busy.append([waddr, waddr + sb, 0, lane_end])
        self._write(yb, out, MATRIX)
        self._read(xb, batch * kv, lane_end - 1, MATRIX)
        self._unit_done(U_LUT, lane_end, MATRIX)
        st = self.stats
        busy = ngrp * lp.lane_cycles(n, gs, q)
        st[S_BUSY + U_LUT] += busy
        st[S_BYTES + 8] += batch * sb
        times = (dur, busy, ngrp * lp.scaler_cycles(n, q))
        st[S_LUT] += dur
        st[S_LUT + 1] += busy
        st[S_LUT + 2] += ngrp * lp.scaler_cycles(n, q)
        st[S_LUT + 3] += lane_end - lanes_at - busy
        st[S_LUT + 4] += batch * n * ng * gs * lp.slice * q
        st[S_LUT + 5 + times.index(max(times))] += max(out) - tstart
        ev = tstart
        if hs > tstart:  # the unit is ready but its first weights are not there
            self.occ.append((tstart, hs, O_DMA))
            ev = hs
        self._event(U_LUT, ev, max(out), m)
        return RUN

    # -- vector -------------------------------------------------------------------------------
    def _op_vector(self, ins: Instruction, m: Meta) -> int:
        n = self._count(ins.n, "n")
        t, c = self._pre(m)
        if n == 0:
            self._issue(t, c)
            self.stats[S_INSTR + m.cls] += 1
            return RUN
        op = m.op
        a, y = self._va(ins.a), self._va(ins.y)
        av_a, ta, ca = self._src(a, n)
        if ta > t:
            t, c = ta, ca
        av_b = None
        if op in ("vadd", "vsub", "vmul"):
            b = self._va(ins.b)
            av_b, tb, cb = self._src(b, n)
            if tb > t:
                t, c = tb, cb
        tw, cw = self._dst(y, n)
        if tw > t:
            t, c = tw, cw
        tu, cu = self._unit(U_VPU)
        if tu > t:
            t, c = tu, cu
        issue = self._issue(t, c)
        self.stats[S_INSTR + m.cls] += 1
        start = max(issue, self._ready(U_VPU))
        reads = self._chain(start, n, av_a, av_b)
        lat = self.vlat[op]
        last = reads[-1]
        self._write(y, [r + lat for r in reads], VECTOR)
        self._read(a, n, last, VECTOR)
        if op in ("vadd", "vsub", "vmul"):
            self._read(b, n, last, VECTOR)
        if m.sreads:
            s = m.sreads[0]
            self.s_lr[s] = max(self.s_lr[s], reads[0])
        self._unit_done(U_VPU, last + 1, VECTOR)
        self.stats[S_BUSY + U_VPU] += n
        self._event(U_VPU, start, last + lat, m)
        return RUN

    def _op_reduce(self, ins: Instruction, m: Meta) -> int:
        p = self.p
        op = m.op
        n = self._count(ins.n, "n")
        nv = -(-n // p.d) if op == "vargmax" else n
        if op in ("vmax", "vargmax") and n == 0:
            raise self.error(f"{op} needs n >= 1")
        t, c = self._pre(m)
        a = self._va(ins.a)
        av_a = None
        if nv:
            av_a, ta, ca = self._src(a, nv)
            if ta > t:
                t, c = ta, ca
        tu, cu = self._unit(U_VPU)
        if tu > t:
            t, c = tu, cu
        issue = self._issue(t, c)
        self.stats[S_INSTR + m.cls] += 1
        start = max(issue, self._ready(U_VPU))
        if nv == 0:  # vacc/vaccsq of nothing: the register becomes 0
            res, last = start + p.vpu_bypass, start
        else:
            reads = self._chain(start, nv, av_a)
            last = reads[-1]
            if op in ("vacc", "vaccsq"):
                # exact fixed-point accumulation (docs/numerics.md §5): the vectors enter the
                # adder tree in order, one per cycle (vaccsq after the square stage); the
                # FP32 result is ready the tree, the wide accumulate and the rounding after
                # the last one
                sq = p.vpu_square if op == "vaccsq" else 0
                e = self.acc_in
                for r in reads:
                    x = r + sq
                    e = x if x > e else e + 1
                self.acc_in = e
                res = e + p.acc_drain
            else:  # vmax/vargmax: comparator tree, then the sequential running maximum
                pre, step = p.cmp_tree, p.vpu_compare
                acc = self.acc[0]
                for r in reads:
                    x = r + pre
                    acc = (x if x > acc else acc) + step
                res = acc
                self.acc[0] = res
            self._read(a, nv, last, VECTOR)
        if op == "vargmax":
            self._set(ins.rd, 0, res, VECTOR)
            self.token_times.append(res)
            if len(self.token_times) == self.snap_at:
                self.finalize(issue)  # count the timeline up to this instruction's issue
                self.snap = list(self.stats)
        else:
            self.s_av[ins.sd] = res
            self.s_cat[ins.sd] = VECTOR
        self._done(res, VECTOR)
        self._unit_done(U_VPU, last + 1, VECTOR)
        self.stats[S_BUSY + U_VPU] += nv
        self._event(U_VPU, start, res, m)
        return RUN

    def _op_scalar(self, ins: Instruction, m: Meta) -> int:
        t, c = self._pre(m)
        tu, cu = self._unit(U_VPU)
        if tu > t:
            t, c = tu, cu
        issue = self._issue(t, c)
        self.stats[S_INSTR + m.cls] += 1
        start = max(issue, self._ready(U_VPU))
        res = start + self.slat[m.op]
        for s in m.sreads:
            self.s_lr[s] = max(self.s_lr[s], start)
        self.s_av[ins.sd] = res
        self.s_cat[ins.sd] = VECTOR
        self._done(res, VECTOR)
        self._unit_done(U_VPU, start + 1, VECTOR)
        self.stats[S_BUSY + U_VPU] += 1
        self._event(U_VPU, start, res, m)
        return RUN

    # -- dma ----------------------------------------------------------------------------------
    def _mem_runs(self, space: str, addr: int, n: int, stride: int) -> tuple[int, ...]:
        if stride % 2:
            raise self.error(f"stride {stride} is not a multiple of 2 bytes (FP16)")
        ch = self.chan[space]
        if stride == 0:
            return run_counts(ch, addr, 2 * n)
        full, rem = divmod(n, self.p.d)
        counts = run_counts(ch, addr, 2 * self.p.d, full, stride)
        if rem:
            extra = run_counts(ch, addr + full * stride, 2 * rem)
            counts = tuple(x + y for x, y in zip(counts, extra, strict=True))
        return counts

    def _op_load(self, ins: Instruction, m: Meta) -> int:
        p = self.p
        n = self._count(ins.n, "n")
        if ins.dst.space != "vrf":
            raise self.error(f"operand dst is in {ins.dst.space} but must be in vrf")
        y = self.r[ins.dst.base] + ins.dst.off if ins.dst.base else ins.dst.off
        space, src = self._space(ins.src, "src", ("hbm", "ddr", "wbuf"))
        t, c = self._pre(m)
        if n == 0:
            self._issue(t, c)
            self.stats[S_INSTR + m.cls] += 1
            return RUN
        nv = -(-n // p.d)
        tw, cw = self._dst(y, nv)
        if tw > t:
            t, c = tw, cw
        tu, cu = self._unit(U_DMA)
        if tu > t:
            t, c = tu, cu
        counts = self._mem_runs(space, src, n, ins.stride)
        issue = self._issue(t, c)
        self.stats[S_INSTR + m.cls] += 1
        q = max(issue, self._ready(U_DMA))
        span = (src, src + 2 * n + (n // p.d) * max(0, ins.stride - 2 * p.d))
        if space == "wbuf":
            q = max(q, self._wbuf_wait(span[0], span[1], False))
        d0, dur = self.ports[space].read(counts, q)
        out = []
        prev = NEG
        for i in range(nv):
            x = d0 + (-(-(i + 1) * dur // nv)) + 1
            prev = x if x > prev + 1 else prev + 1
            out.append(prev)
        self._commit(space, counts, d0 + dur, False)
        if space == "wbuf":
            self.wbuf_busy.append([span[0], span[1], 0, d0 + dur])
        self._write(y, out, DMA)
        self._unit_done(U_DMA, out[-1], DMA)
        self.stats[S_BUSY + U_DMA] += out[-1] - q
        self._event(U_DMA, q, out[-1], m)
        return RUN

    def _op_store(self, ins: Instruction, m: Meta) -> int:
        p = self.p
        n = self._count(ins.n, "n")
        if ins.src.space != "vrf":
            raise self.error(f"operand src is in {ins.src.space} but must be in vrf")
        a = self.r[ins.src.base] + ins.src.off if ins.src.base else ins.src.off
        space, dst = self._space(ins.dst, "dst", ("hbm", "ddr", "wbuf"))
        t, c = self._pre(m)
        if n == 0:
            self._issue(t, c)
            self.stats[S_INSTR + m.cls] += 1
            return RUN
        nv = -(-n // p.d)
        av, ta, ca = self._src(a, nv)
        if ta > t:
            t, c = ta, ca
        tu, cu = self._unit(U_DMA)
        if tu > t:
            t, c = tu, cu
        stride = ins.stride
        if m.op == "store_t":
            if stride % 2:
                raise self.error(f"stride {stride} is not a multiple of 2 bytes (FP16)")
            ch = self.chan[space]
            counts = store_t_counts(ch, store_t_key(ch, dst), n, stride, p.d, p.l)
            span = (dst, dst + ((n - 1) // p.l) * stride + p.l * 2 * p.d)
        else:
            counts = self._mem_runs(space, dst, n, stride)
            span = (dst, dst + 2 * n + (n // p.d) * max(0, stride - 2 * p.d))
        issue = self._issue(t, c)
        self.stats[S_INSTR + m.cls] += 1
        start = max(issue, self._ready(U_DMA))
        reads = self._chain(start, nv, av)
        ready = reads[0] + 1
        if space == "wbuf":
            ready = max(ready, self._wbuf_wait(span[0], span[1], True))
        w0, dur = self.ports[space].write(counts, ready)
        end = max(w0 + dur, reads[-1] + 1)
        self._commit(space, counts, end, True)
        if space == "wbuf":
            self.wbuf_busy.append([span[0], span[1], 1, end])
        self._read(a, nv, reads[-1], DMA)
        self._done(end, DMA)
        self._unit_done(U_DMA, end, DMA)
        self.stats[S_BUSY + U_DMA] += end - start
        self._event(U_DMA, start, end, m)
        return RUN

    def _op_copy(self, ins: Instruction, m: Meta) -> int:
        n = self._count(ins.n, "n")
        sspace, src = self._space(ins.src, "src", ("hbm", "ddr", "wbuf"))
        dspace, dst = self._space(ins.dst, "dst", ("hbm", "ddr", "wbuf"))
        t, c = self._pre(m)
        tu, cu = self._unit(U_DMA)
        if tu > t:
            t, c = tu, cu
        issue = self._issue(t, c)
        self.stats[S_INSTR + m.cls] += 1
        if n == 0:
            return RUN
        q = max(issue, self._ready(U_DMA))
        if sspace == "wbuf":
            q = max(q, self._wbuf_wait(src, src + 2 * n, False))
        rc = run_counts(self.chan[sspace], src, 2 * n)
        wc = run_counts(self.chan[dspace], dst, 2 * n)
        d0, rdur = self.ports[sspace].read(rc, q)
        self._commit(sspace, rc, d0 + rdur, False)
        ready = d0 + 1
        if dspace == "wbuf":
            ready = max(ready, self._wbuf_wait(dst, dst + 2 * n, True))
        w0, wdur = self.ports[dspace].write(wc, ready)
        end = max(w0 + wdur, d0 + rdur + 1)
        self._commit(dspace, wc, end, True)
        if sspace == "wbuf":
            self.wbuf_busy.append([src, src + 2 * n, 0, d0 + rdur])
        if dspace == "wbuf":
            self.wbuf_busy.append([dst, dst + 2 * n, 1, end])
        self._done(end, DMA)
        self._unit_done(U_DMA, end, DMA)
        self.stats[S_BUSY + U_DMA] += end - q
        self._event(U_DMA, q, end, m)
        return RUN

    # -- router -------------------------------------------------------------------------------
    def _no_ring(self, ins: Instruction) -> TimingError:
        return self.error(f"{ins.op} needs the ring, but this appliance has only "
                          f"{self.n_cards} card")

    def _op_send(self, ins: Instruction, m: Meta) -> int:
        if self.tx is None:
            raise self._no_ring(ins)
        n = self._count(ins.n, "n")
        v = self._va(ins.v)
        t, c = self._pre(m)
        if n == 0:
            self._issue(t, c)
            self.stats[S_INSTR + m.cls] += 1
            return RUN
        av, ta, ca = self._src(v, n)
        if ta > t:
            t, c = ta, ca
        tu, cu = self._unit(U_TX)
        if tu > t:
            t, c = tu, cu
        issue = self._issue(t, c)
        self.stats[S_INSTR + m.cls] += 1
        start = max(issue, self._ready(U_TX))
        st = {"i": 0, "ready": start - 1}  # progress kept while blocked on credits
        self.pending = lambda: self._send_run(ins, m, v, n, av, start, st)
        return self.pending()

    def _send_run(self, ins: Instruction, m: Meta, v: int, n: int, av: list[int] | None,
                  start: int, st: dict[str, Any]) -> int:
        p, lk = self.p, self.tx
        assert lk is not None
        q = p.ser_den
        i, ready = st["i"], st["ready"]
        rl, ser, credit_lat, hop = p.router_latency, p.ser_num, p.credit_latency, p.hop
        fifo = p.fifo
        pops, pb, arr = lk.pops, lk.pop_base, lk.arr
        free_q = lk.free_q
        sent = lk.sent
        while i < n:
            k = sent - fifo
            if k < 0:
                pop = NEG
            elif k - pb < len(pops):
                pop = pops[k - pb]
            else:
                st["i"], st["ready"] = i, ready
                lk.free_q, lk.sent = free_q, sent
                self.blocked = (f"waits for room in card {lk.dst}'s receive FIFO "
                                f"({i} of {n} vectors sent)")
                return BLOCKED
            ready += 1
            if av is not None and av[i] > ready:
                ready = av[i]
            tq = (ready + rl) * q
            if free_q > tq:
                tq = free_q
            cq = (pop + credit_lat) * q
            if cq > tq:
                tq = cq
            free_q = tq + ser
            arr.append(-(-free_q // q) + hop)
            sent += 1
            read = -(-tq // q) - rl  # the vector leaves the VRF as it enters the serialiser
            if ready < read:
                ready = read
            i += 1
        lk.free_q, lk.sent = free_q, sent
        self.pending = None
        self.blocked = None
        self._read(v, n, ready, RING)
        end = ready + 1
        self._unit_done(U_TX, end, RING)
        done = -(-lk.free_q // q)
        self._done(done, RING)
        self.stats[S_SENT] += n
        self.stats[S_BUSY + U_TX] += done - start
        lk.maybe_trim()
        self._event(U_TX, start, done, m)
        self.pc = self.npc
        return RUN

    def _op_recv(self, ins: Instruction, m: Meta) -> int:
        if self.rx is None:
            raise self._no_ring(ins)
        n = self._count(ins.n, "n")
        v = self._va(ins.v)
        t, c = self._pre(m)
        if n == 0:
            self._issue(t, c)
            self.stats[S_INSTR + m.cls] += 1
            return RUN
        tw, cw = self._dst(v, n)
        if tw > t:
            t, c = tw, cw
        tu, cu = self._unit(U_RX)
        if tu > t:
            t, c = tu, cu
        issue = self._issue(t, c)
        self.stats[S_INSTR + m.cls] += 1
        start = max(issue, self._ready(U_RX))
        out: list[int] = []
        self.pending = lambda: self._recv_run(ins, m, v, n, start, out)
        return self.pending()

    def _recv_run(self, ins: Instruction, m: Meta, v: int, n: int, start: int,
                  out: list[int]) -> int:
        lk = self.rx
        assert lk is not None
        pop = out[-1] - 1 if out else start - 1
        arr, ab = lk.arr, lk.arr_base
        popped = lk.popped
        pops = lk.pops
        k = len(out)
        while k < n:
            j = popped - ab
            if j >= len(arr):
                lk.popped = popped
                self.blocked = (f"waits for {n - k} more vectors from card {lk.src}")
                return BLOCKED
            pop += 1
            a = arr[j]
            if a > pop:
                pop = a
            pops.append(pop)
            popped += 1
            out.append(pop + 1)  # written into the VRF in the pop cycle
            k += 1
        lk.popped = popped
        lk.maybe_trim()
        self.pending = None
        self.blocked = None
        self._write(v, out, RING)
        self._unit_done(U_RX, out[-1], RING)
        self.stats[S_RECV] += n
        self.stats[S_BUSY + U_RX] += out[-1] - start
        self._event(U_RX, start, out[-1], m)
        self.pc = self.npc
        return RUN

    # -- memoisation support (sim/timing/memo.py) ---------------------------------------------
    def key(self, ref: int) -> tuple:
        """Everything that decides this card's future timing except the integer register
        values, relative to cycle ``ref``. Times that can no longer influence anything (they
        are at or before the earliest cycle they are compared against) are clamped to that
        cycle, so two states that behave the same compare equal (docs/timing.md, "Memo")."""
        now = self.now

        def f(t: int, floor: int = now) -> int:
            return (t if t > floor else floor) - ref

        ends = tuple(tuple((f(e), c if e > now else -1) for e, c in u) for u in self.ends)
        vw = tuple((w[0], w[1], tuple(f(x) for x in w[2]), w[3])
                   for w in self.vw if w[4] > now)
        vr = tuple((r[0], r[1], f(r[2], now - 1), r[3]) for r in self.vr if r[2] >= now)
        ints = tuple((i, f(x), self.int_cat[i]) for i, x in enumerate(self.int_av) if x > now)
        sav = tuple((i, f(x), self.s_cat[i]) for i, x in enumerate(self.s_av) if x > now)
        slr = tuple((i, f(x, now - 1)) for i, x in enumerate(self.s_lr) if x >= now)
        mem = []
        for port in self.ports.values():
            mem.append(tuple(f(x) for x in port.rfree))
            mem.append(tuple(f(x) for x in port.wfree))
        wb = tuple((b[0], b[1], b[2], f(b[3])) for b in self.wbuf_busy if b[3] > now)
        occ = tuple(sorted((max(s, now) - ref, e - ref, k) for s, e, k in self.occ if e > now))
        h = self.horizon
        loops = tuple((lp[0], lp[1], lp[3]) if k == len(self.loops) - 1
                      else (lp[0], lp[1], lp[3], lp[2], lp[4])
                      for k, lp in enumerate(self.loops))
        return (self.pc, now - ref, ends, (f(self.acc[0]), self.acc[1] if self.acc[0] > now
                                          else -1), f(self.acc_in, now - 1),
                tuple(f(x) for x in self.lut_s),
                vw, vr, ints, sav, slr, tuple(mem), wb, (f(h[0]), h[1] if h[0] > now else -1),
                loops, occ, f(self.front))

    def counters(self) -> tuple[list[int], dict[str, dict[tuple, list[int]]]]:
        """A copy of the additive statistics (memoisation records)."""
        return list(self.stats), {k: {c: list(u) for c, u in port.use.items()}
                                  for k, port in self.ports.items()}

    def add_counters(self, m: int, before: tuple, after: tuple) -> None:
        """Add ``m`` times the statistics accumulated between two records."""
        self.stats = [s + m * (b - a) for s, a, b in zip(self.stats, before[0], after[0],
                                                         strict=True)]
        for k, port in self.ports.items():
            b0, b1 = before[1][k], after[1][k]
            for c, u1 in b1.items():
                u0 = b0.get(c, [0, 0])
                u = port.use.setdefault(c, [0, 0])
                u[0] += m * (u1[0] - u0[0])
                u[1] += m * (u1[1] - u0[1])

    def shift(self, dt: int) -> None:
        """Move every time of the state ``dt`` cycles later (a replayed stretch of iterations)."""
        def sh(t: int) -> int:
            return t + dt if t > NEG else t

        self.now += dt
        for u in self.ends:
            for e in u:
                e[0] = sh(e[0])
        self.acc[0] = sh(self.acc[0])
        self.acc_in = sh(self.acc_in)
        self.lut_s = [sh(x) for x in self.lut_s]
        for w in self.vw:
            w[2] = [sh(x) for x in w[2]]
            w[4] = sh(w[4])
        for r in self.vr:
            r[2] = sh(r[2])
        self.int_av = [sh(x) for x in self.int_av]
        self.s_av = [sh(x) for x in self.s_av]
        self.s_lr = [sh(x) for x in self.s_lr]
        for port in self.ports.values():
            port.rfree = [sh(x) for x in port.rfree]
            port.wfree = [sh(x) for x in port.wfree]
        for b in self.wbuf_busy:
            b[3] = sh(b[3])
        self.horizon[0] = sh(self.horizon[0])
        self.occ = [(s + dt, e + dt, k) for s, e, k in self.occ]
        self.front += dt
