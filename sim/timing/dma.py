"""The memory system and DMA engine of one card (docs/timing.md, "DMA" and "Memory
channels"). Mirrors ``rtl/dma``: the per-channel in-order ports (HBM pseudo-channels, DDR
channels, the weight buffer) that every client shares — the DMA engine (``load``, ``store``,
``store_t``, ``copy``), the MPU's weight and bias readers, the LUT-GEMM stream — and the
weight-buffer address scoreboard.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dfx.isa.encoding import Instruction

from .memory import Port, run_counts, store_t_counts, store_t_key
from .stats import DMA, NEG, RUN, S_BUSY, S_INSTR, SPACE_BYTES, U_DMA

if TYPE_CHECKING:
    from .controller import Meta
    from .params import Params


class Dma:
    """Mixin of :class:`~.card.CardSim`: memory ports, weight-buffer scoreboard, DMA engine."""

    OPS = {"load": "_op_load", "store": "_op_store", "store_t": "_op_store", "copy": "_op_copy"}

    p: Params
    r: list[int]
    now: int
    stats: list[int]
    error: Callable[[str], Exception]

    def _init_dma(self) -> None:
        p = self.p
        self.chan = {"hbm": p.hbm, "ddr": p.ddr, "wbuf": p.wbuf}

    def _reset_dma(self) -> None:
        p = self.p
        self.ports = {"hbm": Port(p.hbm), "ddr": Port(p.ddr), "wbuf": Port(p.wbuf)}
        self.wbuf_busy: list[list[int]] = []  # [lo, hi, is_write, end] in flight

    def _key_dma(self, f: Callable[..., int]) -> tuple:
        now = self.now
        mem = []
        for port in self.ports.values():
            mem.append(tuple(f(x) for x in port.rfree))
            mem.append(tuple(f(x) for x in port.wfree))
        wb = tuple((b[0], b[1], b[2], f(b[3])) for b in self.wbuf_busy if b[3] > now)
        return tuple(mem), wb

    def _shift_dma(self, sh: Callable[[int], int]) -> None:
        for port in self.ports.values():
            port.rfree = [sh(x) for x in port.rfree]
            port.wfree = [sh(x) for x in port.wfree]
        for b in self.wbuf_busy:
            b[3] = sh(b[3])

    # -- the memory ports -----------------------------------------------------------------------
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
        self.stats[SPACE_BYTES[space] + (1 if write else 0)] += nbytes

    def _read_bias(self, b: Any, nbytes: int, issue: int) -> int:
        """A bias read of ``nbytes`` requested at ``issue`` (conv1d, lutmv with bias): the
        cycle its last data has arrived."""
        bspace, baddr = self._space(b, "b", ("hbm", "ddr", "wbuf"))
        bcounts = run_counts(self.chan[bspace], baddr, nbytes)
        bq = issue
        if bspace == "wbuf":
            bq = max(bq, self._wbuf_wait(baddr, baddr + nbytes, False))
        db, durb = self.ports[bspace].read(bcounts, bq)
        self._commit(bspace, bcounts, db + durb, False)
        return db + durb

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

    # -- the DMA engine -------------------------------------------------------------------------
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
