"""The VPU of one card: element-wise ops, reductions and scalar ops (docs/timing.md, "VPU").

Mirrors ``rtl/vpu``.
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
        self.vlat = {
            "vadd": p.vpu_add, "vsub": p.vpu_add, "vadds": p.vpu_add, "vsubs": p.vpu_add,
            "vmul": p.vpu_mul, "vmuls": p.vpu_mul, "vexp": p.vpu_table, "vgelu": p.vpu_table,
            "vmov": p.vpu_bypass,
        }
        self.slat = {"sli": p.vpu_bypass, "sadd": p.vpu_scalar, "ssub": p.vpu_scalar,
                     "smul": p.vpu_scalar, "srecip": p.vpu_table, "srsqrt": p.vpu_table}

    def _reset_vpu(self) -> None:
        self.acc = [NEG, VECTOR]  # SFU_V running maximum (vmax/vargmax) free
        self.acc_in = NEG  # the last vacc/vaccsq vector's entry into the adder tree

    def _key_vpu(self, f: Any, now: int) -> tuple:
        return (f(self.acc[0]), self.acc[1] if self.acc[0] > now else -1), f(self.acc_in, now - 1)

    def _shift_vpu(self, sh: Any) -> None:
        self.acc[0] = sh(self.acc[0])
        self.acc_in = sh(self.acc_in)

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
