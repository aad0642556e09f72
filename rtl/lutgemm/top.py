"""``LutGemm``: the LUT-GEMM unit (``lutmv`` up to the FP32 accumulator) behind Amaranth streams.

One command is one ``lut_acc`` of one input row (``dfx.isa.golden.lutgemm``; docs/lutgemm.md):
``n`` output rows, ``ng`` groups of ``gs`` slices of ``S = mu * keys`` inputs, ``q`` bit-planes.
A batch is a sequence of commands (one per input row). The result is every row's FP32
accumulator, bit-exact with the golden model (the MPU's SFU_M epilogue does bias, FP16 rounding
and GELU). All sizes come from ``core.lutgemm`` (:meth:`LutGemm.from_core`); L = ``lanes``,
Sc = ``scalers``.

Streams (``amaranth.lib.stream``; payload bit 0 = element 0's bit 0):

* ``cmd`` (:func:`command_layout`): ``n`` (1..max_rows), ``ng`` (1..65535), ``gs``
  (1..max_group/S), ``q`` (1..max_q). Up to ``queue_depth`` commands are in flight.
* ``x``: S FP16 per beat, the inputs ``x[j*S .. j*S + S - 1]`` of slice j, slices in order
  (``ng * gs`` beats per command): the VRF read of the input vector cut into S-element pieces.
* ``signs``: L lane words of S bits per beat: word i (bits ``i*S ..``) = the signs of row
  ``rb*L + i`` for one (slice, plane), bit p <-> input p of the slice, 1 = +1. Beat order per
  command: ``for G: for s in 0..gs-1: for b in 0..q-1: for rb in 0..ceil(n/L)-1``. DMA mapping:
  the packed stream's sign part of group G is ``gs * q`` blocks of ``n * S/8`` bytes (rows
  0..n-1, S/8 bytes each); each block is cut into ``ceil(n/L)`` beats of ``L * S/8`` bytes taken
  little-endian (byte 0 -> payload bits 0..7), the last beat padded (its words for rows >= n are
  don't-care).
* ``scales``: ``Sc * (max_q + 1)`` FP16 per beat, of which the first ``Sc * (q + 1)`` are used:
  the scale part of group G (per row m: alpha[G, 0..q-1, m], z[G, m]) cut into
  ``ceil(n/Sc)`` beats of ``Sc * (q + 1) * 2`` bytes, little-endian, the last one padded. Beat c
  of a group holds rows ``c*Sc .. c*Sc + Sc - 1``: element ``j*(q+1) + b`` is scale b of row
  ``c*Sc + j`` (b = q: the offset z). The 32-byte alignment padding of a section is skipped.
* ``out`` (:func:`output_layout`): per command ``ceil(n/Sc)`` beats of Sc FP32 accumulators
  (rows ``c*Sc + j``; rows >= n are +0), ``last`` on the command's final beat. Canonical NaN
  ``0x7FC00000`` for every row when an input of a group was inf or NaN.

Architecture (module docs of :mod:`.builder`, :mod:`.lane`, :mod:`.scaler`):

1. **Table builder** (:class:`.TableBuilder`, ``build_latency``): one x beat -> ``keys`` tables
   of 2^mu (2^(mu-1) symmetric) exact entries, the slice sum and the inf/NaN flag, into one of
   **two table buffers** (registers): the next slice builds while the lanes read the current
   one. The slice sums are accumulated into the group input sum ``X[G]`` (a 4-entry queue to
   the scale stage).
2. **Row lanes** (L x :class:`.LutLane`, ``lookup_latency``): each cycle each lane takes one
   lane word of the current ``signs`` beat, does ``keys`` keyed reads and accumulates the group
   sum ``P[G, b, row]`` in its memory at (bank = G mod 2, rb, b); the beat is taken when a table
   is ready and the bank is free. The lanes take one beat per cycle as long as the scale stage
   keeps up (below).
3. **Scale stage** (Sc x :class:`.LutScaler`, :attr:`LutGemm.scaler_latency` = ``1 + mul_latency
   + add_latency + convert_latency`` + 1 from an op's issue to its FP32 result, the + 1 for the
   converter each pair of scalers shares, :class:`.LutConvertPair`): while the lanes fill one
   bank, it reads the finished group of the other bank. Scaler j owns rows ``c*Sc + j`` (chunk
   c; the lane ``(c mod L/Sc)*Sc + j``). Per group it issues **one op per cycle**: for each
   chunk c in order, its q + 1 terms on consecutive cycles (b = 0..q-1: ``alpha[G, b] * P[G,
   b]`` read from the lane; b = q: ``z[G] * X[G]`` from the input-sum queue). Each op multiplies
   the exact group sum by the scale's 11-bit significand (``mul_latency``), shifts it into place
   and adds it exactly into the row's fixed-point accumulator (:func:`.scaler.acc_bits` = 113
   bits at dfx-u280, units of 2^-48, one per chunk in the scaler's memory). The add is cut into
   ``add_latency`` skewed limbs with transparent limb memories, so ops on the same row may
   follow each other in consecutive cycles: no windows, no bubbles. The accumulator after the op
   of the command's last group with b = q is rounded to FP32 (RNE, ``convert_latency``, one
   converter per pair of scalers, the second scaler's one cycle later) and gives the row's
   result (exact ``sum_G (sum_b alpha*P + z*X)`` rounded once, the golden ``scale_sum``). Scale
   beats (one per chunk) go into 4 slots per scaler, released with the chunk's last term, so the
   loader runs up to 4 chunks ahead. A group takes the stage ``(q + 1) * ceil(n/Sc)`` cycles
   (:meth:`LutGemm.scaler_cycles`), starting ``lookup_latency + 1`` cycles after the lanes' last
   beat of it (the bank hand-over), while the lanes fill the next group in ``gs * q *
   ceil(n/L)`` cycles (:meth:`LutGemm.lane_cycles`). **Throughput condition**
   (:meth:`LutGemm.keeps_pace`, exact in the tests): the lanes take one beat per cycle with no
   wait iff ``(q + 1) * ceil(n/Sc) + lookup_latency <= gs * q * ceil(n/L)`` for each group and
   the next one (its gs and q on the right). With L = 2 Sc that is about ``gs >= 2 (q + 1) /
   q``; for n a multiple of L (R = n/L >= 2 row beats) the shortest groups that keep pace are gs
   = 5, 4, 3, 3 slices at q = 1, 2, 3, 4 (dfx-u280: 160, 128, 96, 96 inputs), and e.g. at n =
   1600 gs = 4, 3, 3, 3. With one scaler per lane (L = Sc), two-slice groups keep pace at q >= 2
   when ``(q - 1) * ceil(n/L) >= lookup_latency``; single-slice groups are always scaler-bound
   (q + 1 terms per row against q lane words). Otherwise the stage runs its groups back to back
   and the unit is scaler-bound (docs/lutgemm.md, Timing).

Back-pressure: the scale stage has one clock enable (``en``), low while the 2-entry output
buffer is full; the lanes and the builder stall through their stream handshakes only.
"""

from __future__ import annotations

from typing import Any

from amaranth.hdl import (
    Array,
    ClockSignal,
    Const,
    Instance,
    Module,
    Mux,
    ResetSignal,
    Signal,
    unsigned,
)
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..arith.fixed import sum_bits
from ..arith.fpformat import check_latency, check_pow2
from ..arith.pwl_table import delay
from ..bus.stream import Fifo2
from .builder import TableBuilder
from .convert import LutConvertPair
from .lane import LutLane
from .scaler import LutScaler, acc_bits, check_limbs

__all__ = ["LutGemm", "command_layout", "output_layout"]

XQ_DEPTH = 4
"""Group input sums queued between the builder and the scale stage."""

SCALE_SLOTS = 4
"""Scale beats (row chunks) held per scaler: the loader runs up to this far ahead of the scale
stage (a power of two)."""


def _bits(n: int) -> int:
    """Bits of a counter 0..n-1 (at least 1)."""
    return max((n - 1).bit_length(), 1)


def command_layout(max_rows: int, max_gs: int, max_q: int) -> data.StructLayout:
    """Payload of the command stream: ``n``, ``ng``, ``gs``, ``q`` (module doc)."""
    return data.StructLayout(
        {
            "n": unsigned(max_rows.bit_length()),
            "ng": unsigned(16),
            "gs": unsigned(max_gs.bit_length()),
            "q": unsigned(max_q.bit_length()),
        }
    )


def output_layout(scalers: int) -> data.StructLayout:
    """Payload of the output stream: ``data`` (``scalers`` FP32), ``last``."""
    return data.StructLayout({"data": data.ArrayLayout(32, scalers), "last": unsigned(1)})


def _add_leaf(m: Module, name: str, comp: Any) -> Any:
    m.submodules[name] = comp
    return comp


class _BlackboxLeaves:
    """Instantiates every lane and scaler as one Verilog module each (``<prefix>_lane``,
    ``<prefix>_scaler``), converted once: the dfx-u280 unit has 512 lanes and 256 scalers."""

    def __init__(self, prefix: str):
        self._prefix = prefix
        self._kinds: dict[str, Any] = {}

    def __call__(self, m: Module, name: str, comp: Any) -> Any:
        from amaranth.hdl import Value

        kind = f"{self._prefix}_{type(comp).__name__.lower()}"
        self._kinds.setdefault(kind, comp)
        ports: dict[str, Any] = {"i_clk": ClockSignal(), "i_rst": ResetSignal()}
        for path, member, value in comp.signature.flatten(comp):
            pname = "__".join(map(str, path))
            ports[("i_" if member.flow == In else "o_") + pname] = Value.cast(value)
        m.submodules[name] = Instance(kind, **ports)
        comp._MustUse__used = True  # stands in for the leaf; the first one is converted
        return comp

    def verilog(self) -> str:
        from amaranth.back import verilog

        return "".join(verilog.convert(comp, name=kind, emit_src=False)
                       for kind, comp in sorted(self._kinds.items()))


class LutGemm(wiring.Component):
    """The LUT-GEMM unit: table builder, L row lanes, Sc scalers, five streams (module doc).

    Parameters (``core.lutgemm``, :meth:`from_core`): ``mu``, ``keys``, ``lanes``, ``scalers``
    (powers of two, scalers <= lanes), ``max_q`` (1..7), ``max_rows`` (a multiple of lanes and
    of scalers), ``max_group`` (a multiple of mu * keys), ``symmetric``, ``build_latency``,
    ``lookup_latency``, ``convert_latency`` (>= 1), ``mul_latency``, ``add_latency`` (>= 1, the
    limbs of the scalers' row accumulator);
    ``queue_depth`` (commands in flight, a power of two, default 4). ``leaf`` is how lanes and
    scalers are added (:meth:`verilog` passes black boxes); leave it alone.
    """

    def __init__(self, *, mu: int, keys: int, lanes: int, scalers: int, max_q: int,
                 max_rows: int, max_group: int, symmetric: bool, build_latency: int,
                 lookup_latency: int, convert_latency: int, mul_latency: int,
                 add_latency: int, queue_depth: int = 4, leaf: Any = _add_leaf):
        self._params = {k: v for k, v in locals().items()
                        if k not in ("self", "leaf", "__class__")}
        check_pow2(mu, "mu")
        check_pow2(keys, "keys")
        self._lanes = check_pow2(lanes, "lanes")
        self._scalers = check_pow2(scalers, "scalers")
        if scalers > lanes:
            raise ValueError(f"scalers ({scalers}) must be at most lanes ({lanes})")
        if mu > 8:
            raise ValueError(f"mu must be at most 8, not {mu}")
        self._slice = mu * keys
        if self._slice % 8:
            raise ValueError(f"mu * keys = {self._slice} must be a multiple of 8")
        if not isinstance(max_q, int) or not 1 <= max_q <= 7:
            raise ValueError(f"max_q must be an integer in 1..7, not {max_q!r}")
        if not isinstance(max_rows, int) or max_rows < lanes or max_rows % lanes:
            raise ValueError(f"max_rows must be a positive multiple of lanes, not {max_rows!r}")
        if (not isinstance(max_group, int) or max_group < self._slice
                or max_group % self._slice or max_group > 8192):
            raise ValueError(f"max_group must be a multiple of mu * keys up to 8192, "
                             f"not {max_group!r}")
        self._lat = {
            "build": check_latency(build_latency, 1, name="build_latency"),
            "lookup": check_latency(lookup_latency, 1, name="lookup_latency"),
            "convert": check_latency(convert_latency, 1, name="convert_latency"),
            "mul": check_latency(mul_latency, name="mul_latency"),
            "add": check_latency(add_latency, 1, name="add_latency"),
        }
        check_limbs(acc_bits(sum_bits(max_group), max_q), add_latency)
        self._queue_depth = check_pow2(queue_depth, "queue_depth")
        self._mu, self._keys, self._symmetric = mu, keys, bool(symmetric)
        self._max_q, self._max_rows, self._max_group = max_q, max_rows, max_group
        self._leaf = leaf
        super().__init__(
            {
                "cmd": In(stream.Signature(self.command_layout)),
                "x": In(stream.Signature(data.ArrayLayout(16, self._slice))),
                "signs": In(stream.Signature(data.ArrayLayout(self._slice, lanes))),
                "scales": In(stream.Signature(data.ArrayLayout(16, scalers * (max_q + 1)))),
                "out": Out(stream.Signature(output_layout(scalers))),
            }
        )

    @classmethod
    def from_core(cls, core: Any, **overrides: Any) -> LutGemm:
        """The unit of a :class:`dfx.isa.config.CoreConfig` (``core.lutgemm``); keyword
        arguments override any parameter."""
        c = core.lutgemm
        params: dict[str, Any] = {
            "mu": c.mu, "keys": c.keys, "lanes": c.lanes, "scalers": c.scalers,
            "max_q": c.max_q, "max_rows": c.max_rows, "max_group": c.max_group,
            "symmetric": c.symmetric, "build_latency": c.build_latency,
            "lookup_latency": c.lookup_latency, "convert_latency": c.convert_latency,
            "mul_latency": c.mul_latency, "add_latency": c.add_latency,
        }  # fmt: skip
        params.update(overrides)
        return cls(**params)

    # ------------------------------------------------------------------------- properties

    @property
    def params(self) -> dict[str, Any]:
        return dict(self._params)

    @property
    def slice(self) -> int:
        return self._slice

    @property
    def lanes(self) -> int:
        return self._lanes

    @property
    def scalers(self) -> int:
        return self._scalers

    @property
    def max_q(self) -> int:
        return self._max_q

    @property
    def max_rows(self) -> int:
        return self._max_rows

    @property
    def max_group(self) -> int:
        return self._max_group

    @property
    def build_latency(self) -> int:
        return self._lat["build"]

    @property
    def lookup_latency(self) -> int:
        return self._lat["lookup"]

    @property
    def first_lookup_latency(self) -> int:
        """Cycles from a slice's ``x`` beat (accepted) to the lanes' first sign beat on its
        tables (accepted) when nothing stalls: the builder, then the table-buffer register."""
        return self._lat["build"] + 1

    @property
    def handover_latency(self) -> int:
        """Cycles from the lanes' last sign beat of a group (accepted) to the scale stage's
        first op on that group, when the stage is free: look-up, then the bank hand-over."""
        return self._lat["lookup"] + 1

    @property
    def result_latency(self) -> int:
        """Cycles from a command's last scale op (issued) to its last ``out`` beat (valid):
        the scaler pipeline, then the output buffer."""
        return self.scaler_latency + 1

    @property
    def command_layout(self) -> data.StructLayout:
        return command_layout(self._max_rows, self._max_group // self._slice, self._max_q)

    @property
    def sum_bits(self) -> int:
        """Width of the exact group sums (``max_group`` FP16 terms)."""
        return sum_bits(self._max_group)

    @property
    def acc_bits(self) -> int:
        """Width of a scaler's exact row accumulator (units of 2^-48)."""
        return acc_bits(self.sum_bits, self._max_q)

    @property
    def paired_convert(self) -> bool:
        """Two scalers share one FP32 converter (:class:`.LutConvertPair`; with at least two
        scalers): a converter per scaler is the larger part of its logic, and only a row's
        last op is rounded (docs/lutgemm.md, "Cost")."""
        return self._scalers >= 2

    @property
    def scaler_latency(self) -> int:
        """En-cycles from a scale op's issue to its rounded accumulator: the scaler to its
        accumulator, then the converter (shared by a pair: one en-cycle more)."""
        cvt = self._lat["convert"] + (1 if self.paired_convert else 0)
        return 1 + self._lat["mul"] + self._lat["add"] + cvt

    @property
    def latency(self) -> int:
        """Cycles from a command's last sign beat (accepted) to its last output beat (valid)
        when nothing stalls, the scale stage is idle and the command has one row chunk
        (n <= scalers): lookup, bank hand-over, the chunk's q + 1 terms (at most max_q cycles
        to the last op), scaler pipeline, output buffer. Every further chunk of rows adds
        q + 1 cycles."""
        return self._lat["lookup"] + 1 + self._max_q + self.scaler_latency + 1

    def lane_cycles(self, n: int, ng: int, gs: int, q: int) -> int:
        """Sign beats of a command: one per cycle when nothing stalls."""
        return ng * gs * q * -(-n // self._lanes)

    def scaler_cycles(self, n: int, q: int) -> int:
        """Scale-stage cycles per group: q + 1 terms for each of the ceil(n / Sc) row chunks,
        one per cycle."""
        return (q + 1) * -(-n // self._scalers)

    def keeps_pace(self, n: int, gs: int, q: int, *, next_gs: int | None = None,
                   next_q: int | None = None) -> bool:
        """The throughput condition: the lanes take the next group's sign beats (``next_gs``,
        ``next_q``: by default the same shape) one per cycle without waiting for the scale
        stage iff the stage, which starts this group ``lookup_latency + 1`` cycles after the
        lanes' last beat of it, frees its bank in time:
        ``scaler_cycles(n, q) + lookup_latency <= next_gs * next_q * ceil(n / L)``."""
        gs2 = gs if next_gs is None else next_gs
        q2 = q if next_q is None else next_q
        return self.scaler_cycles(n, q) + self._lat["lookup"] <= self.lane_cycles(n, 1, gs2, q2)

    def verilog(self, name: str = "lutgemm", *, flat: bool = False) -> str:
        """Verilog of this unit as module ``name``; the lanes and scalers are emitted once as
        modules ``<name>_lutlane`` and ``<name>_lutscaler`` and instantiated (``flat=True``
        converts the whole design in one piece, slow at dfx-u280 size)."""
        from amaranth.back import verilog

        if flat:
            return verilog.convert(self, name=name, emit_src=False)
        self._MustUse__used = True  # the twin below stands in for this instance
        leaves = _BlackboxLeaves(name)
        twin = LutGemm(**self._params, leaf=leaves)
        return verilog.convert(twin, name=name, emit_src=False) + leaves.verilog()

    # ------------------------------------------------------------------------- hardware

    def elaborate(self, platform: Any) -> Module:  # noqa: C901 - one sequencer per stage
        m = Module()
        L, Sc, S = self._lanes, self._scalers, self._slice  # noqa: N806
        F = L // Sc  # lanes per scaler  # noqa: N806
        lat = self._lat
        max_q = self._max_q
        lb_l, lb_s = L.bit_length() - 1, Sc.bit_length() - 1
        qbits = (max_q - 1).bit_length()
        rbits = (self._max_rows // L - 1).bit_length()
        lane_depth = 2 << (qbits + rbits)
        chunks_max = self._max_rows // Sc
        acc_depth = 1 << max((chunks_max - 1).bit_length(), 1)
        wg = self.sum_bits
        leaf = self._leaf

        # ---- command queue: written from cmd; read by the builder (bp), the lanes (lp), the
        # scale loader (kp) and the scale stage (sp), in that order of progress
        layout = self.command_layout
        Q = self._queue_depth  # noqa: N806
        queue = Array(Signal(layout.size, name=f"cmdq{i}") for i in range(Q))
        wp, bp, lp, kp, sp = (Signal(range(2 * Q), name=n) for n in ("wp", "bp", "lp", "kp", "sp"))

        def idx(p):
            return p[: Q.bit_length() - 1] if Q > 1 else Const(0, 1)

        def cmd_at(p):
            return data.View(layout, queue[idx(p)])

        m.d.comb += self.cmd.ready.eq((wp - sp)[: Q.bit_length()] != Q)
        with m.If(self.cmd.valid & self.cmd.ready):
            m.d.sync += [queue[idx(wp)].eq(self.cmd.payload.as_value()), wp.eq(wp + 1)]

        # ================================================================ table builder
        m.submodules.builder = bld = TableBuilder(
            self._mu, self._keys, symmetric=self._symmetric, latency=lat["build"])
        bcur = cmd_at(bp)
        b_have = bp != wp
        bs = Signal(self.command_layout["gs"].shape, name="b_slice")
        bg = Signal(16, name="b_group")
        en_b = Signal(name="en_b")
        m.d.comb += [self.x.ready.eq(en_b & b_have), bld.en.eq(en_b)]
        x_take = self.x.valid & self.x.ready
        m.d.comb += [bld.x[k].eq(self.x.payload[k]) for k in range(S)]
        m.d.comb += bld.valid_in.eq(x_take)
        b_glast = bs == bcur.gs - 1
        with m.If(x_take):
            m.d.sync += bs.eq(Mux(b_glast, 0, bs + 1))
            with m.If(b_glast):
                m.d.sync += bg.eq(Mux(bg == bcur.ng - 1, 0, bg + 1))
                with m.If(bg == bcur.ng - 1):
                    m.d.sync += bp.eq(bp + 1)
        o_first = delay(m, bs == 0, lat["build"], en_b, "b_first")
        o_glast = delay(m, b_glast, lat["build"], en_b, "b_glast")

        # two table buffers (registers) and the group input sum queue
        entries = bld.entries
        eshape = bld.tables[0][0].shape()
        tabs = [[[Signal(eshape, name=f"tab{s}_{t}_{i}") for i in range(entries)]
                 for t in range(self._keys)] for s in range(2)]
        t_wr, t_rd = Signal(name="tab_wr"), Signal(name="tab_rd")
        t_count = Signal(range(3), name="tab_count")
        xq = Array(Signal(wg + 1, name=f"xq{i}") for i in range(XQ_DEPTH))  # {bad, X}
        xq_w, xq_r = (Signal(range(2 * XQ_DEPTH), name=n) for n in ("xq_w", "xq_r"))
        xq_room = (xq_w - xq_r)[: XQ_DEPTH.bit_length()] != XQ_DEPTH
        xacc = Signal(wg + 1, name="xacc")
        can_write = (t_count < 2) & (~o_glast | xq_room)
        m.d.comb += en_b.eq(~bld.valid_out | can_write)
        t_push = bld.valid_out & can_write
        t_pop = Signal(name="tab_pop")
        m.d.sync += t_count.eq(t_count + t_push - t_pop)
        x_new = Signal(wg + 1, name="x_new")
        m.d.comb += [
            x_new[:wg].eq(Mux(o_first, 0, xacc[:wg].as_signed()) + bld.xsum),
            x_new[wg].eq(Mux(o_first, 0, xacc[wg]) | bld.bad),
        ]
        with m.If(t_push):
            m.d.sync += [t_wr.eq(~t_wr), xacc.eq(x_new)]
            for s in range(2):
                with m.If(t_wr == s):
                    for t in range(self._keys):
                        for i in range(entries):
                            m.d.sync += tabs[s][t][i].eq(bld.tables[t][i])
            with m.If(o_glast):
                m.d.sync += [xq[xq_w[: XQ_DEPTH.bit_length() - 1]].eq(x_new), xq_w.eq(xq_w + 1)]

        # ================================================================ row lanes
        lcur = cmd_at(lp)
        l_have = lp != wp
        rb = Signal(rbits + 1 if rbits else 1, name="l_rb")
        lb = Signal(range(max_q), name="l_plane")
        ls = Signal(self.command_layout["gs"].shape, name="l_slice")
        lgi = Signal(16, name="l_group")
        lg = Signal(3, name="l_gcount")  # global group counters (mod 8)
        ldone = Signal(3, name="l_done")
        sdone = Signal(3, name="s_done")
        rows_l = (lcur.n + (L - 1)) >> lb_l
        m.d.comb += self.signs.ready.eq(l_have & (t_count != 0) & ((lg - sdone)[:3] <= 1))
        l_take = self.signs.valid & self.signs.ready
        rb_last = rb == rows_l - 1
        b_last = lb == lcur.q - 1
        s_last = ls == lcur.gs - 1
        g_last = lgi == lcur.ng - 1
        with m.If(l_take):
            m.d.sync += rb.eq(Mux(rb_last, 0, rb + 1))
            with m.If(rb_last):
                m.d.sync += lb.eq(Mux(b_last, 0, lb + 1))
                with m.If(b_last):
                    m.d.sync += [ls.eq(Mux(s_last, 0, ls + 1)), t_rd.eq(~t_rd)]
                    with m.If(s_last):
                        m.d.sync += [lgi.eq(Mux(g_last, 0, lgi + 1)), lg.eq(lg + 1)]
                        with m.If(g_last):
                            m.d.sync += lp.eq(lp + 1)
        m.d.comb += t_pop.eq(l_take & rb_last & b_last)
        l_gend = l_take & rb_last & b_last & s_last
        with m.If(delay(m, l_gend, lat["lookup"], Const(1), "l_gend", reset_less=False)):
            m.d.sync += ldone.eq(ldone + 1)
        l_addr = Signal(1 + rbits + qbits, name="l_addr")
        m.d.comb += l_addr.eq(_cat_addr(lb, rb, lg[0], qbits, rbits))

        # current table buffer, broadcast to every lane
        cur_tab = [[Mux(t_rd, tabs[1][t][i], tabs[0][t][i]) for i in range(entries)]
                   for t in range(self._keys)]
        en = Signal(name="en")  # the scale stage's clock enable
        s_paddr = Signal(1 + rbits + qbits, name="s_paddr")
        lanes = []
        for i in range(L):
            lane = leaf(m, f"lane{i}", LutLane(
                self._mu, self._keys, symmetric=self._symmetric, depth=lane_depth,
                max_group=self._max_group, lookup_latency=lat["lookup"]))
            m.d.comb += [
                lane.word.eq(self.signs.payload[i]),
                lane.valid.eq(l_take),
                lane.first.eq(ls == 0),
                lane.addr.eq(l_addr),
                lane.rd_addr.eq(s_paddr),
                lane.rd_en.eq(en),
            ]
            for t in range(self._keys):
                m.d.comb += [lane.tables[t][e].eq(cur_tab[t][e]) for e in range(entries)]
            lanes.append(lane)

        # ================================================================ scale loader
        kcur = cmd_at(kp)
        k_have = kp != wp
        kc = Signal(range(chunks_max + 1), name="k_chunk")
        kg = Signal(16, name="k_group")
        chunks_k = (kcur.n + (Sc - 1)) >> lb_s
        avail = Signal(range(SCALE_SLOTS + 1), name="sc_avail")
        swr = Signal(range(SCALE_SLOTS), name="sc_wr")
        m.d.comb += self.scales.ready.eq(k_have & (avail < SCALE_SLOTS))
        k_take = self.scales.valid & self.scales.ready
        kc_last = kc == chunks_k - 1
        with m.If(k_take):
            m.d.sync += [kc.eq(Mux(kc_last, 0, kc + 1)), swr.eq(swr + 1)]
            with m.If(kc_last):
                m.d.sync += kg.eq(Mux(kg == kcur.ng - 1, 0, kg + 1))
                with m.If(kg == kcur.ng - 1):
                    m.d.sync += kp.eq(kp + 1)
        raw = self.scales.payload

        # ================================================================ scale stage
        # one op per cycle: for each row chunk c of the group, its q + 1 terms (b = 0..q-1:
        # alpha_b * P[G, b], b = q: z * X[G]) on consecutive cycles; a chunk's scale slot is
        # released with its last term
        scur = cmd_at(sp)
        s_have = sp != wp
        chunks = (scur.n + (Sc - 1)) >> lb_s
        sgi = Signal(16, name="s_group")
        c = Signal(range(chunks_max), name="s_chunk")
        sb = Signal(range(max_q + 1), name="s_term")
        slot = Signal(range(SCALE_SLOTS), name="sc_rd")
        issue = Signal(name="s_issue")
        m.d.comb += issue.eq(en & s_have & (ldone != sdone) & (avail != 0))
        offset = sb == scur.q
        c_last = c == chunks - 1
        grp_end = offset & c_last
        retire = issue & offset
        m.d.sync += avail.eq(avail + k_take - retire)
        with m.If(issue):
            m.d.sync += sb.eq(Mux(offset, 0, sb + 1))
            with m.If(offset):
                m.d.sync += [slot.eq(slot + 1), c.eq(Mux(c_last, 0, c + 1))]
            with m.If(grp_end):
                m.d.sync += [sdone.eq(sdone + 1), xq_r.eq(xq_r + 1),
                             sgi.eq(Mux(sgi == scur.ng - 1, 0, sgi + 1))]
                with m.If(sgi == scur.ng - 1):
                    m.d.sync += sp.eq(sp + 1)

        final = (sgi == scur.ng - 1) & offset
        m.d.comb += s_paddr.eq(_cat_addr(sb, c >> (F.bit_length() - 1), sdone[0], qbits, rbits))
        head = xq[xq_r[: XQ_DEPTH.bit_length() - 1]]
        x1 = delay(m, head, 1, en, "x1")
        off1 = delay(m, offset, 1, en, "off1")
        f1 = delay(m, c[: F.bit_length() - 1] if F > 1 else Const(0, 1), 1, en, "f1")
        row_ok = Signal(Sc, name="row_ok")
        for j in range(Sc):
            m.d.comb += row_ok[j].eq(((c << lb_s) + j) < scur.n)
        tags = {"final": final, "last": final & c_last, "rows": row_ok}
        scalers = []
        paired = self.paired_convert
        for j in range(Sc):
            sc = leaf(m, f"scaler{j}", LutScaler(
                width=wg, max_q=max_q, slots=SCALE_SLOTS, acc_depth=acc_depth,
                convert_latency=lat["convert"], mul_latency=lat["mul"], add_latency=lat["add"],
                convert=not paired))
            cands = [lanes[f * Sc + j].rd_data for f in range(F)]
            p_lane = Array(cands)[f1] if F > 1 else cands[0]
            m.d.comb += [
                sc.en.eq(en),
                sc.valid.eq(issue),
                sc.slot.eq(slot),
                sc.b.eq(sb),
                sc.addr.eq(c),
                sc.init.eq((sgi == 0) & (sb == 0)),
                sc.p.eq(Mux(off1, x1[:wg].as_signed(), p_lane)),
                sc.nan.eq(x1[wg]),
                sc.sc_we.eq(k_take),
                sc.sc_waddr.eq(swr),
            ]
            # un-shuffle the raw beat: scale b of row j is element j * (q + 1) + b
            for b in range(max_q + 1):
                val = Const(0, 16)
                for q in range(max(b, 1), max_q + 1):
                    val = Mux(kcur.q == q, raw[j * (q + 1) + b], val)
                m.d.comb += sc.sc_wdata[b].eq(val)
            scalers.append(sc)

        # ---- row results: each scaler's converter, or one per pair of scalers for the
        # final ops (a row chunk's last op, at least q + 1 >= 2 cycles apart)
        if paired:
            take = delay(m, issue & final, 1 + lat["mul"] + lat["add"], en, "cvt_take",
                         reset_less=False)
            results = []
            for i in range(Sc // 2):
                pair = leaf(m, f"convert{i}", LutConvertPair(self.acc_bits, lat["convert"]))
                a, b = scalers[2 * i], scalers[2 * i + 1]
                m.d.comb += [
                    pair.en.eq(en),
                    pair.take.eq(take),
                    pair.acc[0].eq(a.acc), pair.acc[1].eq(b.acc),
                    pair.nan[0].eq(a.acc_nan), pair.nan[1].eq(b.acc_nan),
                ]
                results += [pair.result[0], pair.result[1]]
        else:
            results = [sc.result for sc in scalers]

        # ---- results out
        m.submodules.out_buf = out_buf = Fifo2(output_layout(Sc))
        lat_s = self.scaler_latency
        v_o = delay(m, issue, lat_s, en, "v_o", reset_less=False)
        final_o = delay(m, tags["final"], lat_s, en, "final_o")
        last_o = delay(m, tags["last"], lat_s, en, "last_o")
        rows_o = delay(m, tags["rows"], lat_s, en, "rows_o")
        wv = out_buf.w_data
        m.d.comb += [wv.data[j].eq(Mux(rows_o[j], results[j], 0)) for j in range(Sc)]
        m.d.comb += [
            wv.last.eq(last_o),
            out_buf.w_en.eq(en & v_o & final_o),
            self.out.valid.eq(out_buf.r_rdy),
            self.out.payload.eq(out_buf.r_data),
            out_buf.r_en.eq(self.out.ready),
            en.eq(out_buf.w_rdy),
        ]
        return m


def _cat_addr(b: Any, rb: Any, bank: Any, qbits: int, rbits: int) -> Any:
    """Lane memory address {bank, rb, b} (b in the low ``qbits`` bits)."""
    from amaranth.hdl import Cat

    parts = []
    if qbits:
        parts.append(b[:qbits])
    if rbits:
        parts.append(rb[:rbits])
    parts.append(bank)
    return Cat(*parts)
