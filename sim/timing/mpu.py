"""The MPU of one card with its operand collector and weight stream: ``conv1d``, ``maskedmm``,
``mm`` (docs/timing.md, "MPU").

Mirrors ``rtl/core/mpu_port.py`` (the collector), ``rtl/mpu`` (the unit: tile order
:func:`dfx.rtl.mpu.tile_order` with block width ``Mpu.interleave``, bubbles where a block
cannot cover the accumulator latency, every latency its own property) and
``rtl/dma/weights.py`` (the weight streamer):

* the streamer takes the command from its queue the cycle after issue (or after its previous
  command's last op), then, per batch row, one op per cycle as the space takes them: per
  output block the block's bias (conv1d: one or two single-row ops) and its ``kt·gb`` tiles
  (one row each, a beat on every HBM port); a cycle with no op between batch rows;
* the collector takes the instruction from the issue queue (the cycle after its push, once
  its previous instruction's last x read is done), sends the MPU the row's command the cycle
  after, and reads x for every tile in tile order from the cycle after that, each no earlier
  than it is available (chaining), up to ``mpu_slots`` ahead of the tiles;
* the MPU takes tile i once its row has arrived and its x has been read (the cycle before),
  one per cycle (``add_latency`` between the starts of a short block's rounds); an output
  vector is valid ``Mpu.latency`` after its last tile, written into the VRF in that cycle;
  a row maximum ``Mpu.rowmax_latency`` after the row's last tile.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

from dfx.isa.encoding import Instruction

from .memory import run_counts
from .memsys import Space
from .stats import (
    ATTENTION,
    MATRIX,
    NEG,
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


class Rows:
    """When the tile rows of one block reach the collector: listed for the first ones, then
    one every ``slope`` cycles."""

    __slots__ = ("head", "slope")

    def __init__(self, head: list[int], slope: int) -> None:
        self.head, self.slope = head, slope

    def at(self, i: int) -> int:
        h = self.head
        n = len(h)
        return h[i] if i < n else h[-1] + self.slope * (i - n + 1)


class MpuUnit:
    """Mixin of :class:`~.card.CardSim`: the matrix instructions."""

    OPS = {"conv1d": "_op_matrix", "maskedmm": "_op_matrix", "mm": "_op_matrix"}

    p: Params
    stats: list[int]
    spaces: dict[str, Space]

    def _init_mpu(self) -> None:
        pass

    def _reset_mpu(self) -> None:
        p = self.p
        self.mp_free = NEG  # the collector takes its next instruction from this cycle
        self.mp_outs: deque[int] = deque([NEG] * p.mpu_outs, maxlen=p.mpu_outs)
        self.mu_last = NEG  # the MPU took its last tile in this cycle
        # the cycles of the MPU's last ``mpu_slots`` tiles (oldest first): the x buffer's
        # slots, shared by all instructions, free as their tiles are taken
        self.mu_tiles: deque[int] = deque([NEG] * p.mpu_slots, maxlen=p.mpu_slots)
        self.ws_takes: deque[int] = deque([NEG] * p.mem.ws_cmd_depth,
                                          maxlen=p.mem.ws_cmd_depth)
        self.ws_idle = NEG  # the weight streamer takes its next command from this cycle

    def _key_mpu(self, f: Any, now: int) -> tuple:
        return (f(self.mp_free), tuple(f(x, now - 1) for x in self.mp_outs),
                f(self.mu_last, now - 1), tuple(f(x, now - 1) for x in self.ws_takes),
                f(self.ws_idle), tuple(f(x, now - 1) for x in self.mu_tiles))

    def _shift_mpu(self, sh: Any) -> None:
        self.mp_free, self.mu_last, self.ws_idle = (sh(self.mp_free), sh(self.mu_last),
                                                    sh(self.ws_idle))
        self.mp_outs = deque((sh(x) for x in self.mp_outs), maxlen=self.mp_outs.maxlen)
        self.ws_takes = deque((sh(x) for x in self.ws_takes), maxlen=self.ws_takes.maxlen)
        self.mu_tiles = deque((sh(x) for x in self.mu_tiles), maxlen=self.mu_tiles.maxlen)

    # -- the weight rows --------------------------------------------------------------------
    def _tile_run(self, sp: Space, tv: int, m: int) -> tuple[int, Rows]:
        """``m`` tile ops (one row each, every beat) presented from ``tv``, one per cycle as
        the space takes them: (the last op's acceptance, the rows' arrival). On HBM each op is
        a one-beat read on every port: port c dequeues op i at ``max(a_i + 1, D_c + i)`` (its
        backlog and pending writes give ``D_c`` for the first), the space takes op i no
        earlier than op i - op_depth left every port, and the row of op i arrives
        ``r_to_row`` after its slowest beat, each port's beat being ``max(AR + latency, its
        previous beat + s)``: closed forms after the first ``op_depth`` ops."""
        mm = self.p.mem
        if sp.kind != "hbm":
            times = []
            a = tv - 1
            for _ in range(m):
                a, rowt = self._read_row(sp, a + 1, 0, 0, mm.ports - 1, "mpu")
                times.append(rowt)
            return a, Rows(times, times[-1] - times[-2] if m > 1 else 1)
        k = mm.op_depth
        a0 = sp.accept(tv)
        j0 = sp.j
        chans = [sp.uni, *sp.exc.values()]
        dcs = [max(a0 + 1, c.bl + j0, c.wr_b + 1) for c in chans]
        big = max(dcs)
        acc = [a0]
        for i in range(1, k):
            acc.append(max(acc[-1] + 1, sp.deq[i] + 1))

        def a_at(i: int) -> int:
            return acc[i] if i < k else max(acc[-1] + i - k + 1, big + i - k + 1)

        s = -(-sp.cost // sp.rate)  # cycles of a one-beat transfer
        lat, turn = sp.lat, sp.turn
        bmax = max(c.free + turn if c.wdir else c.free for c in chans) - s
        head = []
        for i in range(min(m, k + 1)):
            dq = max(a_at(i) + 1, big + i)
            bmax = max(dq + 1 + lat, bmax + s)
            head.append(bmax + mm.r_to_row)
        head[0] = max(head[0], sp.row_taken + 1, sp.row_out + 1, self.crow["mpu"] + 1)
        for i in range(1, len(head)):  # rows leave one per cycle
            if head[i] <= head[i - 1]:
                head[i] = head[i - 1] + 1
        a_last = a_at(m - 1)
        for c, d in zip(chans, dcs, strict=True):
            f = c.free + turn if c.wdir else c.free
            b0 = max(d + 1 + lat, f)
            dl = max(a_last + 1, d + m - 1)
            last = max(b0 + s * (m - 1), dl + 1 + lat)
            c.free, c.wdir = last + s, False
            if last > c.rd_recv:
                c.rd_recv = last
            b = dl - (j0 + m - 1)
            if b > c.bl:
                c.bl = b
                if b > sp.bl:
                    sp.bl = b
        sp.settle()
        sp.acc = a_last
        for i in range(max(0, m - k), m):
            sp.deq.append(max(a_at(i) + 1, big + i))
        sp.j = j0 + m
        rows = Rows(head, s)
        sp.row_out = rows.at(m - 1)
        return a_last, rows

    # -- the instruction ----------------------------------------------------------------------
    def _op_matrix(self, ins: Instruction, m: Meta) -> int:  # noqa: C901 - one pipeline
        p = self.p
        mm = p.mem
        kt, nt = self._count(ins.kt, "kt"), self._count(ins.nt, "nt")
        if kt < 1 or nt < 1:
            raise self.error(f"a matrix instruction needs kt >= 1 and nt >= 1, got kt={kt}, "
                             f"nt={nt}")
        kts = ins.kt_stride or kt
        batch = ins.batch or 1
        cat = ATTENTION if m.attention else MATRIX
        yv = -(-nt * p.l // p.d)
        xb, yb = self._va(ins.x), self._va(ins.y)
        wspace, waddr = self._space(ins.w, "w", ("hbm", "ddr", "wbuf"))
        conv = m.op == "conv1d"
        bspace, baddr = (self._space(ins.b, "b", ("hbm", "ddr", "wbuf")) if conv
                         else (wspace, 0))
        t, c = self._pre(m)
        av_x = self._src(xb, batch * kt)
        tw, cw = self._dst(yb, batch * yv)
        if tw > t:
            t, c = tw, cw
        t = self._sb(t, True, True)
        tu, cu = self._unit(U_MPU, cat)
        if tu > t:
            t, c = tu, cu
        # the weight streamer takes the command: room in its queue and the order queues
        if self.ws_takes[0] + 1 > t:
            t = self.ws_takes[0] + 1
        for s_ in dict.fromkeys((wspace, bspace)):
            t = self.spaces[s_].claim_ready(t)
        issue = self._issue(t, c)
        self.stats[S_INSTR + m.cls] += 1
        # the collector takes it
        take = max(issue + 1, self.mp_free, self.mp_outs[0] + 1)
        self._took(U_MPU, take)
        # the streamer
        g = max(issue + 1, self.ws_idle)
        self.ws_takes.append(g)
        tv = issue + mm.cmd_to_op["mpu"] + (g - issue - 1)
        wsp, bsp = self.spaces[wspace], self.spaces[bspace]
        wsp.begin(self.now)
        if bsp is not wsp:
            bsp.begin(self.now)
        zig, acc_lat, grp = p.zigzag, p.accumulate, p.group
        blocks = [(q0, min(zig, nt - q0)) for q0 in range(0, nt, zig)]
        tile_bytes = p.tile_bytes
        out: list[int] = []
        maxes: list[int] = []
        prev = self.mu_last  # the MPU's last tile
        cmd = take + 1  # the row's MPU command accepted
        last_read = take
        first_tile = NEG
        stall = 0
        for b in range(batch):
            xfirst = NEG  # the row's first x read
            row_steps = []  # (index of the step's first tile in the row, P, rows, i0 in run)
            idx = 0
            for q0, gb in blocks:
                if conv:  # the block's bias: one or two single-row ops
                    for row, lo, hi in self._unit_rows(baddr + q0 * 2 * p.l, gb * 2 * p.l):
                        a, rowt = self._read_row(bsp, tv, row, lo, hi, "mpu")
                        bsp.row_taken = rowt
                        tv = a + 1
                a_last, rows = self._tile_run(wsp, tv, kt * gb)
                tv = a_last + 1
                x0 = max(prev + 1, cmd + 2)
                if q0 == 0:  # x read 0 needs a slot: the tile mpu_slots back was taken
                    xa0 = av_x[b * kt] if av_x is not None else NEG
                    xfirst = max(cmd + 1, xa0, self.mu_tiles[0] + 1)
                # without bubbles (the block covers the accumulator) and with x already there,
                # the block's tiles are contiguous: P(i) = max(x0 + i, row(i)) (rows come at
                # least one cycle apart)
                fast = (gb >= acc_lat or kt == 1) and (
                    q0 > 0 or av_x is None
                    or all(av_x[b * kt + k] + 1 <= x0 + k * gb for k in range(kt)))
                if fast:
                    mb = kt * gb
                    if first_tile == NEG:
                        first_tile = max(x0, rows.at(0))
                        stall = max(0, rows.at(0) - x0)
                    row_steps.append((idx, x0, rows, 0))
                    prev = max(x0 + mb - 1, rows.at(mb - 1))
                    i0 = (kt - 1) * gb
                    for j in range(q0 // grp, -(-(q0 + gb) // grp)):
                        i = i0 + min((j + 1) * grp, nt) - 1 - q0
                        out.append(max(x0 + i, rows.at(i)) + p.fill + 1)
                    idx += mb
                    wsp.row_taken = prev
                    self.crow["mpu"] = prev
                    continue
                for k in range(kt):
                    i0 = k * gb
                    x = max(prev + 1, rows.at(i0), cmd + 2)
                    if q0 == 0:  # block 0 reads each x vector for the first time
                        xa = av_x[b * kt + k] if av_x is not None else NEG
                        if xa + 1 > x:
                            x = xa + 1
                    if first_tile == NEG:
                        first_tile = x
                        stall = max(0, rows.at(i0) - max(prev + 1, cmd + 2))
                    row_steps.append((idx, x, rows, i0))
                    last = max(x + gb - 1, rows.at(i0 + gb - 1))
                    idx += gb
                    prev = last + (acc_lat - gb if gb < acc_lat and k < kt - 1 else 0)
                    if k == kt - 1:  # the block's output vectors complete in its last round
                        for j in range(q0 // grp, -(-(q0 + gb) // grp)):
                            r_last = min((j + 1) * grp, nt) - 1 - q0
                            pt = max(x + r_last, rows.at(i0 + r_last))
                            out.append(pt + p.fill + 1)
                wsp.row_taken = prev
                self.crow["mpu"] = prev
            tiles = idx

            def p_at(i: int, row_steps: list = row_steps) -> int:
                for s0, x0, rw, i0 in reversed(row_steps):
                    if i >= s0:
                        return max(x0 + i - s0, rw.at(i0 + i - s0))
                return NEG

            # the last x read: up to mpu_slots tiles ahead of the MPU (its own or, for the
            # first reads, earlier rows' and instructions'), one per cycle
            ns = p.mpu_slots
            last_read = max(xfirst + tiles - 1, p_at(tiles - 1 - ns) + 1 if tiles > ns
                            else self.mu_tiles[tiles - 1] + 1)
            for i in range(max(0, tiles - ns), tiles):
                self.mu_tiles.append(p_at(i))
            if m.op == "maskedmm":
                maxes.append(prev + p.rowmax + 1)
            cmd = last_read + 1
            tv += 1  # the streamer's row state
        tv -= 1
        wsp.end()
        if bsp is not wsp:
            bsp.end()
        self.ws_idle = tv
        self.mu_last = prev
        self.mp_free = last_read
        self._write(yb, out, cat)
        self.mp_outs.append(max(out) - 1)
        self._read(xb, batch * kt, last_read, cat)
        if m.op == "maskedmm":
            for b, x in enumerate(maxes):
                s = ins.max + b
                self.s_av[s] = x
                self.s_cat[s] = cat
                self._done(self.s_av[s], cat)
        # memory traffic and statistics
        tiles = nt * kt
        wcounts = run_counts(self.chan[wspace], waddr, kt * tile_bytes, nt, kts * tile_bytes)
        for _ in range(batch):
            self._count_bytes(wspace, wcounts, False)
            if conv:
                self._count_bytes(bspace, run_counts(self.chan[bspace], baddr, 2 * nt * p.l),
                                  False)
        st = self.stats
        st[S_BUSY + U_MPU] += prev + 1 - first_tile
        st[S_WSTALL] += stall
        st[S_TILES] += tiles
        st[S_MACS] += batch * tiles * p.d * p.l
        st[S_BYTES + (7 if m.attention else 6)] += batch * tiles * tile_bytes
        if stall:  # the MPU is ready but its first weights are not there
            self.occ.append((first_tile - stall, first_tile, O_DMA))
        self._event(U_MPU, first_tile, max(out), m)
        return RUN
