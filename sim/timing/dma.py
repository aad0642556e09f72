"""The memory system's clients that move vectors and words, and their ops (docs/timing.md,
"Memory system"). Mirrors ``rtl/dma`` (:mod:`.memsys` holds the spaces and AXI ports):

* the **DMA engine** (``load``, ``store``, ``store_t``, ``copy``): a command is accepted at
  issue (``dma_cmd_depth`` waiting, ``dma_done_depth`` not yet done; it claims its spaces
  then); its address side takes it from its queue the cycle after (or the cycle after the
  previous command's last op) and presents its first op ``cmd_to_op`` cycles after the
  acceptance, then one op per cycle as the space takes them: one op per vector (two when it
  crosses a row); a store's op waits until fewer than ``dma_place_depth`` of its units are
  waiting for their data;
* the **vector mover** (``rtl/core/mover.py``), the VRF side: it takes the DMA unit's commands
  from the issue queue in order; a load's vector is written into the VRF as it comes out of
  the Extractor (``row_to_vector`` after its row); a store's vectors are read with chaining,
  at most ``store_slots`` ahead of the engine's Placer, which takes one per cycle and gives its
  write row ``place_latency`` later;
* the **word port** (``lw``/``sw``): one single-beat op per request, the response in request
  order (a ``lw`` when its row is back, a ``sw`` ``b_to_done`` after its B response);
* ``done`` of a DMA command (in command order): a load the cycle after its last vector, a store
  ``b_to_done`` after its last B response.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dfx.isa.encoding import Instruction

from .memory import Port, run_counts, store_t_counts, store_t_key
from .memsys import Space
from .stats import DMA, NEG, RUN, S_BUSY, S_INSTR, SPACE_BYTES, U_DMA

if TYPE_CHECKING:
    from .controller import Meta
    from .params import Params

SPACES = ("hbm", "ddr", "wbuf")


def unit_rows(p: Params, addr: int, nbytes: int) -> list[tuple[int, int, int]]:
    """A unit of ``nbytes`` (at most a row) at ``addr`` as (row, first beat, last beat) per
    row: one op, or two when it crosses a row."""
    m = p.mem
    rb, w = m.row_bytes, m.beat_bytes
    row, o = divmod(addr, rb)
    end = o + nbytes - 1
    if end < rb:
        return [(row, o // w, end // w)]
    return [(row, o // w, m.ports - 1), (row + 1, 0, (end - rb) // w)]


def copy_runs(dblk: int, sblk: int, rb: int, src: int, dst: int, nbytes: int, down: bool
              ) -> list[tuple[int, int]]:
    """A fast copy's runs as destination byte ranges [lo, hi), in the order the DMA engine
    makes them (``rtl/dma/dma_ops.py``, state FR): each inside one block of the destination
    (``dblk`` rows) and of the source (``sblk``); downwards (from the end, at most
    ``(dst - src) / rb`` rows each) when ``down`` (the ranges overlap with dst > src)."""
    end = dst + nbytes
    delta = src - dst
    out = []
    if not down:
        pos = dst
        while pos < end:
            rd = pos // rb
            nrow = min((end - 1) // rb - rd + 1, dblk - rd % dblk,
                       sblk - ((pos + delta) // rb) % sblk)
            hi = min((rd + nrow) * rb, end)
            out.append((pos, hi))
            pos = hi
        return out
    kmax = (dst - src) // rb
    pos = end
    while pos > dst:
        r = (pos - 1) // rb
        nrow = min(r - dst // rb + 1, r % dblk + 1, ((pos - 1 + delta) // rb) % sblk + 1, kmax)
        lo = max((r - nrow + 1) * rb, dst)
        out.append((lo, pos))
        pos = lo
    return out


class Dma:
    """Mixin of :class:`~.card.CardSim`: the memory system's spaces, the DMA engine, the
    vector mover and the word port."""

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
        m = p.mem
        self.ports = {"hbm": Port(p.hbm), "ddr": Port(p.ddr), "wbuf": Port(p.wbuf)}
        self.spaces = {s: Space(p, s) for s in SPACES}
        self.dma_takes: deque[int] = deque([NEG] * m.dma_cmd_depth, maxlen=m.dma_cmd_depth)
        self.dma_dones: deque[int] = deque([NEG] * m.dma_done_depth, maxlen=m.dma_done_depth)
        self.dma_idle = NEG  # the address side takes its next command from this cycle
        self.mv_free = NEG  # the vector mover takes its next command from this cycle
        self.dma_wrow = NEG  # the engine's last write row taken by its space
        self.word_resp: deque[int] = deque([NEG] * p.outstanding, maxlen=p.outstanding)
        self.sw_resp = NEG  # response of the last sw
        # per client, its last read row (a client takes its rows in its op order)
        self.crow = {"dma": NEG, "mpu": NEG, "lut": NEG, "word": NEG}

    def _key_dma(self, f: Callable[..., int]) -> tuple:
        now = self.now
        return (tuple(sp.key(f) for sp in self.spaces.values()),
                tuple(f(x, now - 1) for x in self.dma_takes),
                tuple(f(x, now - 1) for x in self.dma_dones), f(self.dma_idle),
                f(self.mv_free), f(self.dma_wrow), tuple(f(x, now - 1) for x in self.word_resp),
                f(self.sw_resp, now - 1), tuple(f(x) for x in self.crow.values()))

    def _shift_dma(self, sh: Callable[[int], int]) -> None:
        for sp in self.spaces.values():
            sp.shift(sh)
        self.dma_takes = deque((sh(x) for x in self.dma_takes), maxlen=self.dma_takes.maxlen)
        self.dma_dones = deque((sh(x) for x in self.dma_dones), maxlen=self.dma_dones.maxlen)
        self.dma_idle, self.mv_free, self.sw_resp = (sh(self.dma_idle), sh(self.mv_free),
                                                     sh(self.sw_resp))
        self.dma_wrow = sh(self.dma_wrow)
        self.word_resp = deque((sh(x) for x in self.word_resp), maxlen=self.word_resp.maxlen)
        self.crow = {k: sh(x) for k, x in self.crow.items()}

    # -- operands -----------------------------------------------------------------------------
    def _space(self, a: Any, name: str, allowed: tuple[str, ...]) -> tuple[str, int]:
        if a.space not in allowed:
            raise self.error(f"operand {name} is in {a.space} but must be in "
                             f"{' or '.join(allowed)}")
        return a.space, (self.r[a.base] + a.off if a.base else a.off)

    def _count_bytes(self, space: str, counts: tuple[int, ...], write: bool) -> None:
        nbytes = self.ports[space].commit(counts, 0, write)
        self.stats[SPACE_BYTES[space] + (1 if write else 0)] += nbytes

    # -- ops on a space -----------------------------------------------------------------------
    def _unit_rows(self, addr: int, nbytes: int) -> list[tuple[int, int, int]]:
        return unit_rows(self.p, addr, nbytes)

    def _read_row(self, sp: Space, tv: int, row: int, lo: int, hi: int, client: str
                  ) -> tuple[int, int]:
        """A single-row read op presented from ``tv``: (accepted, its row at the client)."""
        a, rows = self._read_rows(sp, tv, 1, lo, hi, client)
        return a, rows[0]

    def _read_rows(self, sp: Space, tv: int, nrows: int, lo: int, hi: int, client: str,
                   ) -> tuple[int, list[int]]:
        """A read op of ``nrows`` rows (beats ``lo..`` of the first, ``..hi`` of the last)
        presented from ``tv``: (accepted, each row's cycle at the client). A space's rows
        leave in op order, one per cycle, each once the one before was taken; a client takes
        its rows in its own op order across the spaces (the fabric's merge queue)."""
        p = self.p
        mm = p.mem
        a = sp.accept(tv)
        out = []
        if sp.kind == "wbuf":
            x = max(a + 1, sp.busy + 1)
            prev = self.crow[client]
            for _ in range(nrows):
                # the read pipeline stalls as a whole while its row is not taken
                x = max(x, prev + 1 - mm.wbuf_latency)
                prev = x + mm.wbuf_latency
                out.append(prev)
                x += 1
            sp.busy = x - 1
            sp.deq.append(x - 1)  # the op leaves the buffer's op queue with its last row
            self.crow[client] = out[-1]
            sp.row_out = out[-1]
            return a, out
        elif sp.kind == "hbm":
            last = [NEG] * nrows
            if nrows == 1:
                for c in range(lo, hi + 1):
                    _, b = sp.read(sp.chan(c), a, 1)
                    if b > last[0]:
                        last[0] = b
            else:
                for c in range(mm.ports):
                    skip_first = c < lo
                    cnt = nrows - skip_first - (c > hi)
                    if cnt <= 0:
                        continue
                    d0, _ = sp.read(sp.chan(c), a, cnt)
                    for i in range(cnt):
                        k = i + skip_first
                        b = sp.beat(d0, i)
                        if b > last[k]:
                            last[k] = b
            sp.done(a)
            prev = max(sp.row_taken, sp.row_out, self.crow[client])
            for b in last:
                prev = max(b + mm.r_to_row, prev + 1)
                out.append(prev)
        else:  # DDR: one burst from the first row's lo to the last row's hi, beat by beat
            c = mm.ports
            nb = (nrows - 1) * c + hi - lo + 1
            d0, _ = sp.read(sp.chan(0), a, nb)
            sp.done(a)
            prev = max(sp.row_taken, sp.row_out, self.crow[client])
            for k in range(nrows):
                i = (k + 1) * c - lo - 1 if k < nrows - 1 else nb - 1
                prev = max(sp.beat(d0, i) + mm.r_to_row, prev + 1)
                out.append(prev)
        sp.row_out = out[-1]
        self.crow[client] = out[-1]
        return a, out

    def _write_row(self, sp: Space, a: int, row_valid: int, lo: int, hi: int,
                   beats: tuple[int, ...] | None = None, dma: bool = True) -> int:
        """The data row of the single-row write op accepted at ``a``, valid from
        ``row_valid``: its B response (the last of its bursts)."""
        return self._write_rows(sp, a, [row_valid], lo, hi, beats, dma)

    def _write_rows(self, sp: Space, a: int, valid: list[int], lo: int, hi: int,
                    beats: tuple[int, ...] | None = None, dma: bool = True) -> int:
        """The data rows of the write op accepted at ``a`` (row k valid from ``valid[k]``):
        the B response of its last burst (the weight buffer: the cycle its last row is
        written). The space distributes one row per cycle, in write-op order; the DMA
        engine (``dma``) hands over its rows on one port, in command order over all spaces
        (a row waits until the engine's previous write row was taken)."""
        if dma:
            y = self._write_rows_in(sp, a, valid, lo, hi, beats, self.dma_wrow + 1)
            self.dma_wrow = sp.wrow
            return y
        return self._write_rows_in(sp, a, valid, lo, hi, beats, NEG)

    def _write_rows_in(self, sp: Space, a: int, valid: list[int], lo: int, hi: int,
                       beats: tuple[int, ...] | None, after: int) -> int:
        mm = self.p.mem
        nrows = len(valid)
        fire = []
        x = max(a + 1, sp.wrow + 1, after)
        for v in valid:
            x = max(x, v)
            fire.append(x)
            x += 1
        if sp.kind == "wbuf":
            y = max(fire[-1], sp.busy + 1)
            sp.busy = sp.wrow = y
            sp.wfire.append(y)
            sp.deq.append(y)  # the op leaves the buffer's op queue with its last row
            return y
        last = NEG
        if sp.kind == "hbm":
            sp.wrow = fire[-1]
            for c in (beats if beats is not None else range(mm.ports)):
                if nrows == 1:
                    if beats is None and (c < lo or c > hi):
                        continue
                    cnt, first = 1, 0
                else:
                    first = 1 if c < lo else 0
                    cnt = nrows - first - (c > hi)
                if cnt <= 0:
                    continue
                b = sp.write(sp.chan(c), a, cnt, fire[first] + 1)
                if b > last:
                    last = b
        else:  # DDR: the rows' beats one per cycle into the port
            nb = (nrows - 1) * mm.ports + hi - lo + 1
            last = sp.write(sp.chan(0), a, nb, fire[0] + 1)
            sp.wrow = max(fire[-1], fire[0] + nb - 1)
        sp.done(a)
        sp.wfire.append(sp.wrow)
        return last

    def _accept_write(self, sp: Space, tv: int) -> int:
        """Accept a write op: at most ``wdata_depth`` write ops wait for their data."""
        x = sp.wfire[0] + 1
        return sp.accept(tv if tv > x else x)

    # -- the word port ------------------------------------------------------------------------
    def _word(self, t: int, write: bool, space: str, addr: int, cat: int) -> int:
        """A lw/sw fired at ``t``: its response cycle."""
        m = self.p.mem
        sp = self.spaces[space]
        sp.begin(self.now)
        tv = t + m.cmd_to_op["word"]
        row, o = divmod(addr, m.row_bytes)
        k = o // m.beat_bytes
        if write:
            a = self._accept_write(sp, tv)
            b = self._write_row(sp, a, t + 1, k, k, dma=False)
            resp = b + m.b_to_done[space]
        else:
            _, rowt = self._read_row(sp, tv, row, k, k, "word")
            sp.row_taken = rowt
            resp = rowt
        sp.end()
        resp = max(resp, self.word_resp[-1] + 1)
        self.word_resp.append(resp)
        self._count_bytes(space, run_counts(self.chan[space], addr, 4), write)
        self._done(resp + 1, cat)
        return resp

    def _word_ready(self, t: int, write: bool, space: str) -> int:
        """The earliest cycle >= t a lw/sw may fire: fewer than ``outstanding`` in flight, a lw
        after every sw's response, room in the space's order queue."""
        x = self.word_resp[0] + 1
        if x > t:
            t = x
        if not write and self.sw_resp + 1 > t:
            t = self.sw_resp + 1
        return self.spaces[space].claim_ready(t)

    # -- the DMA engine -----------------------------------------------------------------------
    def _dma_ready(self, t: int, spaces: tuple[str, ...]) -> int:
        """The engine accepts a command: room in its command and done queues and in the order
        queue of every space it claims."""
        for x in (self.dma_takes[0] + 1, self.dma_dones[0] + 1):
            if x > t:
                t = x
        for s in spaces:
            t = self.spaces[s].claim_ready(t)
        return t

    def _dma_start(self, issue: int) -> int:
        """The address side takes the command accepted at ``issue``: its first op's cycle."""
        g = max(issue + 1, self.dma_idle)
        self.dma_takes.append(g)
        return issue + self.p.mem.cmd_to_op["dma"] + (g - issue - 1)

    def _dma_done(self, t: int) -> int:
        d = max(t, self.dma_dones[-1] + 1)
        self.dma_dones.append(d)
        self._done(d + 1, DMA)
        return d

    def _mover_take(self, issue: int) -> int:
        take = max(issue + 1, self.mv_free)
        self._took(U_DMA, take)
        return take

    def _units(self, addr: int, n: int, stride: int) -> list[tuple[int, int]]:
        d = self.p.d
        step = stride or 2 * d
        return [(addr + k * step, 2 * min(d, n - k * d)) for k in range(-(-n // d))]

    def _op_load(self, ins: Instruction, m: Meta) -> int:
        p = self.p
        n = self._count(ins.n, "n")
        if ins.dst.space != "vrf":
            raise self.error(f"operand dst is in {ins.dst.space} but must be in vrf")
        y = self.r[ins.dst.base] + ins.dst.off if ins.dst.base else ins.dst.off
        space, src = self._space(ins.src, "src", SPACES)
        if ins.stride % 2:
            raise self.error(f"stride {ins.stride} is not a multiple of 2 bytes (FP16)")
        t, c = self._pre(m)
        if n == 0:
            self._issue(t, c)
            self.stats[S_INSTR + m.cls] += 1
            return RUN
        nv = -(-n // p.d)
        tw, cw = self._dst(y, nv)
        if tw > t:
            t, c = tw, cw
        t = self._sb(t, True, False)
        tu, cu = self._unit(U_DMA, DMA)
        if tu > t:
            t, c = tu, cu
        t = self._dma_ready(t, (space,))
        issue = self._issue(t, c)
        self.stats[S_INSTR + m.cls] += 1
        take = self._mover_take(issue)
        sp = self.spaces[space]
        sp.begin(self.now)
        tv = self._dma_start(issue)
        rv = p.mem.row_to_vector
        w = take
        out = []
        for addr, nb in self._units(src, n, ins.stride):
            rowt = NEG
            for row, lo, hi in self._unit_rows(addr, nb):
                a, rowt = self._read_row(sp, tv, row, lo, hi, "dma")
                sp.row_taken = rowt
                tv = a + 1
            w = max(w + 1, rowt + rv)
            out.append(w + 1)
        sp.end()
        self.dma_idle = tv
        self.mv_free = w
        self._dma_done(w + p.mem.load_done)
        self._count_bytes(space, self._mem_runs(space, src, n, ins.stride), False)
        self._write(y, out, DMA)
        self.stats[S_BUSY + U_DMA] += w - issue
        self._event(U_DMA, issue, w + 1, m)
        return RUN

    def _op_store(self, ins: Instruction, m: Meta) -> int:
        p = self.p
        n = self._count(ins.n, "n")
        if ins.src.space != "vrf":
            raise self.error(f"operand src is in {ins.src.space} but must be in vrf")
        a0 = self.r[ins.src.base] + ins.src.off if ins.src.base else ins.src.off
        space, dst = self._space(ins.dst, "dst", SPACES)
        if ins.stride % 2:
            raise self.error(f"stride {ins.stride} is not a multiple of 2 bytes (FP16)")
        t, c = self._pre(m)
        if n == 0:
            self._issue(t, c)
            self.stats[S_INSTR + m.cls] += 1
            return RUN
        nv = -(-n // p.d)
        av = self._src(a0, nv)
        t = self._sb(t, False, True)
        tu, cu = self._unit(U_DMA, DMA)
        if tu > t:
            t, c = tu, cu
        t = self._dma_ready(t, (space,))
        issue = self._issue(t, c)
        self.stats[S_INSTR + m.cls] += 1
        take = self._mover_take(issue)
        sp = self.spaces[space]
        sp.begin(self.now)
        tv = self._dma_start(issue)
        mm = p.mem
        slots = deque([NEG] * p.store_slots, maxlen=p.store_slots)  # Placer takes
        plq = deque([NEG] * mm.dma_place_depth, maxlen=mm.dma_place_depth)
        r = take
        s_prev = NEG
        last_b = NEG
        if m.op == "store_t":
            units = self._store_t_units(dst, n, ins.stride)
            per = max(1, p.d // p.l)
        else:
            units = [(self._unit_rows(addr, nb), None) for addr, nb in
                     self._units(dst, n, ins.stride)]
            per = 1
        for i, (rows, masks) in enumerate(units):
            v = i // per
            if i % per == 0:  # the mover reads vector v
                r = max(r + 1, slots[0] + 1)
                if av is not None and av[v] > r:
                    r = av[v]
            offer = r + 1
            s = NEG
            for j, (_row, lo, hi) in enumerate(rows):
                x = tv
                if j == 0 and plq[0] + 1 > x:  # the Placer's descriptor queue has room
                    x = plq[0] + 1
                a = self._accept_write(sp, x)
                tv = a + 1
                if j == 0:  # the Placer takes the unit
                    s = max(offer, a + 1, s_prev + 1)
                    plq.append(s)
                    s_prev = s
                    if (i + 1) % per == 0 or i == len(units) - 1:
                        slots.append(s)
                beats = masks[j] if masks is not None else None
                b = self._write_row(sp, a, s + mm.place_latency + j, lo, hi, beats)
                if b > last_b:
                    last_b = b
        sp.end()
        self.dma_idle = tv
        self.mv_free = r
        done = self._dma_done(last_b + mm.b_to_done[space])
        if m.op == "store_t":
            ch = self.chan[space]
            counts = store_t_counts(ch, store_t_key(ch, dst), n, ins.stride, p.d, p.l)
        else:
            counts = self._mem_runs(space, dst, n, ins.stride)
        self._count_bytes(space, counts, True)
        self._read(a0, nv, r, DMA)
        self.stats[S_BUSY + U_DMA] += done - issue
        self._event(U_DMA, issue, done + 1, m)
        return RUN

    def _store_t_units(self, dst: int, n: int, stride: int) -> list[tuple[list, list]]:
        """store_t: one unit per l-element chunk (element e of chunk j at dst + j * stride +
        e * 2d, one beat each): its rows (row, lo, hi) and per row the beats it writes."""
        p = self.p
        mm = p.mem
        rb, w = mm.row_bytes, mm.beat_bytes
        out = []
        for j in range(-(-n // p.l)):
            cnt = min(p.l, n - j * p.l)
            rows: dict[int, list[int]] = {}
            for e in range(cnt):
                a = dst + j * stride + e * 2 * p.d
                rows.setdefault(a // rb, []).append((a % rb) // w)
            keys = sorted(rows)
            out.append(([(r, min(rows[r]), max(rows[r])) for r in keys],
                        [tuple(rows[r]) for r in keys]))
        return out

    def _op_copy(self, ins: Instruction, m: Meta) -> int:
        p = self.p
        mm = p.mem
        n = self._count(ins.n, "n")
        sspace, src = self._space(ins.src, "src", SPACES)
        dspace, dst = self._space(ins.dst, "dst", SPACES)
        t, c = self._pre(m)
        if n == 0:  # nothing to do: issue drops it
            self._issue(t, c)
            self.stats[S_INSTR + m.cls] += 1
            return RUN
        tu, cu = self._unit(U_DMA, DMA)
        if tu > t:
            t, c = tu, cu
        t = self._dma_ready(t, tuple(dict.fromkeys((sspace, dspace))))
        issue = self._issue(t, c)
        self.stats[S_INSTR + m.cls] += 1
        take = self._mover_take(issue)
        self.mv_free = take + 1
        ss, ds = self.spaces[sspace], self.spaces[dspace]
        ss.begin(self.now)
        if ds is not ss:
            ds.begin(self.now)
        tv = self._dma_start(issue)
        rb, w = mm.row_bytes, mm.beat_bytes
        nbytes = 2 * n
        last_b = NEG
        down = sspace == dspace and src < dst < src + nbytes  # memmove: from the end
        if (src - dst) % rb == 0:  # fast: runs of whole rows, read then write
            for lo, hi in copy_runs(mm.block_rows[dspace], mm.block_rows[sspace], rb, src, dst,
                                    nbytes, down):
                lo_b = (lo % rb) // w
                hi_b = ((hi - 1) % rb) // w
                a, rowts = self._read_rows(ss, tv, (hi - 1) // rb - lo // rb + 1, lo_b, hi_b,
                                           "dma")
                ss.row_taken = rowts[-1]
                aw = self._accept_write(ds, a + 1)
                tv = aw + 1
                b = self._write_rows(ds, aw, [x + 1 for x in rowts], lo_b, hi_b)
                last_b = max(last_b, b)
        else:  # slow: each destination beat read as a unit, then its row written
            end = dst + nbytes
            rows = range(dst // rb, (end - 1) // rb + 1)
            for row in (reversed(rows) if down else rows):
                pos = max(row * rb, dst)
                rend = min((row + 1) * rb, end)
                got = NEG
                bpos = pos
                while bpos < rend:
                    bend = min((bpos // w + 1) * w, rend)
                    for r_, lo_b, hi_b in self._unit_rows(bpos + src - dst, bend - bpos):
                        a, rowt = self._read_row(ss, tv, r_, lo_b, hi_b, "dma")
                        ss.row_taken = rowt
                        tv = a + 1
                        got = max(got, rowt)
                    bpos = bend
                a = self._accept_write(ds, tv)
                tv = a + 1
                b = self._write_row(ds, a, got + mm.row_to_vector + 1, (pos % rb) // w,
                                    ((rend - 1) % rb) // w)
                last_b = max(last_b, b)
        ss.end()
        if ds is not ss:
            ds.end()
        self.dma_idle = tv
        done = self._dma_done(last_b + mm.b_to_done[dspace])
        self._count_bytes(sspace, run_counts(self.chan[sspace], src, nbytes), False)
        self._count_bytes(dspace, run_counts(self.chan[dspace], dst, nbytes), True)
        self.stats[S_BUSY + U_DMA] += done - issue
        self._event(U_DMA, issue, done + 1, m)
        return RUN

    def _mem_runs(self, space: str, addr: int, n: int, stride: int) -> tuple[int, ...]:
        ch = self.chan[space]
        if stride == 0:
            return run_counts(ch, addr, 2 * n)
        full, rem = divmod(n, self.p.d)
        counts = run_counts(ch, addr, 2 * self.p.d, full, stride)
        if rem:
            extra = run_counts(ch, addr + full * stride, 2 * rem)
            counts = tuple(x + y for x, y in zip(counts, extra, strict=True))
        return counts
