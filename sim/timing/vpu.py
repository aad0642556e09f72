"""The VPU of one card and its operand collector: element-wise ops, reductions and scalar ops
(docs/timing.md, "VPU").

Mirrors ``rtl/core/vpu_port.py`` around ``rtl/vpu`` (:class:`dfx.rtl.vpu.Vpu`, whose latencies
:func:`~.params.derive` reads):

* the port takes a command from the issue queue (pushed in cycle t: from t + 1) once its
  reader is free (the cycle of the previous command's last read, or the cycle after a command
  without reads), the VPU's command queue (``vpu_cmds``) has room and the results of the
  ``vpu_vdests`` / ``vpu_sdests`` commands before of the same kind have left;
* it reads source vector i (both operands) from the cycle after the take, one per cycle, no
  earlier than it is available (chaining) and while fewer than ``vpu_slots`` vectors read
  have not entered the VPU;
* the VPU takes the command the cycle after the port did, once it has issued the previous
  command's last vector, and takes vector i the cycle after its read at the earliest, one per
  cycle; an element-wise command's first vector waits until its result lands after the
  previous element-wise result (results in order); a reduction's first vector and a scalar op
  wait until the previous scalar result has left (one result register);
* an element-wise result is written to the VRF in the cycle it leaves the VPU
  (``Vpu.latencies[op]`` after its vector went in), available the cycle after; a scalar result
  (``Vpu.result_latency(op)`` after the last vector, a scalar op's issue) is written to the SRF
  (or, vargmax, to ``rd`` through the controller) in the cycle it appears.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

from dfx.isa.encoding import Instruction

from .stats import NEG, RUN, S_BUSY, S_INSTR, U_VPU, VECTOR

if TYPE_CHECKING:
    from .controller import Meta
    from .params import Params

_VECTOR_OPS = ("vadd", "vsub", "vmul", "vadds", "vsubs", "vmuls", "vexp", "vgelu", "vmov")
_REDUCTIONS = ("vacc", "vaccsq", "vmax", "vargmax")
_TWO = ("vadd", "vsub", "vmul")


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

    def _reset_vpu(self) -> None:
        p = self.p
        self.vp_rfree = NEG  # the port's reader takes the next command from this cycle
        self.vp_fires: deque[int] = deque([NEG] * p.vpu_slots, maxlen=p.vpu_slots)
        self.vp_k: deque[int] = deque([NEG] * p.vpu_cmds, maxlen=p.vpu_cmds)  # VPU cmd takes
        self.vp_vd: deque[int] = deque([NEG] * p.vpu_vdests, maxlen=p.vpu_vdests)
        self.vp_sd: deque[int] = deque([NEG] * p.vpu_sdests, maxlen=p.vpu_sdests)
        self.vu_done = NEG  # the VPU issued its current command's last vector in this cycle
        self.vout = NEG  # the last element-wise result leaves the VPU in this cycle
        self.sres = NEG  # the last scalar result appears in this cycle

    def _key_vpu(self, f: Any, now: int) -> tuple:
        return (f(self.vp_rfree), tuple(f(x, now - 1) for x in self.vp_fires),
                tuple(f(x, now - 1) for x in self.vp_k), tuple(f(x, now - 1) for x in self.vp_vd),
                tuple(f(x, now - 1) for x in self.vp_sd), f(self.vu_done, now - 1),
                f(self.vout, now - 1), f(self.sres, now - 1))

    def _shift_vpu(self, sh: Any) -> None:
        self.vp_rfree = sh(self.vp_rfree)
        self.vp_fires = deque((sh(x) for x in self.vp_fires), maxlen=self.vp_fires.maxlen)
        self.vp_k = deque((sh(x) for x in self.vp_k), maxlen=self.vp_k.maxlen)
        self.vp_vd = deque((sh(x) for x in self.vp_vd), maxlen=self.vp_vd.maxlen)
        self.vp_sd = deque((sh(x) for x in self.vp_sd), maxlen=self.vp_sd.maxlen)
        self.vu_done, self.vout, self.sres = sh(self.vu_done), sh(self.vout), sh(self.sres)

    # -- the port and the unit ----------------------------------------------------------------
    def _vpu_take(self, issue: int, vector: bool) -> tuple[int, int]:
        """The port takes the command issued at ``issue`` (cycle T), the VPU takes it (K)."""
        take = issue + 1
        for x in (self.vp_rfree, self.vp_k[0] + 1,
                  (self.vp_vd if vector else self.vp_sd)[0] + 1):
            if x > take:
                take = x
        k = take + 1
        if self.vu_done > k:
            k = self.vu_done
        self.vp_k.append(k)
        self._took(U_VPU, take)
        return take, k

    def _vpu_stream(self, take: int, k: int, n: int, first: int, avs: tuple) -> tuple[int, list]:
        """Read ``n`` vectors (availabilities ``avs``) and feed them to the VPU, the first no
        earlier than ``first``: (last read, fire cycles)."""
        fires = self.vp_fires
        fire = []
        r = take
        f = k
        if first - 1 > f:
            f = first - 1
        live = [a for a in avs if a is not None]
        for i in range(n):
            r += 1
            for a in live:
                if a[i] > r:
                    r = a[i]
            x = fires[0] + 1
            if x > r:
                r = x
            f = f + 1 if f + 1 > r + 1 else r + 1
            fires.append(f)
            fire.append(f)
        return r, fire

    def _op_vector(self, ins: Instruction, m: Meta) -> int:
        n = self._count(ins.n, "n")
        t, c = self._pre(m)
        if n == 0:  # nothing to do: issue drops it
            self._issue(t, c)
            self.stats[S_INSTR + m.cls] += 1
            return RUN
        op = m.op
        a, y = self._va(ins.a), self._va(ins.y)
        av_a = self._src(a, n)
        av_b = None
        two = op in _TWO
        if two:
            b = self._va(ins.b)
            av_b = self._src(b, n)
        tw, cw = self._dst(y, n)
        if tw > t:
            t, c = tw, cw
        t = self._sb(t, True, True)
        tu, cu = self._unit(U_VPU, VECTOR)
        if tu > t:
            t, c = tu, cu
        issue = self._issue(t, c)
        self.stats[S_INSTR + m.cls] += 1
        lat = self.p.vpu_latency[op]
        take, k = self._vpu_take(issue, True)
        # results in order: the first result after the previous element-wise result
        last_read, fire = self._vpu_stream(take, k, n, self.vout + 1 - lat, (av_a, av_b))
        self.vu_done = fire[-1]
        self.vout = fire[-1] + lat
        self.vp_rfree = last_read
        self.vp_vd.append(self.vout + 1)
        self._write(y, [f + lat + 1 for f in fire], VECTOR)
        self._read(a, n, last_read, VECTOR, 2 if two else 1)
        if two:
            self._read(b, n, last_read, VECTOR, 0)
        self.stats[S_BUSY + U_VPU] += n
        self._event(U_VPU, fire[0], self.vout + 1, m)
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
        av_a = self._src(a, nv) if nv else None
        t = self._sb(t, False, nv > 0)
        tu, cu = self._unit(U_VPU, VECTOR)
        if tu > t:
            t, c = tu, cu
        issue = self._issue(t, c)
        self.stats[S_INSTR + m.cls] += 1
        take, k = self._vpu_take(issue, False)
        if nv == 0:  # vacc/vaccsq of nothing: the result register becomes +0
            f0 = max(k + 1, self.sres + 1)
            res = f0 + p.vpu_empty
            self.vu_done = f0
            self.vp_rfree = take + 1
            start = f0
        else:
            # one result register: the first vector waits until the previous result has left
            last_read, fire = self._vpu_stream(take, k, nv, self.sres + 1, (av_a,))
            res = fire[-1] + p.vpu_result[op]
            self.vu_done = fire[-1]
            self.vp_rfree = last_read
            self._read(a, nv, last_read, VECTOR)
            start = fire[0]
        self.sres = res
        self.vp_sd.append(res + 1)
        if op == "vargmax":
            self._set(ins.rd, 0, res + p.rd_delay, VECTOR)
            self.token_times.append(res + p.rd_delay)
            if len(self.token_times) == self.snap_at:
                self.finalize(issue)  # count the timeline up to this instruction's issue
                self.snap = list(self.stats)
        else:
            self.s_av[ins.sd] = res + 1
            self.s_cat[ins.sd] = VECTOR
        self._done(res + 1, VECTOR)
        self.stats[S_BUSY + U_VPU] += max(nv, 1)
        self._event(U_VPU, start, res + 1, m)
        return RUN

    def _op_scalar(self, ins: Instruction, m: Meta) -> int:
        t, c = self._pre(m)
        if m.op == "sli":  # written into the SRF at issue (no unit)
            issue = self._issue(t, c)
            self.stats[S_INSTR + m.cls] += 1
            self.s_av[ins.sd] = issue + 1
            self.s_cat[ins.sd] = VECTOR
            self._done(issue + 1, VECTOR)
            return RUN
        tu, cu = self._unit(U_VPU, VECTOR)
        if tu > t:
            t, c = tu, cu
        issue = self._issue(t, c)
        self.stats[S_INSTR + m.cls] += 1
        take, k = self._vpu_take(issue, False)
        f0 = max(k + 1, self.sres + 1)
        res = self.sres = f0 + self.p.vpu_result[m.op]
        self.vu_done = f0
        self.vp_rfree = take + 1
        self.vp_sd.append(res + 1)
        self.s_av[ins.sd] = res + 1
        self.s_cat[ins.sd] = VECTOR
        self._done(res + 1, VECTOR)
        self.stats[S_BUSY + U_VPU] += 1
        self._event(U_VPU, f0, res + 1, m)
        return RUN
