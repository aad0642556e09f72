"""The LUT-GEMM unit of one card: ``lutmv`` (docs/timing.md, "LUT-GEMM unit").

Mirrors ``rtl/lutgemm`` (table builder, row lanes writing exact partial sums into one of two
banks, a scale stage of ``scalers`` multiply-accumulate units reading the other bank), its
collector and epilogue (``rtl/core/lut_port.py``) and the stream reader (``rtl/dma/
lutstream.py``); every latency is the RTL components' own property (:meth:`LutParams.from_rtl`).
Checked against the core RTL cycle for cycle (tests/sim/timing/test_core_timing.py).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dfx.isa.encoding import Instruction
from dfx.isa.golden.lutgemm import SECTION_ALIGN, section_bytes, stream_bytes

from .memory import run_counts
from .stats import MATRIX, NEG, RUN, S_BUSY, S_BYTES, S_INSTR, S_LUT, U_LUT

if TYPE_CHECKING:
    from .controller import Meta
    from .params import Params


@dataclass(frozen=True)
class LutParams:
    """The LUT-GEMM unit in cycles (``core.lutgemm`` through ``LutGemm.from_core(core)``)."""

    lanes: int  # row lanes; each takes one lane word (slice sign bits) per cycle
    slice: int  # inputs per lane word (mu * keys)
    scalers: int  # shared scale units (one op per cycle each)
    first_lookup: int  # a slice's x read -> the lanes' first look-up in its tables
    handover: int  # a group's last lane word -> the scale stage's first op on it
    result_latency: int  # a command's last scale op -> its last output beat valid
    max_q: int
    max_rows: int
    max_group: int

    @classmethod
    def from_rtl(cls, unit: Any) -> LutParams:
        """The parameters of a :class:`dfx.rtl.lutgemm.LutGemm` (its read-only properties)."""
        return cls(lanes=unit.lanes, slice=unit.slice, scalers=unit.scalers,
                   first_lookup=unit.first_lookup_latency, handover=unit.handover_latency,
                   result_latency=unit.result_latency, max_q=unit.max_q,
                   max_rows=unit.max_rows, max_group=unit.max_group)

    def lane_cycles(self, n: int, gs: int, q: int) -> int:
        """Lane cycles of one group: gs slices x q planes x ceil(n / lanes) row batches (the
        RTL's ``lane_cycles`` for one group)."""
        return gs * q * -(-n // self.lanes)

    def scaler_cycles(self, n: int, q: int) -> int:
        """Scale-stage cycles of one group: scaler j owns the row chunks ``c * scalers + j``;
        for each of the ``ceil(n / scalers)`` chunks it issues the q + 1 terms (alpha_b * P[G,
        b], then z * X[G]) on consecutive cycles. The terms add exactly into a fixed-point row
        accumulator (docs/lutgemm.md), so ops on one row need no spacing (the RTL's
        ``scaler_cycles``)."""
        return (q + 1) * -(-n // self.scalers)


class LutUnit:
    """Mixin of :class:`~.card.CardSim`: ``lutmv`` (the unit, its collector, its stream
    reader and the epilogue of ``rtl/core/lut_port.py``)."""

    OPS = {"lutmv": "_op_lutmv"}

    p: Params
    stats: list[int]

    def _init_lut(self) -> None:
        self._lut_off: dict[tuple[int, ...], list[int]] = {}

    def _reset_lut(self) -> None:
        p = self.p
        self.lut_s = [NEG, NEG]  # scalers: end of the second-to-last and last group round
        self.lut_lanes = NEG  # the lanes are done with the last group
        self.lut_gear = NEG  # the stream reader's gearbox served its last piece
        self.lut_feed = NEG  # the epilogue took its last group of rows
        self.lp_free = NEG  # the collector takes its next instruction from this cycle
        self.lp_outs: deque[int] = deque([NEG] * p.lut_outs, maxlen=p.lut_outs)
        depth = p.mem.lut_cmd_depth
        self.ls_takes: deque[int] = deque([NEG] * depth, maxlen=depth)
        self.ls_idle = NEG  # the stream reader takes its next command from this cycle
        # the x vectors in the collector's buffer (lut_slots, shared by all rows and
        # instructions): when the unit takes each one's last slice
        self.lut_vtaken: deque[int] = deque([NEG] * p.lut_slots, maxlen=p.lut_slots)

    def _key_lut(self, f: Any, now: int) -> tuple:
        return (tuple(f(x, now - 1) for x in self.lut_s), f(self.lut_lanes, now - 1),
                f(self.lut_gear, now - 1), f(self.lut_feed, now - 1), f(self.lp_free),
                tuple(f(x, now - 1) for x in self.lp_outs),
                tuple(f(x, now - 1) for x in self.ls_takes), f(self.ls_idle),
                tuple(f(x, now - 1) for x in self.lut_vtaken))

    def _shift_lut(self, sh: Any) -> None:
        self.lut_s = [sh(x) for x in self.lut_s]
        self.lut_lanes, self.lut_gear, self.lut_feed = (sh(self.lut_lanes), sh(self.lut_gear),
                                                        sh(self.lut_feed))
        self.lp_free, self.ls_idle = sh(self.lp_free), sh(self.ls_idle)
        self.lp_outs = deque((sh(x) for x in self.lp_outs), maxlen=self.lp_outs.maxlen)
        self.ls_takes = deque((sh(x) for x in self.ls_takes), maxlen=self.ls_takes.maxlen)
        self.lut_vtaken = deque((sh(x) for x in self.lut_vtaken),
                                maxlen=self.lut_vtaken.maxlen)

    def _gear_takes(self, rows_at: list[list[int]], infos: list[list[tuple[int, int, int]]],
                    flush: int, o: int, n: int, gs: int, q: int, sec: int, sign_bytes: int,
                    sbeat: int, pieces: int) -> int:
        """The cycle the gearbox (``rtl/dma/gearbox.py``, a two-row window) takes the last
        row of the stream: a row that starts a batch row's stream once the previous one was
        flushed (its last request served), the next row the cycle after, any later row once
        the request that passes the end of the row two before it is served. A group's sign
        beat j is served when the lanes take beat j - 1 (the first once the piece before it
        was served), its scale piece i after its last sign beat (``le - 1 + i``)."""
        lp = self.p.lut
        rb = self.p.mem.row_bytes
        blk = n * lp.slice // 8  # a sign block
        per_blk = -(-n // lp.lanes)
        sbyte = lp.lanes * lp.slice // 8  # a sign beat
        ppb = -(-sbeat // rb)

        def serve(x: int, info: list[tuple[int, int, int]]) -> int:
            g = min(x // sec, len(info) - 1)
            st, le, before = info[g]
            xi = x - g * sec
            if xi < sign_bytes:
                j = (xi // blk) * per_blk + (xi % blk) // sbyte
                return st - 1 + j if j else before + 1
            xi -= sign_bytes
            if xi < n * (q + 1) * 2:
                return le - 1 + (xi // sbeat) * ppb + (xi % sbeat) // rb
            return le - 1 + pieces

        t = NEG
        for times, info in zip(rows_at, infos, strict=True):
            # row k enters at max(its arrival, row k - 1 + 1, the serve that passes row k - 2):
            # arrivals and those serves grow by at least a cycle per row, so the last row's
            # bound is the largest of its own terms and the first row's + k
            k = len(times) - 1
            t = max(times[0], flush + 1) + k
            if k >= 1:
                t = max(t, times[k])
            if k >= 2:
                t = max(t, serve((k - 1) * rb - o - 1, info))
            st, le, _ = info[-1]
            flush = le - 2 + pieces + (1 if sec > sign_bytes + n * (q + 1) * 2 else 0)
        return t

    def _op_lutmv(self, ins: Instruction, m: Meta) -> int:  # noqa: C901 - one pipeline
        """``lutmv`` (docs/timing.md, "LUT-GEMM unit"): the packed stream is read once per
        batch row, run by run, and cut by the stream reader's gearbox into sign beats (one per
        cycle) and scale pieces; the lanes take a group's sign beats into one of two
        partial-sum banks while the scalers work through the other; the results leave through
        the epilogue (``min(scalers, d)`` rows per cycle) into the VRF."""
        p, lp = self.p, self.p.lut
        mm = p.mem
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
        wspace, waddr = self._space(ins.w, "w", ("hbm", "ddr", "wbuf"))
        if waddr % SECTION_ALIGN:
            raise self.error(f"lutmv w = {waddr:#x} is not {SECTION_ALIGN}-byte aligned")
        bspace, baddr = (self._space(ins.b, "b", ("hbm", "ddr", "wbuf")) if ins.bias
                         else (wspace, 0))
        t, c = self._pre(m)
        av_x = self._src(xb, batch * kv)
        tw, cw = self._dst(yb, batch * yv)
        if tw > t:
            t, c = tw, cw
        t = self._sb(t, True, True)
        tu, cu = self._unit(U_LUT, MATRIX)
        if tu > t:
            t, c = tu, cu
        if self.ls_takes[0] + 1 > t:
            t = self.ls_takes[0] + 1
        for s_ in dict.fromkeys((wspace, bspace)):
            t = self.spaces[s_].claim_ready(t)
        sb = stream_bytes(n, ng, gs, q, lp.slice)
        issue = self._issue(t, c)
        self.stats[S_INSTR + m.cls] += 1
        take = max(issue + 1, self.lp_free, self.lp_outs[0] + 1)
        self._took(U_LUT, take)
        # the stream reader: per batch row, the bias, then the stream as runs of rows
        g = max(issue + 1, self.ls_idle)
        self.ls_takes.append(g)
        tv = issue + mm.cmd_to_op["lut"] + (g - issue - 1)
        wsp, bsp = self.spaces[wspace], self.spaces[bspace]
        wsp.begin(self.now)
        if bsp is not wsp:
            bsp.begin(self.now)
        rb = mm.row_bytes
        blk = mm.block_rows[wspace]
        rows_at: list[list[int]] = []
        for _ in range(batch):
            if ins.bias:  # the row's bias first (the LUT port buffers a whole row of it)
                for addr, nb in self._units(baddr, n, 0):
                    for row, lo, hi in self._unit_rows(addr, nb):
                        a, rowt = self._read_row(bsp, tv, row, lo, hi, "lut")
                        bsp.row_taken = rowt
                        tv = a + 1
            times: list[int] = []
            pos, end = waddr, waddr + sb
            while pos < end:
                r0 = pos // rb
                nrows = min((end - 1) // rb - r0 + 1, blk - (r0 % blk))
                lo = (pos % rb) // mm.beat_bytes
                hi = ((min((r0 + nrows) * rb, end) - 1) % rb) // mm.beat_bytes
                a, rts = self._read_rows(wsp, tv, nrows, lo, hi, "lut")
                times.extend(rts)
                tv = a + 1
                pos = (r0 + nrows) * rb
            rows_at.append(times)
        wsp.end()
        if bsp is not wsp:
            bsp.end()
        self.ls_idle = tv
        # the collector: per batch row the unit's command the cycle after the take (the row
        # before's last x read), x vectors read one per cycle with chaining, at most lut_slots
        # ahead of the unit, which takes their slices (one per cycle) into its two table
        # buffers (slice k once the lanes are done with slice k - 2)
        per = p.d // lp.slice  # slices per x vector
        per_slice = q * -(-n // lp.lanes)  # lane cycles of one slice
        sec = section_bytes(n, gs, q, lp.slice)
        nsign = gs * q * -(-n // lp.lanes)
        sign_bytes = n * lp.slice // 8 * gs * q
        sbeat = lp.scalers * (q + 1) * 2
        ppb = -(-sbeat // rb)  # gearbox pieces per scale beat
        pieces = -(-n // lp.scalers) * ppb
        pad = 1 if sec > sign_bytes + n * (q + 1) * 2 else 0
        lane, sc, ho = nsign, lp.scaler_cycles(n, q), lp.handover
        s2, s1 = self.lut_s
        gear = self.lut_gear
        lane_end = self.lut_lanes
        ends = []
        lane_start = NEG
        slot_end: list[int] = [NEG, NEG]  # lanes done with the last two slices
        cmd = take + 1
        read = cmd
        tstart = NEG
        gear0 = gear
        infos: list[list[tuple[int, int, int]]] = []  # per row, per group: st, le, gear before
        vtaken = self.lut_vtaken  # the x buffer's slots, shared by all rows and instructions
        for b in range(batch):
            times = rows_at[b]
            infos.append([])
            xk = NEG  # the unit took the last slice
            v_read = -1
            for grp in range(ng):
                g0 = grp * gs
                # the group's slices: tables ready for each
                tables = []
                for sl in range(g0, g0 + gs):
                    v = sl // per
                    while v_read < v:  # read x vector v_read + 1
                        v_read += 1
                        read = max(read + 1, vtaken[0] + 1)
                        if av_x is not None:
                            read = max(read, av_x[b * kv + v_read])
                        if tstart == NEG:
                            tstart = read
                        vtaken.append(read + per)  # (its last slice, at the earliest)
                    xk = max(xk + 1, read + 1 + sl % per, slot_end[0])
                    slot_end = [slot_end[1], xk]
                    tables.append(xk + lp.first_lookup)
                vtaken[-1] = max(vtaken[-1], xk)
                # the group's sign bytes are in once the row of its last one has come
                first_sign = waddr % rb + grp * sec
                last_sign = first_sign + sign_bytes - 1
                arr_first = times[min(first_sign // rb, len(times) - 1)] + 1
                arr_last = times[min(last_sign // rb, len(times) - 1)] + 1
                # a batch row's stream starts in an empty gearbox: its first row enters the
                # cycle after the previous stream's last piece (gear), its first sign beat is
                # served the cycle after
                st = max(lane_end, s2, gear + (3 if grp == 0 else 2), arr_first + 1, tables[0])
                le = max(st + lane, arr_last + 2)
                for j in range(1, gs):  # a later slice's tables may come late
                    le = max(le, tables[j] + (gs - j) * per_slice)
                infos[b].append((st, le, gear))
                lane_end = le
                if lane_start == NEG:
                    lane_start = st
                slot_end = [max(slot_end[0], le - per_slice), le]
                # then the gearbox serves its scale pieces; the scale stage starts once the
                # lanes handed the bank over, the group before is done and its first scale
                # beat is in (its last piece, the piece register, the scale FIFO)
                last_scale = first_sign + sign_bytes + n * (q + 1) * 2 - 1
                sready = times[min(last_scale // rb, len(times) - 1)] + 2
                ss = max(le - 1 + ho, s1, le + 2 + ppb, sready)
                s2, s1 = s1, ss + sc
                ends.append(s1)
                gear = le - 2 + pieces + pad
            cmd = read + 1
        self.lut_s = [s2, s1]
        self.lut_lanes = lane_end
        self.lut_gear = gear
        # the gearbox takes the stream's last row: it holds the space's output (and the
        # client's rows) until then
        took = self._gear_takes(rows_at, infos, gear0, waddr % rb, n, gs, q, sec, sign_bytes,
                                sbeat, pieces)
        wsp.row_taken = max(wsp.row_taken, took)
        self.crow["lut"] = max(self.crow["lut"], took)
        # the epilogue: each output beat (scalers rows) as its chunk's last op leaves, fed
        # LutPort.epilogue_lanes rows per cycle
        le_rows = p.lut_epilogue_lanes
        feeds = -(-n // le_rows)
        per_beat = max(1, lp.scalers // le_rows)
        chunks = -(-n // lp.scalers)
        out: list[int] = []
        feed = self.lut_feed
        for b in range(batch):
            end_b = ends[(b + 1) * ng - 1]
            sst = end_b - sc
            row_feed = []
            for ch in range(chunks):
                beat = sst + (ch + 1) * (q + 1) - 1 + lp.result_latency
                for _ in range(per_beat):
                    if len(row_feed) == feeds:
                        break
                    feed = max(feed + 1, beat)
                    row_feed.append(feed)
            for v in range(yv):
                last_row = min((v + 1) * p.d, n) - 1
                out.append(row_feed[last_row // le_rows] + p.lut_epilogue + 1)
        self.lut_feed = feed
        self.lp_free = read
        self._write(yb, out, MATRIX)
        self.lp_outs.append(max(out) - 1)
        self._read(xb, batch * kv, self.lp_free, MATRIX)
        for _ in range(batch):
            self._count_bytes(wspace, run_counts(self.chan[wspace], waddr, sb), False)
            if ins.bias:
                self._count_bytes(bspace, run_counts(self.chan[bspace], baddr, 2 * n), False)
        st = self.stats
        ngrp = batch * ng
        busy = ngrp * lp.lane_cycles(n, gs, q)
        st[S_BUSY + U_LUT] += busy
        st[S_BYTES + 8] += batch * sb
        dur = max(rows_at[-1]) - min(rows_at[0]) if rows_at[0] else 0
        times3 = (dur, busy, ngrp * lp.scaler_cycles(n, q))
        st[S_LUT] += dur
        st[S_LUT + 1] += busy
        st[S_LUT + 2] += ngrp * lp.scaler_cycles(n, q)
        st[S_LUT + 3] += max(0, lane_end - lane_start - busy)
        st[S_LUT + 4] += batch * n * ng * gs * lp.slice * q
        st[S_LUT + 5 + times3.index(max(times3))] += max(out) - tstart
        self._event(U_LUT, tstart, max(out), m)
        return RUN
