"""``Mpu``: the Matrix Processing Unit (DFX §2.4: MFU + SFU_M) behind Amaranth streams.

One command is one matrix-vector product ``y = act(mask(scale * (W x + b)))`` of a single input
row over ``KT x NT`` weight tiles of d x l FP16 (DFX §2.3), bit-exact with the golden
``dfx.isa.golden.ops.matvec`` (docs/numerics.md). The unit takes one tile per cycle.

Streams (``amaranth.lib.stream``, valid/ready/payload):

* ``cmd`` (:func:`command_layout`): ``kt``, ``nt`` (1..65535; 0 means 65536), ``use_bias``,
  ``use_scale`` + ``scale`` (FP32 bits), ``mask`` + ``limit`` (signed: column ``n`` is masked
  when ``n > limit``, every column when limit < 0), ``gelu``, ``rowmax``. Up to ``queue_depth``
  commands are in flight.
* ``tiles`` (:func:`tile_layout`): the weights ``w[j][i] = W[kt*d + i, nt*l + j]`` (the golden
  tile, lane-major) and the input portion ``x = x[kt*d : kt*d + d]``, in the order of
  :func:`tile_order` (the operand collector's job, DFX §2.6).
* ``bias``: l FP16 per output group, in nt order, for commands with ``use_bias``.
* ``out`` (:func:`output_layout`): ``ceil(NT*l / d)`` vectors of d FP16 per command, the last
  flagged ``last`` and padded with +0 (-65504 when ``mask``).
* ``rowmax``: FP32 bits of the golden ``reduce_max16`` of the command's NT*l outputs, for
  commands with ``rowmax``.

Tile order contract (DFX §2.3 zig-zag with block width G = ``interleave`` >= ``add_latency``):
output groups are taken in blocks of G; inside a block the tiles go kt-major, group-minor::

    for b in range(ceil(NT / G)):
        for kt in range(KT):
            for nt in range(b*G, min(NT, b*G + G)):
                tile (nt, kt)

so the x portion is reused G times in a row and consecutive tiles of one output group are G
cycles apart, which keeps the single FP32 accumulator per lane busy every cycle with exactly
the golden summation order. A block with fewer than ``add_latency`` groups (only the last one of
a command with ``NT mod G < add_latency``, and only if KT > 1) gets idle cycles between its kt
rounds; everything else streams at one tile per cycle.

Back-pressure: one global clock enable stalls the whole pipeline while an output buffer is
full or a needed bias has not arrived; nothing is lost or duplicated.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from amaranth.hdl import Array, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from dfx.isa.golden import tables as gtab

from ..arith.fp32_to_fp16 import DEFAULT_CVT_LATENCY
from ..arith.fpformat import check_latency, check_pow2
from ..bus.stream import Fifo2
from ..leaves import Leaf, LeafModules, add_leaf, mark_used
from .mfu import Mfu
from .sfu import SfuM

__all__ = [
    "Mpu",
    "command_layout",
    "output_layout",
    "tile_layout",
    "tile_order",
    "zigzag_interleave",
]


def command_layout() -> data.StructLayout:
    """Payload of the command stream (see the module doc)."""
    return data.StructLayout(
        {
            "kt": unsigned(16),
            "nt": unsigned(16),
            "use_bias": unsigned(1),
            "use_scale": unsigned(1),
            "mask": unsigned(1),
            "gelu": unsigned(1),
            "rowmax": unsigned(1),
            "limit": signed(32),
            "scale": unsigned(32),
        }
    )


def tile_layout(d: int, l: int) -> data.StructLayout:  # noqa: E741
    """Payload of the tile stream: ``x`` (d FP16), then ``w`` (l lanes of d FP16)."""
    return data.StructLayout(
        {"x": data.ArrayLayout(16, d), "w": data.ArrayLayout(data.ArrayLayout(16, d), l)}
    )


def output_layout(d: int) -> data.StructLayout:
    """Payload of the output stream: ``data`` (d FP16), ``last`` (the command's last vector)."""
    return data.StructLayout({"data": data.ArrayLayout(16, d), "last": unsigned(1)})


def tile_order(kt: int, nt: int, interleave: int) -> Iterator[tuple[int, int]]:
    """The ``(nt, kt)`` tile sequence the MPU expects for one command (module doc)."""
    for base in range(0, nt, interleave):
        for k in range(kt):
            for n in range(base, min(nt, base + interleave)):
                yield n, k


def zigzag_interleave(d: int, l: int, add_latency: int) -> int:  # noqa: E741
    """The default block width G of :func:`tile_order` (DFX §2.3 zig-zag): the fewest whole
    output vectors (d/l output groups each) covering the accumulator latency,
    ``G = (d/l) * ceil(add_latency / (d/l))`` (12 at dfx-u280: 3 vectors of 4 groups >= 11).
    Blocks then hold whole vectors, so no vector waits for the next block. The timing model
    reads it back as ``Mpu.from_core(core).interleave`` (docs/timing.md, "MPU")."""
    per_vector = max(1, d // l)
    return per_vector * -(-add_latency // per_vector)


class Mpu(wiring.Component):
    """MFU + SFU_M with command, tile, bias, output and row-max streams (module doc).

    Parameters: ``d``, ``l`` (powers of two, l <= d), ``mul_latency`` (FP16 multipliers; also
    the default scale multiplier), ``dot_latency`` (the rest of the lane dot product:
    alignment, integer tree, rounding), ``add_latency`` (FP32 accumulator and bias adders;
    >= 1), ``scale_latency
    (FP32 multiplier), ``cvt_latency`` (FP32 -> FP16), ``gelu_table`` (a golden gelu
    :class:`~dfx.isa.golden.tables.PwlTable`) and ``gelu_latency``, ``interleave`` (block width
    G of the tile order, >= add_latency; default :func:`zigzag_interleave`), ``queue_depth``
    (commands in flight, a power of two; default the power of two above ``mfu_latency + 1``,
    which lets even one-tile commands follow each other every cycle). ``leaf`` is how
    arithmetic blocks are added (:meth:`verilog` passes black boxes); leave it alone.
    """

    def __init__(
        self,
        d: int,
        l: int,  # noqa: E741
        *,
        mul_latency: int,
        dot_latency: int,
        add_latency: int,
        gelu_table: Any,
        gelu_latency: int,
        scale_latency: int | None = None,
        cvt_latency: int = DEFAULT_CVT_LATENCY,
        interleave: int | None = None,
        queue_depth: int | None = None,
        leaf: Leaf = add_leaf,
    ):
        self._params = {
            "d": d,
            "l": l,
            "mul_latency": mul_latency,
            "dot_latency": dot_latency,
            "add_latency": add_latency,
            "gelu_table": gelu_table,
            "gelu_latency": gelu_latency,
            "scale_latency": scale_latency,
            "cvt_latency": cvt_latency,
            "interleave": interleave,
            "queue_depth": queue_depth,
        }
        self._d = check_pow2(d, "d")
        self._l = check_pow2(l, "l")
        if l > d:
            raise ValueError(f"l must be a power of two <= d ({d}), not {l}")
        self._add_latency = check_latency(add_latency, 1, name="add_latency")
        self._mul_latency = check_latency(mul_latency, name="mul_latency")
        if scale_latency is None:
            scale_latency = self._mul_latency
        if interleave is None:
            interleave = zigzag_interleave(self._d, self._l, self._add_latency)
        self._interleave = check_latency(interleave, self._add_latency, name="interleave")
        if queue_depth is not None:
            check_pow2(queue_depth, "queue_depth")
        if not isinstance(gelu_table, gtab.PwlTable) or gelu_table.fn != "gelu":
            raise TypeError(
                f"gelu_table must be a golden gelu PwlTable "
                f"(dfx.isa.golden.tables.table_from_spec('gelu', ...)), not {gelu_table!r}"
            )
        self._mfu = Mfu(
            d,
            l,
            mul_latency=self._mul_latency,
            dot_latency=dot_latency,
            add_latency=self._add_latency,
            slots=self._interleave,
            leaf=leaf,
        )
        self._sfu = SfuM(
            d,
            l,
            add_latency=self._add_latency,
            scale_latency=scale_latency,
            cvt_latency=cvt_latency,
            gelu_table=gelu_table,
            gelu_latency=gelu_latency,
            leaf=leaf,
        )
        self._gelu_table = gelu_table
        if queue_depth is None:  # enough for back-to-back one-tile commands
            queue_depth = 1 << (self._mfu.latency + 1).bit_length()
        self._queue_depth = queue_depth
        super().__init__(
            {
                "cmd": In(stream.Signature(command_layout())),
                "tiles": In(stream.Signature(tile_layout(d, l))),
                "bias": In(stream.Signature(data.ArrayLayout(16, l))),
                "out": Out(stream.Signature(output_layout(d))),
                "rowmax": Out(stream.Signature(32)),
            }
        )

    @classmethod
    def from_core(cls, core: Any, **overrides: Any) -> Mpu:
        """The MPU of a :class:`dfx.isa.config.CoreConfig`: ``core.mpu`` d, l, mul/dot/add
        latencies, the scale multiplier at ``mul_latency``, the ``core.tables.gelu`` table at
        ``core.mpu.sfu_latency`` (the GELU stage only: the whole SFU_M takes
        :attr:`sfu_latency`), the default :func:`zigzag_interleave`; keyword arguments override
        any parameter."""
        params: dict[str, Any] = {
            "d": core.mpu.d,
            "l": core.mpu.l,
            "mul_latency": core.mpu.mul_latency,
            "dot_latency": core.mpu.dot_latency,
            "add_latency": core.mpu.add_latency,
            "gelu_table": gtab.table_from_spec("gelu", core.tables.gelu),
            "gelu_latency": core.mpu.sfu_latency,
        }
        params.update(overrides)
        return cls(**params)

    # ------------------------------------------------------------------------- properties

    @property
    def d(self) -> int:
        return self._d

    @property
    def l(self) -> int:  # noqa: E743 - the paper's name
        return self._l

    @property
    def mul_latency(self) -> int:
        return self._mul_latency

    @property
    def dot_latency(self) -> int:
        return self._mfu.dot_latency

    @property
    def add_latency(self) -> int:
        return self._add_latency

    @property
    def interleave(self) -> int:
        """Block width G of the tile order (output groups accumulated in turn)."""
        return self._interleave

    @property
    def queue_depth(self) -> int:
        return self._queue_depth

    @property
    def gelu_table(self) -> gtab.PwlTable:
        return self._gelu_table

    @property
    def mfu_latency(self) -> int:
        """From a group's last tile (accepted) to its FP32 sums at the SFU input."""
        return self._mfu.latency

    @property
    def sfu_latency(self) -> int:
        """From the FP32 sums to the vector they complete (vectorizer register included)."""
        return self._sfu.latency

    @property
    def epilogue_latency(self) -> int:
        """Cycles from FP32 sums at the SFU_M input (a group leaving the MFU) to the vector
        they complete, valid on ``out``: SFU_M + the output buffer."""
        return self._sfu.latency + 1

    @property
    def bias_latency(self) -> int:
        """Cycles from a group's bias moving on ``bias`` to, at the earliest, the vector that
        group completes, valid on ``out``: the bias buffer, then :attr:`epilogue_latency`."""
        return 1 + self.epilogue_latency

    @property
    def latency(self) -> int:
        """Cycles from accepting a command's last tile to its last vector on ``out`` (valid),
        without stalls: MFU + SFU_M + the output buffer."""
        return self._mfu.latency + self.epilogue_latency

    @property
    def rowmax_latency(self) -> int:
        """Cycles from accepting a command's last tile to its row maximum on ``rowmax``."""
        return self._mfu.latency + self._sfu.max_latency + 1

    def tile_order(self, kt: int, nt: int) -> list[tuple[int, int]]:
        """:func:`tile_order` with this unit's ``interleave``."""
        return list(tile_order(kt, nt, self._interleave))

    def verilog(self, name: str = "mpu", *, flat: bool = False) -> str:
        """Verilog of this MPU as module ``name``.

        Default: each distinct arithmetic leaf (the lane dot products, FP32 adders and
        multipliers, FP16 rounding, GELU tables) is one module, converted once and
        instantiated (:class:`~dfx.rtl.leaves.LeafModules`): generation time grows with the
        number of distinct leaves, not of copies. ``flat=True`` converts the whole Amaranth
        design (``verilog.convert(self)``, slow for the dfx-u280 size). Both describe the same
        circuit.
        """
        from amaranth.back import verilog

        if flat:
            return verilog.convert(self, name=name, emit_src=False)
        mark_used(self)  # the twin below stands in for this instance
        leaves = LeafModules(name)
        twin = Mpu(**self._params, leaf=leaves)
        top = verilog.convert(twin, name=name, emit_src=False)
        return top + "".join(leaves.verilog().values())

    # ------------------------------------------------------------------------- hardware

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        d, l, G, A, Q = self._d, self._l, self._interleave, self._add_latency, self._queue_depth  # noqa: E741
        m.submodules.mfu = mfu = self._mfu
        m.submodules.sfu = sfu = self._sfu
        m.submodules.out_buf = out_buf = Fifo2(output_layout(d))
        m.submodules.max_buf = max_buf = Fifo2(32)
        m.submodules.bias_buf = bias_buf = Fifo2(data.ArrayLayout(16, l))
        en = Signal(name="en")  # the global pipeline enable

        # ---- command queue: written from cmd, read by the issuer (ip) and the retirer (rp)
        layout = command_layout()
        queue = Array(Signal(layout.size, name=f"cmdq{i}") for i in range(Q))
        wp, ip, rp = (Signal(range(2 * Q), name=n) for n in ("wp", "ip", "rp"))

        def idx(p):
            return p[: Q.bit_length() - 1] if Q > 1 else Const(0, 1)

        m.d.comb += self.cmd.ready.eq(((wp - rp)[: Q.bit_length()]) != Q)
        with m.If(self.cmd.valid & self.cmd.ready):
            m.d.sync += [queue[idx(wp)].eq(self.cmd.payload.as_value()), wp.eq(wp + 1)]

        def nt_ext(c):  # 17 bits; 0 means 65536
            return Mux(c.nt == 0, 1 << 16, c.nt)

        # ---- issuer: tile acceptance in tile_order, bubbles for short blocks
        cur = data.View(layout, queue[idx(ip)])
        have = ip != wp
        g = Signal(range(G), name="g")
        kt = Signal(16, name="kt")
        base = Signal(17, name="base")
        bub = Signal(range(A + 1), name="bubbles")
        rem = Signal(17, name="rem")
        gb_m1 = Signal(range(G), name="gb_m1")
        m.d.comb += [
            rem.eq(nt_ext(cur) - base),
            gb_m1.eq(Mux(rem >= G, G - 1, rem - 1)),
            self.tiles.ready.eq(en & have & (bub == 0)),
        ]
        accept = self.tiles.valid & self.tiles.ready
        first = kt == 0
        last = kt == (cur.kt - 1)[:16]
        m.d.comb += [
            mfu.valid_in.eq(accept),
            mfu.first.eq(first),
            mfu.last.eq(last),
            mfu.slot.eq(g),
            mfu.en.eq(en),
        ]
        m.d.comb += [mfu.x[i].eq(self.tiles.payload.x[i]) for i in range(d)]
        for j in range(l):
            m.d.comb += [mfu.w[j][i].eq(self.tiles.payload.w[j][i]) for i in range(d)]
        with m.If(accept):
            with m.If(g == gb_m1):
                m.d.sync += g.eq(0)
                with m.If(last):
                    m.d.sync += kt.eq(0)
                    with m.If(rem <= G):
                        m.d.sync += [base.eq(0), ip.eq(ip + 1)]
                    with m.Else():
                        m.d.sync += base.eq(base + G)
                with m.Else():
                    m.d.sync += kt.eq(kt + 1)
                    with m.If(gb_m1 < A - 1):
                        m.d.sync += bub.eq(A - 1 - gb_m1)
            with m.Else():
                m.d.sync += g.eq(g + 1)
        with m.Elif(en & (bub != 0)):
            m.d.sync += bub.eq(bub - 1)

        # ---- retirer: command context for each group leaving the MFU
        ctx = data.View(layout, queue[idx(rp)])
        ng = Signal(17, name="ng")  # group index within the retiring command
        r_last = ng == (nt_ext(ctx) - 1)[:17]
        group = mfu.valid_out
        need_bias = group & ctx.use_bias
        shift = l.bit_length() - 1
        m.d.comb += (
            [sfu.acc[j].eq(mfu.acc[j]) for j in range(l)]
            + [sfu.bias[j].eq(bias_buf.r_data[j]) for j in range(l)]
            + [
                sfu.use_bias.eq(ctx.use_bias),
                sfu.scale.eq(ctx.scale),
                sfu.use_scale.eq(ctx.use_scale),
                sfu.mask.eq(ctx.mask),
                sfu.gelu.eq(ctx.gelu),
                sfu.rowmax.eq(ctx.rowmax),
                sfu.slot.eq(ng[: max(0, (d // l).bit_length() - 1)] if d > l else 0),
                sfu.last.eq(r_last),
                sfu.valid_in.eq(group),
                sfu.en.eq(en),
                bias_buf.r_en.eq(en & need_bias),
            ]
        )
        cols = [(ng << shift) + j for j in range(l)]
        for j in range(l):
            m.d.comb += sfu.masked[j].eq(ctx.mask & (cols[j] > ctx.limit))
        with m.If(en & group):
            with m.If(r_last):
                m.d.sync += [ng.eq(0), rp.eq(rp + 1)]
            with m.Else():
                m.d.sync += ng.eq(ng + 1)

        # ---- bias in, results out, and the global enable
        m.d.comb += [
            bias_buf.w_data.eq(self.bias.payload),
            bias_buf.w_en.eq(self.bias.valid),
            self.bias.ready.eq(bias_buf.w_rdy),
            out_buf.w_en.eq(en & sfu.vec_valid),
            max_buf.w_en.eq(en & sfu.max_valid),
            max_buf.w_data.eq(sfu.max),
            self.out.valid.eq(out_buf.r_rdy),
            self.out.payload.eq(out_buf.r_data),
            out_buf.r_en.eq(self.out.ready),
            self.rowmax.valid.eq(max_buf.r_rdy),
            self.rowmax.payload.eq(max_buf.r_data),
            max_buf.r_en.eq(self.rowmax.ready),
            en.eq(out_buf.w_rdy & max_buf.w_rdy & ~(need_bias & ~bias_buf.r_rdy)),
        ]
        wv = out_buf.w_data
        m.d.comb += [wv.data[i].eq(sfu.vec[i]) for i in range(d)] + [wv.last.eq(sfu.vec_last)]
        return m
