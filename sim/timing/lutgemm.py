"""The LUT-GEMM unit of one card: ``lutmv`` (docs/timing.md, "LUT-GEMM unit").

Mirrors ``rtl/lutgemm``: table builder, row lanes writing exact partial sums into one of two
banks, a scale stage of ``scalers`` multiply-accumulate units reading the other bank. The
schedule (:meth:`LutParams.schedule`) equals the RTL unit's Amaranth simulation cycle for cycle
(tests/sim/timing/test_lut.py); every latency is the RTL unit's own property
(:meth:`LutParams.from_rtl`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dfx.isa.encoding import Instruction
from dfx.isa.golden.lutgemm import SECTION_ALIGN, stream_bytes

from .memory import run_counts
from .stats import MATRIX, NEG, O_DMA, RUN, S_BUSY, S_BYTES, S_INSTR, S_LUT, U_LUT

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

    def result(self, group_end: int, n: int) -> int:
        """When the accumulators of a group whose scale ops end at ``group_end`` have all left
        the unit (valid on its output stream): the last op (cycle ``group_end - 1``), the
        scaler pipeline, the output buffer (the MPU epilogue comes after)."""
        return group_end - 1 + self.result_latency

    def schedule(self, lanes_at: int, n: int, gs: int, q: int, arrivals: list[int],
                 banks: tuple[int, int]) -> tuple[int, list[int], tuple[int, int]]:
        """The groups of one or more lutmv streams through the lanes and the scale stage.

        ``lanes_at``: the earliest first look-up (tables built, the previous instruction's
        lanes done); ``arrivals``: per group, the cycle its stream section is in; ``banks``:
        when the scale stage finished the last two groups before (the partial-sum banks they
        hold are free then). Group G's lanes start when group G-1's are done and its bank is
        free, and end no earlier than its data; its scale rounds start ``handover`` after its
        last lane word, once the stage has finished group G-1. Returns (lanes done, per group
        the end of its scale rounds, the new ``banks``)."""
        lane, sc, ho = self.lane_cycles(n, gs, q), self.scaler_cycles(n, q), self.handover - 1
        s2, s1 = banks
        lane_end = lanes_at
        ends = []
        for arr in arrivals:
            le = (lane_end if lane_end > s2 else s2) + lane
            lane_end = le if le > arr else arr
            ss = lane_end + ho  # lane_end is one past the last lane word
            if s1 > ss:
                ss = s1
            s2, s1 = s1, ss + sc
            ends.append(s1)
        return lane_end, ends, (s2, s1)


class LutUnit:
    """Mixin of :class:`~.card.CardSim`: ``lutmv``."""

    OPS = {"lutmv": "_op_lutmv"}

    p: Params
    stats: list[int]

    def _init_lut(self) -> None:
        self._lut_off: dict[tuple[int, ...], list[int]] = {}

    def _reset_lut(self) -> None:
        self.lut_s = [NEG, NEG]  # scalers: end of the second-to-last and last group round

    def _key_lut(self, f: Any) -> tuple:
        return tuple(f(x) for x in self.lut_s)

    def _shift_lut(self, sh: Any) -> None:
        self.lut_s = [sh(x) for x in self.lut_s]

    def _op_lutmv(self, ins: Instruction, m: Meta) -> int:
        """``lutmv`` on the LUT-GEMM unit (docs/timing.md, "LUT-GEMM unit"): the packed stream
        flows group by group through the row lanes (one lane word per lane per cycle) into one
        of two partial-sum banks; each finished group's q + 1 ops per row go through the
        scalers while the lanes fill the other bank; the results leave through the MPU's
        SFU_M epilogue."""
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
            out.extend([lp.result(ends[(b + 1) * ng - 1], n) + p.mpu_epilogue] * yv)
        if ins.bias:
            floor = self._read_bias(ins.b, 2 * n, issue) + p.mpu_bias
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
