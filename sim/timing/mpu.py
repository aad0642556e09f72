"""The MPU of one card: ``conv1d``, ``maskedmm``, ``mm`` (docs/timing.md, "MPU").

Mirrors ``rtl/mpu``. The tile order and its timing (:func:`schedule`) follow the RTL unit's
contract (:func:`dfx.rtl.mpu.tile_order` with block width ``Mpu.interleave``, bubbles where a
block cannot cover the accumulator latency); every latency (``fill``, the row maximum, the
bias) is the RTL unit's own property, read by :func:`~.params.derive`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dfx.isa.encoding import Instruction

from .memory import run_counts
from .stats import (
    ATTENTION,
    MATRIX,
    O_DMA,
    RUN,
    S_BUSY,
    S_BYTES,
    S_INSTR,
    S_MACS,
    S_TILES,
    S_WSTALL,
    U_MPU,
)

if TYPE_CHECKING:
    from .controller import Meta
    from .params import Params


def schedule(p: Params, kt: int, nt: int, batch: int, cn: int, cd: int
             ) -> tuple[int, list[int], list[int]]:
    """The MPU's tile order and its timing, relative to the first tile (docs/timing.md,
    "MPU"): output tiles in zig-zag blocks of ``p.zigzag`` (the RTL's ``interleave``: whole
    output vectors covering the accumulator latency); within a block, reduction step k feeds
    the block's tiles back to back, one tile slot (``cn / cd`` cycles) each, and step k + 1
    waits until the accumulator can take it (``p.accumulate`` after step k began: each column
    accumulates over k in order, docs/numerics.md; the RTL inserts bubbles). Returns (stream
    cycles, per output vector (row b-major) the slot of its last tile in the last reduction
    step, per x vector (row b-major) the cycle it is first read)."""
    zig, grp, vpt = p.zigzag, p.group, p.vectors_per_tile
    yv = -(-nt * p.l // p.d)
    acc = p.accumulate * cd  # everything below is in 1/cd cycles
    out = [0] * (batch * yv)
    x_off: list[int] = []
    g0 = 0
    q0 = 0
    while q0 < nt:
        zq = min(zig, nt - q0)
        step = max(zq * cn, acc)
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


class MpuUnit:
    """Mixin of :class:`~.card.CardSim`: the matrix instructions."""

    OPS = {"conv1d": "_op_matrix", "maskedmm": "_op_matrix", "mm": "_op_matrix"}

    p: Params
    stats: list[int]

    def _init_mpu(self) -> None:
        self._sched: dict[tuple[int, ...], tuple[int, list[int], list[int]]] = {}

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
            sched = self._sched[skey] = schedule(p, kt, nt, batch, cn, tiles)
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
            # the bias (nt groups of l FP16) enters SFU_M with each group's sums: no output
            # before the last group's bias is in + the RTL's bias latency
            floor = self._read_bias(ins.b, 2 * nt * p.l, issue) + p.mpu_bias
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
