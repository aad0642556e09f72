"""The VPU of one card: element-wise ops, reductions and scalar ops (docs/timing.md, "VPU").

Mirrors ``rtl/vpu`` (:class:`dfx.rtl.vpu.Vpu`), whose latencies :func:`~.params.derive` reads:
one input vector per cycle, instructions back to back; an element-wise result leaves
``Vpu.latencies[op]`` cycles after its vector went in; a reduction's result
``Vpu.result_latency(op)`` after its last vector (a scalar op's, after its one cycle). Two
rules of the RTL's sequencer shape the schedule:

* **results in order**: an element-wise instruction starts no earlier than its first result
  comes after the previous element-wise instruction's last result (the output-slot rule: the
  VFU's banks share one output);
* **one scalar result register**: a reduction or scalar op takes its first input no earlier
  than the cycle after the previous one's result (SFU_V's result register is busy until the
  result is taken, which the core does in the cycle it appears).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dfx.isa.encoding import Instruction

from .stats import NEG, RUN, S_BUSY, S_INSTR, U_VPU, VECTOR

if TYPE_CHECKING:
    from .controller import Meta
    from .params import Params

_VECTOR_OPS = ("vadd", "vsub", "vmul", "vadds", "vsubs", "vmuls", "vexp", "vgelu", "vmov")
_REDUCTIONS = ("vacc", "vaccsq", "vmax", "vargmax")


class VpuUnit:
    """Mixin of :class:`~.card.CardSim`: the VPU's instructions (scalar ops: the card maps
    every instruction of class ``scalar`` to :meth:`_op_scalar`)."""

    OPS = {**{op: "_op_vector" for op in _VECTOR_OPS}, **{op: "_op_reduce" for op in _REDUCTIONS}}

    p: Params
    stats: list[int]

    def _init_vpu(self) -> None:
        p = self.p
        missing = sorted(set(_VECTOR_OPS) - set(p.vpu_latency))
        if missing:  # pragma: no cover - the RTL unit implements every vector op
            raise ValueError(f"the VPU gives no latency for {missing}")
        self.slat = {"sli": p.sli, **p.vpu_result}

    def _reset_vpu(self) -> None:
        self.vout = NEG  # the last element-wise result leaves the VPU in this cycle
        self.sres = NEG  # the last scalar result (reduction or scalar op) appears in this cycle

    def _key_vpu(self, f: Any, now: int) -> tuple:
        return f(self.vout, now - 1), f(self.sres, now - 1)

    def _shift_vpu(self, sh: Any) -> None:
        self.vout = sh(self.vout)
        self.sres = sh(self.sres)

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
        lat = self.p.vpu_latency[op]
        # in order at the output: the first result after the previous instruction's last
        start = max(issue, self._ready(U_VPU), self.vout + 1 - lat)
        reads = self._chain(start, n, av_a, av_b)
        last = reads[-1]
        self.vout = last + lat
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
        # SFU_V's result register: free the cycle after the previous scalar result
        start = max(issue, self._ready(U_VPU), self.sres + 1)
        if nv == 0:  # vacc/vaccsq of nothing: the register becomes +0
            res, last = start + p.vpu_empty, start
        else:
            # vacc/vaccsq: the multiplier bank (a*1, a*a), the exact fixed-point accumulation
            # (docs/numerics.md §5), one rounding; vmax/vargmax: comparator tree and running
            # maximum; both one vector per cycle, the result a fixed latency after the last
            reads = self._chain(start, nv, av_a)
            last = reads[-1]
            res = last + p.vpu_result[op]
            self._read(a, nv, last, VECTOR)
        self.sres = res
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
        if m.op == "sli":  # not an SFU_V operation: the immediate is written to the SRF
            start = max(issue, self._ready(U_VPU))
            res = start + self.slat[m.op]
        else:
            start = max(issue, self._ready(U_VPU), self.sres + 1)
            res = self.sres = start + self.slat[m.op]
        for s in m.sreads:
            self.s_lr[s] = max(self.s_lr[s], start)
        self.s_av[ins.sd] = res
        self.s_cat[ins.sd] = VECTOR
        self._done(res, VECTOR)
        self._unit_done(U_VPU, start + 1, VECTOR)
        self.stats[S_BUSY + U_VPU] += 1
        self._event(U_VPU, start, res, m)
        return RUN
