"""What every part of the card model shares: time constants, the kinds of work and units,
the layout of the per-card statistics vector, and the results of one simulation step.

The statistics vector holds only additive counters (so a replayed stretch of loop iterations
adds ``m`` times its difference, sim/timing/memo.py); docs/timing.md ("Report") says what each
one means.
"""

from __future__ import annotations

from typing import Any

NEG = -(1 << 62)
"""A time before everything: "free since forever", "never written"."""

# Kinds of work (the critical-path breakdown: what in-order issue waited for) and units.
MATRIX, ATTENTION, VECTOR, RING, DMA, CONTROL = range(6)
CATEGORIES = ("matrix", "attention", "vector", "ring", "dma", "control")
U_MPU, U_VPU, U_DMA, U_TX, U_RX, U_LUT = range(6)
UNITS = ("mpu", "vpu", "dma", "router_tx", "router_rx", "lut")
CLASSES = ("control", "integer", "matrix", "vector", "scalar", "dma", "router", "lutgemm")
# Occupancy classes in priority order: a cycle counts for the first class active in it.
O_MATRIX, O_ATTENTION, O_VECTOR, O_RING, O_DMA, O_IDLE = range(6)
OCCUPANCY = ("matrix", "attention", "vector", "ring_sync", "dma_stall", "idle")
UNIT_CLASS = (O_MATRIX, O_VECTOR, O_DMA, O_RING, O_RING, O_MATRIX)

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
SPACE_BYTES = {"hbm": S_BYTES, "ddr": S_BYTES + 2, "wbuf": S_BYTES + 4}

# What one step of a card did (CardSim.step).
RUN, BLOCKED, HEAD, HALTED = range(4)


class Accounting:
    """Mixin of :class:`~.card.CardSim`: the occupancy sweep (each cycle of the card's timeline
    counted once, for the highest-priority class active in it) and the trace."""

    stats: list[int]
    pc: int
    trace: list[tuple] | None

    def _reset_accounting(self) -> None:
        self.stats = [0] * N_STATS
        self.token_times: list[int] = []
        self.occ: list[tuple[int, int, int]] = []  # unit activity not yet counted
        self.front = 0  # cycles before this are counted in S_OCC
        self.snap_at = -1  # tokens after which to snapshot the statistics (end of the prompt)
        self.snap: list[int] | None = None

    def _key_accounting(self, f: Any, ref: int, now: int) -> tuple:
        occ = tuple(sorted((max(s, now) - ref, e - ref, k) for s, e, k in self.occ if e > now))
        return occ, f(self.front)

    def _shift_accounting(self, dt: int) -> None:
        self.occ = [(s + dt, e + dt, k) for s, e, k in self.occ]
        self.front += dt

    def _event(self, unit: int, start: int, end: int, m: Any) -> None:
        """Unit ``unit`` worked on ``m`` in cycles [start, end): occupancy and trace."""
        if end > start:
            k = O_ATTENTION if unit == U_MPU and m.attention else UNIT_CLASS[unit]
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
